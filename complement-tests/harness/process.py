"""What Synapse and Trellis have in common: a process with a data directory, two loopback
ports that survive restarts (client API over plain HTTP, federation over TLS), bounded start-up
and shutdown, and the tail of its log for error messages."""

from __future__ import annotations

import ctypes
import http.client
import json
import signal
import socket
import sys
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

from .ca import Cert, TestCA

STOP_GRACE_S = 15  # SIGTERM, then this long, then SIGKILL
_handed_out: set[int] = set()


def free_port() -> int:
    """An unused loopback TCP port, never the same twice in one run."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free loopback port after 50 tries")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, between fork and exec
    """Linux: the server gets SIGTERM if the test process dies, even by SIGKILL."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


# Passed as Popen(preexec_fn=...) by the subclasses.
CHILD_SETUP = _die_with_parent if sys.platform.startswith("linux") else None


class ServerStartError(RuntimeError):
    pass


class HomeServer:
    """Base class. Subclasses implement `_launch()` (start the process, return once it is
    spawned) and may override `_after_launch()`; `start()` then waits for both listeners."""

    kind = "server"
    STARTUP_TIMEOUT_S = 90.0

    def __init__(self, name: str, workdir: Path, ca: TestCA) -> None:
        self.name = name
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca = ca
        self.cert: Cert = ca.issue(name)
        self.client_port = free_port()
        self.fed_port = free_port()
        self.server_name = f"127.0.0.1:{self.fed_port}"
        self.base_url = f"http://127.0.0.1:{self.client_port}"
        self.fed_url = f"https://127.0.0.1:{self.fed_port}"
        self.log_path = self.dir / "server.log"
        self.proc: Optional[subprocess.Popen] = None
        self.starts = 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.server_name} client={self.base_url}>"

    # --- lifecycle ----------------------------------------------------------------------------

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> "HomeServer":
        """Start (or restart: same data directory, same ports) and wait until both the client
        and the federation listener answer. Raises ServerStartError with the log tail."""
        if self.alive():
            return self
        t0 = time.monotonic()
        self._launch()
        self.starts += 1
        try:
            self._after_launch(t0 + self.STARTUP_TIMEOUT_S)
            self._wait_listeners(t0 + self.STARTUP_TIMEOUT_S)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def stop(self) -> None:
        """SIGTERM, up to STOP_GRACE_S, then SIGKILL (bounded too). Keeps the data directory."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                try:
                    proc.wait(timeout=STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    pass
        self._on_stopped()

    def restart(self) -> "HomeServer":
        self.stop()
        return self.start()

    def _launch(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _after_launch(self, deadline: float) -> None:
        pass

    def _on_stopped(self) -> None:
        pass

    # --- diagnostics --------------------------------------------------------------------------

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def fail(self, why: str) -> ServerStartError:
        return ServerStartError(f"{self.kind} {self.name} ({self.server_name}): {why}\n"
                                f"--- last lines of {self.log_path} ---\n{self.log_tail()}")

    # --- readiness ----------------------------------------------------------------------------

    def tls_context(self) -> ssl.SSLContext:
        """Verifies federation listeners against the test CA (IP SAN 127.0.0.1)."""
        return ssl.create_default_context(cafile=str(self.ca.ca_pem))

    def _wait_listeners(self, deadline: float) -> None:
        ctx = self.tls_context()
        probes = [
            ("client", self.base_url + "/_matrix/client/versions", None),
            ("federation", self.fed_url + "/_matrix/key/v2/server", ctx),
        ]
        last = ""
        for what, url, context in probes:
            while True:
                if not self.alive():
                    raise self.fail(f"exited with status {self.proc.returncode if self.proc else '?'} during start-up")
                try:
                    with urllib.request.urlopen(url, timeout=3, context=context) as r:
                        body = r.read()
                    if what == "federation":
                        keys = json.loads(body)
                        if keys.get("server_name") != self.server_name:
                            raise self.fail(f"federation listener names itself {keys.get('server_name')!r}, "
                                            f"expected {self.server_name!r}")
                    break
                except ssl.SSLCertVerificationError as e:
                    raise self.fail(f"{what} listener's certificate does not verify against the test CA: {e}")
                except (OSError, http.client.HTTPException, urllib.error.URLError, ValueError) as e:
                    last = f"{type(e).__name__}: {e}"
                if time.monotonic() > deadline:
                    raise self.fail(f"the {what} listener ({url}) did not answer within "
                                    f"{self.STARTUP_TIMEOUT_S:.0f}s (last error: {last})")
                time.sleep(0.25)

    # --- users --------------------------------------------------------------------------------

    def register(self, localpart: Optional[str] = None, **kw):
        """A new user on this server (open registration, m.login.dummy), as a logged-in Client."""
        from .client import register
        return register(self, localpart, **kw)
