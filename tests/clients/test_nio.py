"""Client tests: the real `trellis` binary driven by matrix-nio's AsyncClient.

The server runs on 127.0.0.1 with an OS-chosen port, a throwaway database and rate limits off.
The binary comes from $TRELLIS_BIN, else $CARGO_TARGET_DIR/debug/trellis (default target dir
~/.cache/trellis-target). Run with `bash .ci/run`, or after `cargo build`:

    python -m pytest -q tests/clients
"""

import asyncio
import os
import queue
import re
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest
from nio import (
    AsyncClient,
    AsyncClientConfig,
    DevicesResponse,
    LoginError,
    LoginResponse,
    LogoutResponse,
    ProfileGetDisplayNameResponse,
    ProfileSetDisplayNameResponse,
    RegisterResponse,
    WhoamiError,
    WhoamiResponse,
)
from nio.responses import RegisterErrorResponse  # not re-exported by the nio package

SERVER_NAME = "localhost"
PASSWORD = "correct horse battery"
STARTUP_TIMEOUT_S = 60
STOP_TIMEOUT_S = 15
LISTENING = re.compile(r"^trellis: client API listening on (http://127\.0\.0\.1:\d+)$")

# Bounded requests: no retry loops on 429, one retry on a timeout.
CLIENT_CONFIG = AsyncClientConfig(max_limit_exceeded=0, max_timeouts=1, request_timeout=60)


def server_binary() -> Path:
    explicit = os.environ.get("TRELLIS_BIN")
    if explicit:
        return Path(explicit)
    target = os.environ.get("CARGO_TARGET_DIR") or str(Path.home() / ".cache" / "trellis-target")
    return Path(target) / "debug" / "trellis"


@pytest.fixture(scope="module")
def server():
    """Start trellis; yield its base URL; terminate it (kill if it lingers) afterwards."""
    binary = server_binary()
    if not binary.is_file():
        pytest.fail(f"trellis binary not found at {binary}: run `cargo build` or set TRELLIS_BIN")

    workdir = tempfile.TemporaryDirectory(prefix="trellis-nio-")
    # Hermetic: none of the caller's TRELLIS_* configuration, only the keys below.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRELLIS_")}
    env.update(
        TRELLIS_SERVER_NAME=SERVER_NAME,
        TRELLIS_LISTEN__CLIENT="127.0.0.1:0",
        TRELLIS_DATABASE__PATH=os.path.join(workdir.name, "db"),
        TRELLIS_RATE_LIMITS__ENABLED="false",
        TRELLIS_METRICS__ENABLED="false",
    )
    log_path = Path(workdir.name) / "server.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [str(binary)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log,
        env=env,
        cwd=workdir.name,
    )

    # Read stdout on a thread so the wait for the listening line has a deadline.
    lines: "queue.Queue[str | None]" = queue.Queue()

    def pump():
        for raw in proc.stdout:
            lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()

    def stop():
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT_S)
        log.close()

    def server_log() -> str:
        log.flush()
        return log_path.read_text(errors="replace")[-4000:]

    url = None
    try:
        try:
            while url is None:
                line = lines.get(timeout=STARTUP_TIMEOUT_S)
                if line is None:
                    pytest.fail(f"trellis exited with {proc.wait()} before listening:\n{server_log()}")
                m = LISTENING.match(line)
                if m:
                    url = m.group(1)
        except queue.Empty:
            pytest.fail(f"trellis did not print its listening line within {STARTUP_TIMEOUT_S}s:\n{server_log()}")
        yield url
        assert proc.poll() is None, f"trellis died during the tests:\n{server_log()}"
    finally:
        stop()
        workdir.cleanup()


def new_client(url: str, user: str = "") -> AsyncClient:
    return AsyncClient(url, user, config=CLIENT_CONFIG)


def run(coro):
    return asyncio.run(coro)


async def register(url: str, localpart: str, device_name: str = "") -> RegisterResponse:
    client = new_client(url)
    try:
        resp = await client.register(localpart, PASSWORD, device_name=device_name)
        assert isinstance(resp, RegisterResponse), resp
        return resp
    finally:
        await client.close()


def test_register_login_whoami(server):
    async def scenario():
        reg = await register(server, "alice")
        assert reg.user_id == "@alice:localhost"
        assert reg.access_token.startswith("trl_")
        assert reg.device_id

        client = new_client(server, "alice")
        try:
            login = await client.login(PASSWORD, device_name="nio test")
            assert isinstance(login, LoginResponse), login
            assert login.user_id == "@alice:localhost"
            assert login.device_id != reg.device_id, "each login is a new device"
            assert login.access_token != reg.access_token
            assert client.access_token == login.access_token

            who = await client.whoami()
            assert isinstance(who, WhoamiResponse), who
            assert who.user_id == "@alice:localhost"
            assert who.device_id == login.device_id
            assert who.is_guest is False
        finally:
            await client.close()

    run(scenario())


def test_duplicate_registration_and_wrong_password(server):
    async def scenario():
        await register(server, "erin")

        client = new_client(server)
        try:
            again = await client.register("erin", PASSWORD)
            assert isinstance(again, RegisterErrorResponse), again
            assert again.status_code == "M_USER_IN_USE"
        finally:
            await client.close()

        client = new_client(server, "erin")
        try:
            bad = await client.login("not the password")
            assert isinstance(bad, LoginError), bad
            assert bad.status_code == "M_FORBIDDEN"
            assert client.access_token == ""
        finally:
            await client.close()

    run(scenario())


def test_set_and_get_displayname(server):
    async def scenario():
        await register(server, "bob")
        client = new_client(server, "bob")
        try:
            assert isinstance(await client.login(PASSWORD), LoginResponse)

            initial = await client.get_displayname()
            assert isinstance(initial, ProfileGetDisplayNameResponse), initial
            assert initial.displayname == "bob", "a new account's display name is its localpart"

            set_resp = await client.set_displayname("Bob the Builder")
            assert isinstance(set_resp, ProfileSetDisplayNameResponse), set_resp

            got = await client.get_displayname()
            assert isinstance(got, ProfileGetDisplayNameResponse), got
            assert got.displayname == "Bob the Builder"
        finally:
            await client.close()

        # Profiles are readable without logging in.
        anonymous = new_client(server)
        try:
            public = await anonymous.get_displayname("@bob:localhost")
            assert isinstance(public, ProfileGetDisplayNameResponse), public
            assert public.displayname == "Bob the Builder"
        finally:
            await anonymous.close()

    run(scenario())


def test_devices_list_last_seen_ip(server):
    async def scenario():
        reg = await register(server, "carol", device_name="registration device")
        client = new_client(server, "carol")
        try:
            login = await client.login(PASSWORD, device_name="carol's laptop")
            assert isinstance(login, LoginResponse), login

            resp = await client.devices()
            assert isinstance(resp, DevicesResponse), resp
            by_id = {d.id: d for d in resp.devices}
            assert set(by_id) == {reg.device_id, login.device_id}

            laptop = by_id[login.device_id]
            assert laptop.display_name == "carol's laptop"
            assert laptop.last_seen_ip == "127.0.0.1"
            assert laptop.last_seen_date is not None

            first = by_id[reg.device_id]
            assert first.display_name == "registration device"
            assert first.last_seen_ip == "127.0.0.1"
        finally:
            await client.close()

    run(scenario())


def test_logout_revokes_the_token(server):
    async def scenario():
        reg = await register(server, "dave")
        client = new_client(server, "dave")
        try:
            login = await client.login(PASSWORD)
            assert isinstance(login, LoginResponse), login
            old_token = login.access_token

            out = await client.logout()
            assert isinstance(out, LogoutResponse), out
            assert client.access_token == ""

            client.access_token = old_token
            who = await client.whoami()
            assert isinstance(who, WhoamiError), who
            assert who.status_code == "M_UNKNOWN_TOKEN"
            assert who.soft_logout is False
        finally:
            await client.close()

        # The registration session is untouched, and the logged-out device is gone.
        other = new_client(server, "dave")
        other.restore_login("@dave:localhost", reg.device_id, reg.access_token)
        try:
            who = await other.whoami()
            assert isinstance(who, WhoamiResponse), who
            assert who.user_id == "@dave:localhost"
            assert who.device_id == reg.device_id

            devices = await other.devices()
            assert isinstance(devices, DevicesResponse), devices
            assert [d.id for d in devices.devices] == [reg.device_id]
        finally:
            await other.close()

    run(scenario())
