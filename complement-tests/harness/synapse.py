"""A real Synapse (PyPI `matrix-synapse`, run with the test venv's Python) on loopback.

Layout of its directory: homeserver.yaml, log.yaml, signing.key, homeserver.db (SQLite),
server.log (Synapse's own log, INFO), stdout.log (anything it prints before logging is set up).

Federation on 127.0.0.1 needs three allowances, all set in `config()`:
- `federation_custom_ca_list: [ca.pem]` with `federation_verify_certificates: true`: the peer's
  certificate (IP SAN 127.0.0.1) is verified against the test CA, not switched off.
- `federation_ip_range_blacklist` without 127.0.0.0/8. Synapse's default `ip_range_blacklist`
  contains loopback and also guards outbound federation; `ip_range_whitelist: [127.0.0.0/8]`
  lets the federation *agent* through, but Synapse wraps that agent once more in a blocklist-only
  check on IP-literal server names (BlocklistingAgentWrapper, no allowlist), so a name like
  `127.0.0.1:8448` stays blocked ("403: IP address blocked", "Failed to fetch alias") unless the
  federation blocklist itself omits loopback. The (deprecated, still read in 1.163) key
  `federation_ip_range_blacklist` sets that list for federation only; it keeps the other private
  ranges. `ip_range_whitelist` still covers Synapse's other outbound HTTP.
- `trusted_key_servers: []`: keys are fetched from each origin directly (no matrix.org).
Backoff towards an unreachable peer is cut from 10 minutes to seconds (`federation:
destination_*_retry_interval`), so a peer that was down is retried while a test waits.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .ca import TestCA
from .process import CHILD_SETUP, HomeServer

# Synapse's DEFAULT_IP_RANGE_BLOCKLIST minus 127.0.0.0/8 (and the IPv6 loopback, unused here).
FEDERATION_BLOCKLIST_WITHOUT_LOOPBACK = [
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "192.0.0.0/24", "169.254.0.0/16",
    "192.88.99.0/24", "198.18.0.0/15", "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4",
    "fe80::/10", "fc00::/7", "2001:db8::/32", "ff00::/8", "fec0::/10",
]
HUGE = {"per_second": 1_000_000, "burst_count": 1_000_000}


def _signing_key_line() -> str:
    seed = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    key_id = "a_" + secrets.token_hex(2)
    return f"ed25519 {key_id} {base64.b64encode(seed).decode().rstrip('=')}\n"


class SynapseServer(HomeServer):
    kind = "synapse"
    STARTUP_TIMEOUT_S = 120.0

    def __init__(self, name: str, workdir: Path, ca: TestCA, python: Optional[str] = None,
                 extra_config: Optional[dict[str, Any]] = None) -> None:
        super().__init__(name, workdir, ca)
        self.python = python or os.environ.get("SYNAPSE_PYTHON") or sys.executable
        self.shared_secret = secrets.token_hex(16)
        self.extra_config = extra_config or {}
        self.config_path = self.dir / "homeserver.yaml"
        self._stdout = None
        self._write_config()

    def config(self) -> dict[str, Any]:
        d = self.dir
        return {
            "server_name": self.server_name,
            "pid_file": str(d / "homeserver.pid"),
            "public_baseurl": self.base_url + "/",
            "listeners": [
                {"port": self.fed_port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": True,
                 "x_forwarded": False, "resources": [{"names": ["federation"], "compress": False}]},
                {"port": self.client_port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False,
                 "x_forwarded": False, "resources": [{"names": ["client"], "compress": False}]},
            ],
            "tls_certificate_path": str(self.cert.cert),
            "tls_private_key_path": str(self.cert.key),
            "database": {"name": "sqlite3", "args": {"database": str(d / "homeserver.db")}},
            "log_config": str(d / "log.yaml"),
            "signing_key_path": str(d / "signing.key"),
            "media_store_path": str(d / "media_store"),
            "macaroon_secret_key": secrets.token_hex(16),
            "form_secret": secrets.token_hex(16),
            "registration_shared_secret": self.shared_secret,
            "report_stats": False,
            "enable_metrics": False,
            "enable_registration": True,
            "enable_registration_without_verification": True,
            "registration_requires_3pid": [],
            # Federation on loopback, certificates verified against the test CA.
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "federation_verify_certificates": True,
            "federation_custom_ca_list": [str(self.ca.ca_pem)],
            "ip_range_whitelist": ["127.0.0.0/8"],
            "federation_ip_range_blacklist": FEDERATION_BLOCKLIST_WITHOUT_LOOPBACK,
            "federation": {
                "client_timeout": "20s",
                "max_short_retry_delay": "1s",
                "max_long_retry_delay": "5s",
                "destination_min_retry_interval": "2s",
                "destination_retry_multiplier": 2,
                "destination_max_retry_interval": "8s",
            },
            "presence": {"enabled": True},
            # No media fetching, previews or phone-home of any kind.
            "enable_media_repo": False,
            "url_preview_enabled": False,
            "allow_public_rooms_over_federation": True,
            # Rate limits out of the way.
            "rc_message": HUGE,
            "rc_registration": HUGE,
            "rc_registration_token_validity": HUGE,
            "rc_login": {"address": HUGE, "account": HUGE, "failed_attempts": HUGE},
            "rc_joins": {"local": HUGE, "remote": HUGE},
            "rc_joins_per_room": HUGE,
            "rc_invites": {"per_room": HUGE, "per_user": HUGE, "per_issuer": HUGE},
            "rc_3pid_validation": HUGE,
            "rc_third_party_invite": HUGE,
            "rc_room_creation": HUGE,
            "rc_presence": {"per_user": HUGE},
            "rc_delayed_event_mgmt": HUGE,
            "rc_reports": HUGE,
            "rc_user_directory": HUGE,
            "rc_profile": HUGE,
            "rc_admin_redaction": HUGE,
            "rc_key_requests": HUGE,
            "rc_federation": {"window_size": 1000, "sleep_limit": 100_000, "sleep_delay": 1,
                              "reject_limit": 1_000_000, "concurrent": 1_000},
            "federation_rr_transactions_per_room_per_second": 1_000_000,
            **self.extra_config,
        }

    def _write_config(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        (self.dir / "signing.key").write_text(_signing_key_line())
        log = {
            "version": 1,
            "formatters": {"precise": {"format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s"
                                                 " - %(request)s - %(message)s"}},
            "filters": {"context": {"()": "synapse.logging.context.LoggingContextFilter", "request": ""}},
            "handlers": {"file": {"class": "logging.FileHandler", "formatter": "precise", "filters": ["context"],
                                  "filename": str(self.log_path), "encoding": "utf8"}},
            "loggers": {"synapse.storage.SQL": {"level": "WARNING"},
                        "synapse.storage.txn": {"level": "WARNING"},
                        "twisted": {"level": "WARNING"}},
            "root": {"level": "INFO", "handlers": ["file"]},
            "disable_existing_loggers": False,
        }
        (self.dir / "log.yaml").write_text(yaml.safe_dump(log, sort_keys=False))

    def _launch(self) -> None:
        self._stdout = open(self.dir / "stdout.log", "ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNAPSE_", "TRELLIS_"))}
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        self.proc = subprocess.Popen(
            [self.python, "-m", "synapse.app.homeserver", "-c", str(self.config_path)],
            cwd=self.dir, env=env, stdin=subprocess.DEVNULL, stdout=self._stdout, stderr=subprocess.STDOUT,
            preexec_fn=CHILD_SETUP)

    def log_tail(self, lines: int = 40) -> str:
        out = super().log_tail(lines)
        try:
            early = (self.dir / "stdout.log").read_text(errors="replace").strip()
        except OSError:
            early = ""
        if early:
            out += "\n--- stdout.log ---\n" + "\n".join(early.splitlines()[-lines:])
        return out

    def _on_stopped(self) -> None:
        if self._stdout is not None:
            self._stdout.close()
            self._stdout = None
