"""The Trellis binary on loopback, configured through the environment.

Binary: $TRELLIS_BIN, else $CARGO_TARGET_DIR/debug/trellis, else ~/.cache/trellis-target/debug/trellis.
On start Trellis prints on stdout
    trellis: client API listening on http://ADDR
    trellis: federation API listening on https://ADDR
A binary that prints the first line but not the second within FEDERATION_LINE_GRACE_S has no
federation listener yet: `start()` stops it and raises FederationUnavailable (the fixtures turn
that into a skip, "Trellis federation listener not available"). Anything else that goes wrong
(no binary, exits, never listens) is a ServerStartError, i.e. a test failure.
"""

from __future__ import annotations

import os
import queue
import re
import secrets
import subprocess
import threading
import time
from pathlib import Path
from typing import Optional

from .ca import TestCA
from .process import CHILD_SETUP, HomeServer

CLIENT_LINE = re.compile(r"^trellis: client API listening on (http://\S+?)/?$")
FEDERATION_LINE = re.compile(r"^trellis: federation API listening on (https://\S+?)/?$")
FEDERATION_LINE_GRACE_S = 5.0


class FederationUnavailable(RuntimeError):
    """The Trellis binary has no federation listener (it printed no federation line)."""


def trellis_binary() -> Path:
    explicit = os.environ.get("TRELLIS_BIN")
    if explicit:
        return Path(explicit)
    target = os.environ.get("CARGO_TARGET_DIR") or str(Path.home() / ".cache" / "trellis-target")
    return Path(target) / "debug" / "trellis"


class TrellisServer(HomeServer):
    kind = "trellis"
    STARTUP_TIMEOUT_S = 60.0

    def __init__(self, name: str, workdir: Path, ca: TestCA, binary: Optional[Path] = None,
                 extra_env: Optional[dict[str, str]] = None) -> None:
        super().__init__(name, workdir, ca)
        self.binary = Path(binary) if binary else trellis_binary()
        self.shared_secret = secrets.token_hex(16)
        self.extra_env = extra_env or {}
        self._lines: "queue.Queue[Optional[str]]" = queue.Queue()
        self._log = None
        self.stdout_lines: list[str] = []

    def env(self) -> dict[str, str]:
        # Hermetic: none of the caller's TRELLIS_* configuration, only what is set here.
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRELLIS_") and k != "RUST_LOG"}
        env.update(
            TRELLIS_SERVER_NAME=self.server_name,
            TRELLIS_LISTEN__CLIENT=f"127.0.0.1:{self.client_port}",
            TRELLIS_LISTEN__FEDERATION=f"127.0.0.1:{self.fed_port}",
            TRELLIS_TLS__CERTIFICATE=str(self.cert.cert),
            TRELLIS_TLS__PRIVATE_KEY=str(self.cert.key),
            TRELLIS_FEDERATION__EXTRA_CA_FILE=str(self.ca.ca_pem),
            TRELLIS_FEDERATION__ALLOW_IP_RANGES='["127.0.0.0/8"]',
            TRELLIS_DATABASE__PATH=str(self.dir / "db"),
            TRELLIS_RATE_LIMITS__ENABLED="false",
            TRELLIS_METRICS__ENABLED="false",
            TRELLIS_REGISTRATION__ENABLED="true",
            TRELLIS_REGISTRATION__SHARED_SECRET=self.shared_secret,
            TRELLIS_PRESENCE__ENABLED="true",
            TRELLIS_LOGGING__LEVEL=os.environ.get("COMPLEMENT_TRELLIS_LOG", "info,ruma_state_res=warn"),
        )
        env.update(self.extra_env)
        return env

    def _launch(self) -> None:
        if not self.binary.is_file():
            raise self.fail(f"binary not found at {self.binary}: run `cargo build` or set TRELLIS_BIN")
        self._log = open(self.log_path, "ab")
        self._lines = queue.Queue()
        self.proc = subprocess.Popen([str(self.binary)], cwd=self.dir, env=self.env(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self._log, preexec_fn=CHILD_SETUP)
        proc, lines = self.proc, self._lines

        def pump() -> None:  # stdout on a thread: waits below have deadlines, the pipe never fills
            for raw in proc.stdout:
                lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
            lines.put(None)

        threading.Thread(target=pump, name=f"{self.name}-stdout", daemon=True).start()

    def _after_launch(self, deadline: float) -> None:
        client_url = fed_url = None
        fed_deadline = None
        while client_url is None or fed_url is None:
            now = time.monotonic()
            if client_url is not None:  # fed_url is None
                fed_deadline = fed_deadline or now + FEDERATION_LINE_GRACE_S
                if now >= fed_deadline:
                    self.stop()
                    raise FederationUnavailable(
                        f"{self.binary} printed no 'federation API listening' line within "
                        f"{FEDERATION_LINE_GRACE_S:.0f}s of its client listener")
                wait = fed_deadline - now
            else:
                if now >= deadline:
                    raise self.fail(f"printed no 'client API listening' line within {self.STARTUP_TIMEOUT_S:.0f}s")
                wait = deadline - now
            try:
                line = self._lines.get(timeout=min(wait, 1.0))
            except queue.Empty:
                continue
            if line is None:
                code = self.proc.wait(timeout=5) if self.proc else "?"
                raise self.fail(f"exited with status {code} before listening")
            self.stdout_lines.append(line)
            if m := CLIENT_LINE.match(line):
                client_url = m.group(1)
            elif m := FEDERATION_LINE.match(line):
                fed_url = m.group(1)
        if client_url.rstrip("/") != self.base_url:
            raise self.fail(f"client API on {client_url}, expected {self.base_url}")
        if fed_url.rstrip("/") != self.fed_url:
            raise self.fail(f"federation API on {fed_url}, expected {self.fed_url}")

    def _on_stopped(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
