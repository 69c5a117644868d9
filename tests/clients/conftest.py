"""Shared setup for the client tests: the real `trellis` binary, driven by matrix-nio.

The `server` fixture (one server per test module) runs trellis on 127.0.0.1 with an OS-chosen
port, a throwaway database and rate limits off, and always terminates it afterwards. The binary
comes from $TRELLIS_BIN, else $CARGO_TARGET_DIR/debug/trellis (default target dir
~/.cache/trellis-target). Test modules import the helpers below with `from conftest import ...`.
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
from nio import AsyncClient, AsyncClientConfig, RegisterResponse

SERVER_NAME = "localhost"
PASSWORD = "correct horse battery"
STARTUP_TIMEOUT_S = 60
STOP_TIMEOUT_S = 15
LISTENING = re.compile(r"^trellis: client API listening on (http://127\.0\.0\.1:\d+)$")

# Bounded requests: no retry loops on 429, one retry on a timeout.
# No end-to-end encryption: room_send sends plain events whether or not python-olm is installed.
CLIENT_CONFIG = AsyncClientConfig(
    max_limit_exceeded=0, max_timeouts=1, request_timeout=60, encryption_enabled=False
)


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
