"""The harness checking itself: certificates, and how it detects Trellis's federation listener."""

import ipaddress
import time

import pytest
from cryptography import x509

from harness import FederationUnavailable, TrellisServer, trellis_binary
from harness.trellis import FEDERATION_LINE_GRACE_S


def test_certificates_chain_to_the_test_ca(ca):
    leaf = ca.issue("selftest")
    cert = x509.load_pem_x509_certificate(leaf.cert.read_bytes())
    root = x509.load_pem_x509_certificate(ca.ca_pem.read_bytes())
    cert.verify_directly_issued_by(root)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]


def test_trellis_start_or_fast_federation_unavailable(pool):
    """Trellis either comes up with both listeners (start() checked the TLS listener answers
    with the right server name, certificate verified), or fails fast with FederationUnavailable
    and is stopped. Either way the pool learns the answer, so Trellis pairs skip at once."""
    if not trellis_binary().is_file():
        pytest.fail(f"trellis binary not found at {trellis_binary()}: cargo build, or set TRELLIS_BIN")
    server = pool.create("trellis", "trellis-selftest")
    pool._make_room({server.name})
    t0 = time.monotonic()
    try:
        server.start()
    except FederationUnavailable as e:
        elapsed = time.monotonic() - t0
        assert not server.alive()
        assert any(line.startswith("trellis: client API listening on http://127.0.0.1:") for line in server.stdout_lines)
        assert elapsed < FEDERATION_LINE_GRACE_S + 20, elapsed
        pool.trellis_unavailable = str(e)
        return
    try:
        assert server.alive()
        user = server.register()
        assert user.user_id.endswith(":" + server.server_name)
    finally:
        server.stop()


def test_factories_start_servers_that_federate(synapse_server):
    """The factory fixtures: servers of the test's own, stopped when it ends."""
    from harness import Pair, joined_room

    one, two = synapse_server(), synapse_server()
    assert one.alive() and two.alive() and one.server_name != two.server_name
    room = joined_room(Pair(one, two, "factory"))
    msg = room.bob.send_message(room.room_id, "made by a factory")
    assert room.alice.wait_for_event_id(room.room_id, msg)["content"]["body"] == "made by a factory"
