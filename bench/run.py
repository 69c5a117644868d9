#!/usr/bin/env python3
"""Trellis vs Synapse: message send and delivery, CPU per message, memory, idle long-polls.

    python3 bench/run.py [--quick]

Builds Trellis in release mode, installs Synapse (PyPI) into a venv, starts each server in turn
on loopback with a fresh database, runs the same workload against both, prints a side-by-side
Markdown table and (full runs) writes docs/benchmarks.md. See bench/README.md.

Everything is bounded: every request has a timeout, every phase a time limit, every loop a
count or a deadline, and the servers are terminated (then killed) in `finally`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
REQUIREMENTS = BENCH / "requirements.txt"
VENV = Path(os.environ.get("HOME", "/var/tmp")) / ".cache" / "trellis-bench-venv"
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or Path(os.environ.get("HOME", "/var/tmp")) / ".cache" / "trellis-target")
IN_VENV_MARK = "TRELLIS_BENCH_IN_VENV"
COMMAND_MARK = "TRELLIS_BENCH_COMMAND"


# --------------------------------------------------------------------------------------------
# Bootstrap (standard library only): system packages, the venv, then re-exec inside it.
# --------------------------------------------------------------------------------------------

def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ensure_system_packages() -> None:
    """libclang for the RocksDB build and python3-venv for the venv (Debian), as .ci/run does."""
    if not shutil.which("dpkg"):
        return
    missing = [p for p in ("libclang-dev", "python3-venv")
               if subprocess.run(["dpkg", "-s", p], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0]
    if not missing:
        return
    if os.geteuid() != 0:
        log(f"missing Debian packages {missing}; install them (not root, not installing)")
        return
    log(f"installing Debian packages {missing}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, timeout=600, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], check=True, timeout=1200, env=env)


def bootstrap() -> None:
    if os.environ.get(IN_VENV_MARK) == "1":
        return
    command = "python3 bench/run.py" + "".join(" " + shlex.quote(a) for a in sys.argv[1:])
    ensure_system_packages()
    py = VENV / "bin" / "python"
    if not py.exists():
        log(f"creating venv {VENV}")
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=300)
    want = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    stamp = VENV / ".bench-requirements.sha256"
    if not stamp.exists() or stamp.read_text().strip() != want:
        log(f"installing {REQUIREMENTS.relative_to(REPO)} into the venv (PyPI)")
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--upgrade", "pip"], check=True, timeout=600)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", str(REQUIREMENTS)], check=True, timeout=1800)
        stamp.write_text(want + "\n")
    env = dict(os.environ, **{IN_VENV_MARK: "1", COMMAND_MARK: command, "PYTHONDONTWRITEBYTECODE": "1"})
    os.execve(str(py), [str(py), str(Path(__file__).resolve()), *sys.argv[1:]], env)


if __name__ == "__main__":
    bootstrap()

# --------------------------------------------------------------------------------------------
# Inside the venv from here on.
# --------------------------------------------------------------------------------------------

import asyncio  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import selectors  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import urllib.request  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from importlib.metadata import version as pkg_version  # noqa: E402
from typing import Any, Optional  # noqa: E402
from urllib.parse import quote, urlencode, urlsplit  # noqa: E402

import aiohttp  # noqa: E402
import websockets  # noqa: E402
import yaml  # noqa: E402

try:
    import uvloop  # noqa: E402
except ImportError:  # pragma: no cover
    uvloop = None

CLK_TCK = os.sysconf("SC_CLK_TCK")
WS_PATH = "/_matrix/client/unstable/org.trellis.ws/v1/connect"
V3 = "/_matrix/client/v3"
NOTES: list[str] = []


def note(msg: str) -> None:
    if msg not in NOTES:
        NOTES.append(msg)
        log("NOTE: " + msg)


def now_ns() -> int:
    return time.monotonic_ns()


# ----------------------------------------------------------------------------- /proc readings

def cpu_ms(pid: int) -> float:
    """utime + stime of a process (all threads), in ms."""
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    rest = s[s.rindex(")") + 2:].split()
    return (int(rest[11]) + int(rest[12])) * 1000.0 / CLK_TCK


def status_kb(pid: int, key: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def machine_busy_ms() -> float:
    """CPU time spent by everything on the machine (all cores, not idle or iowait), in ms."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (sum(v) - v[3] - v[4]) * 1000.0 / CLK_TCK


def harness_cpu_ms() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return (r.ru_utime + r.ru_stime) * 1000.0


def mib(kb: Optional[int]) -> str:
    return "–" if kb is None else f"{kb / 1024:.1f}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine() -> dict:
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    return {"nproc": os.cpu_count(), "cpu": model, "mem_gib": mem_kb / 1024 / 1024, "kernel": platform.release()}


def git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


# ----------------------------------------------------------------------------- servers

class Server:
    name = "server"

    def __init__(self) -> None:
        self.proc: Optional[subprocess.Popen] = None
        self.tmp = Path(tempfile.mkdtemp(prefix=f"trellis-bench-{self.name.split()[0].lower()}-"))
        self.base = ""
        self.log_path = self.tmp / "server.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM, 20 s grace, then SIGKILL; then remove the temp dir."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                log(f"{self.name} did not stop after SIGTERM; killing it")
                self.proc.kill()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    log(f"{self.name} (pid {self.proc.pid}) still there after SIGKILL")
        shutil.rmtree(self.tmp, ignore_errors=True)


class Trellis(Server):
    name = "Trellis"

    def __init__(self, binary: Path, presence_switch: bool, extra_env: Optional[dict] = None) -> None:
        if extra_env:
            self.name = "Trellis (" + " ".join(f"{k}={v}" for k, v in extra_env.items()) + ")"
        super().__init__()
        self.binary = binary
        self.presence_switch = presence_switch
        self.extra_env = extra_env or {}

    def start(self) -> None:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRELLIS_") and k != "RUST_LOG"}
        env.update(
            TRELLIS_SERVER_NAME="localhost",
            TRELLIS_LISTEN__CLIENT=f"127.0.0.1:{port}",
            TRELLIS_DATABASE__PATH=str(self.tmp / "db"),
            TRELLIS_RATE_LIMITS__ENABLED="false",
            TRELLIS_LOGGING__LEVEL="warn",
        )
        if self.presence_switch:
            env["TRELLIS_PRESENCE__ENABLED"] = "false"
        env.update(self.extra_env)
        self.proc = subprocess.Popen([str(self.binary)], env=env, cwd=self.tmp, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=open(self.log_path, "wb"))
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + 60
        line = b""
        while time.monotonic() < deadline and self.proc.poll() is None:
            if sel.select(timeout=0.5):
                line = self.proc.stdout.readline()
                if b"client API listening on" in line or not line:
                    break
        sel.close()
        text = line.decode(errors="replace").strip()
        if "client API listening on" not in text:
            raise RuntimeError(f"Trellis did not announce its listener within 60 s:\n{self.log_tail()}")
        self.base = text.rsplit(" ", 1)[1].rstrip("/")
        # stdout carries only listening lines; drain it anyway so the pipe can never fill.
        threading.Thread(target=lambda: self.proc.stdout.read(), daemon=True).start()
        wait_versions(self)


# Synapse's SQLite engine opens connections in WAL mode with SQLite's default synchronous=FULL:
# every commit waits for an fsync. Trellis writes RocksDB's WAL without fsync (docs/storage.md),
# which is SQLite's synchronous=NORMAL in WAL mode: safe against a process crash, not against
# power loss. This launcher runs stock Synapse with that one pragma added, for a second column.
SYNC_NORMAL_LAUNCHER = """
import runpy, sys
from synapse.storage.engines import sqlite
_orig = sqlite.Sqlite3Engine.on_new_connection
def on_new_connection(self, db_conn):
    _orig(self, db_conn)
    db_conn.execute("PRAGMA synchronous = NORMAL;")
sqlite.Sqlite3Engine.on_new_connection = on_new_connection
sys.argv = ["synapse.app.homeserver"] + sys.argv[1:]
runpy.run_module("synapse.app.homeserver", run_name="__main__")
"""


class Synapse(Server):
    name = "Synapse"

    def __init__(self, sync_normal: bool = False) -> None:
        if sync_normal:
            self.name = "Synapse (synchronous=NORMAL)"
        super().__init__()
        self.sync_normal = sync_normal

    def start(self) -> None:
        port = free_port()
        cfg = self.tmp / "homeserver.yaml"
        subprocess.run([sys.executable, "-m", "synapse.app.homeserver", "--server-name", "localhost", "--config-path", str(cfg),
                        "--data-directory", str(self.tmp), "--generate-config", "--report-stats=no"],
                       cwd=self.tmp, check=True, timeout=180, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        conf = yaml.safe_load(cfg.read_text())
        huge = {"per_second": 1_000_000, "burst_count": 1_000_000}
        conf.update({
            "listeners": [{"port": port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False, "x_forwarded": False,
                           "resources": [{"names": ["client"], "compress": False}]}],
            "database": {"name": "sqlite3", "args": {"database": str(self.tmp / "homeserver.db")}},
            "media_store_path": str(self.tmp / "media_store"),
            "enable_registration": True,
            "enable_registration_without_verification": True,
            "federation_domain_whitelist": [],
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "report_stats": False,
            "presence": {"enabled": False},
            "rc_message": huge,
            "rc_registration": huge,
            "rc_registration_token_validity": huge,
            "rc_login": {"address": huge, "account": huge, "failed_attempts": huge},
            "rc_joins": {"local": huge, "remote": huge},
            "rc_joins_per_room": huge,
            "rc_invites": {"per_room": huge, "per_user": huge, "per_issuer": huge},
            "rc_3pid_validation": huge,
            "rc_third_party_invite": huge,
            "rc_room_creation": huge,
            "rc_presence": {"per_user": huge},
            "rc_delayed_event_mgmt": huge,
            "rc_reports": huge,
            "rc_user_directory": huge,
            "rc_profile": huge,
            "rc_media_create": huge,
            "rc_admin_redaction": huge,
            "rc_key_requests": huge,
        })
        cfg.write_text(yaml.safe_dump(conf, sort_keys=False))
        log_cfg_path = Path(conf["log_config"])
        log_cfg = yaml.safe_load(log_cfg_path.read_text())
        log_cfg.setdefault("root", {})["level"] = "WARNING"
        for logger in log_cfg.get("loggers", {}).values():
            logger["level"] = "WARNING"
        log_cfg_path.write_text(yaml.safe_dump(log_cfg, sort_keys=False))
        launch = ["-c", SYNC_NORMAL_LAUNCHER] if self.sync_normal else ["-m", "synapse.app.homeserver"]
        self.proc = subprocess.Popen([sys.executable, *launch, "-c", str(cfg)], cwd=self.tmp,
                                     stdin=subprocess.DEVNULL, stdout=open(self.log_path, "wb"), stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{port}"
        wait_versions(self, limit=240)


def wait_versions(server: Server, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(f"{server.name} exited during start-up:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.base + "/_matrix/client/versions", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{server.name} did not answer /versions within {limit:.0f} s:\n{server.log_tail()}")


# ----------------------------------------------------------------------------- HTTP client

@dataclass
class User:
    index: int
    user_id: str
    token: str
    filter_id: str = ""
    since: str = ""


class Client:
    def __init__(self, base: str, session: aiohttp.ClientSession) -> None:
        self.base = base
        self.session = session

    async def call(self, method: str, path: str, token: Optional[str] = None, body: Any = None,
                   params: Optional[dict] = None, timeout: float = 30.0, session: Optional[aiohttp.ClientSession] = None,
                   trace: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        kwargs: dict = {"headers": headers, "params": params, "timeout": aiohttp.ClientTimeout(total=timeout)}
        if body is not None:
            kwargs["json"] = body
        if trace is not None:
            kwargs["trace_request_ctx"] = trace
        async with (session or self.session).request(method, self.base + path, **kwargs) as r:
            raw = await r.read()
            try:
                data = json.loads(raw) if raw else {}
            except ValueError:
                data = {"_raw": raw[:300].decode(errors="replace")}
            return r.status, data


class Http1:
    """One HTTP/1.1 keep-alive connection on asyncio streams, for the measured hot paths (sends
    and /sync long-polls). aiohttp costs the harness ~0.15 ms of CPU per request; on a 2-core
    machine shared with the server that cost lands in the delivery latencies being measured.
    Handles Content-Length and chunked bodies; anything else closes the connection."""

    def __init__(self, base: str) -> None:
        u = urlsplit(base)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.reader: Optional[asyncio.StreamReader] = None
        self.writer: Optional[asyncio.StreamWriter] = None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, method: str, target: str, token: str, body: Any = None,
                      timeout: float = 30.0) -> tuple[int, Any]:
        reused = self.writer is not None
        try:
            return await asyncio.wait_for(self._request(method, target, token, body), timeout)
        except (aiohttp.ServerDisconnectedError, ConnectionResetError, BrokenPipeError):
            self.close()
            if not reused:
                raise
        except BaseException:
            self.close()  # a cancelled or failed exchange leaves the stream mid-response
            raise
        # The server closed the kept-alive connection meanwhile: once more on a new one (sends
        # carry a transaction ID and /sync only reads, so a repeat is harmless).
        try:
            return await asyncio.wait_for(self._request(method, target, token, body), timeout)
        except BaseException:
            self.close()
            raise

    async def _request(self, method: str, target: str, token: str, body: Any) -> tuple[int, Any]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        payload = json.dumps(body).encode() if body is not None else b""
        head = (f"{method} {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n")
        self.writer.write(head.encode() + payload)
        reader = self.reader
        assert reader is not None
        status_line = await reader.readline()
        if not status_line:
            raise aiohttp.ServerDisconnectedError()
        status = int(status_line.split(b" ", 2)[1])
        length, chunked, close = None, False, False
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value:
                chunked = True
            elif name == b"connection" and value == b"close":
                close = True
        if chunked:
            parts = []
            while True:
                size = int((await reader.readline()).split(b";", 1)[0], 16)
                if size == 0:
                    await reader.readline()
                    break
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            raw = b"".join(parts)
        elif length is not None:
            raw = await reader.readexactly(length)
        else:
            raw, close = await reader.read(), True
        if close:
            self.close()
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            data = {"_raw": raw[:300].decode(errors="replace")}
        return status, data


class Http1Pool:
    """Idle [`Http1`] connections, for concurrent requests (the fixed-rate sender's)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.idle: list[Http1] = []

    async def request(self, method: str, target: str, token: str, body: Any = None,
                      timeout: float = 30.0) -> tuple[int, Any]:
        conn = self.idle.pop() if self.idle else Http1(self.base)
        status, data = await conn.request(method, target, token, body, timeout)
        self.idle.append(conn)
        return status, data

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


def errtext(status: int, data: Any) -> str:
    if isinstance(data, dict):
        return f"{status} {data.get('errcode', '')} {data.get('error', data.get('_raw', ''))}".strip()
    return str(status)


async def register(c: Client, localpart: str, password: str) -> tuple[str, str]:
    body: dict = {"username": localpart, "password": password, "auth": {"type": "m.login.dummy"},
                  "initial_device_display_name": "bench"}
    for _ in range(3):  # at most: plain, with a UIA session, once more
        status, data = await c.call("POST", V3 + "/register", body=body, timeout=120)
        if status == 200:
            return data["user_id"], data["access_token"]
        if status == 401 and isinstance(data, dict) and data.get("session"):
            body["auth"] = {"type": "m.login.dummy", "session": data["session"]}
            continue
        break
    raise RuntimeError(f"register {localpart}: {errtext(status, data)}")


def sync_filter(room_id: str, limit: int) -> dict:
    none = {"not_types": ["*"]}
    return {
        "room": {"rooms": [room_id], "timeline": {"limit": limit}, "ephemeral": none, "account_data": none},
        "presence": none,
        "account_data": none,
    }


async def upload_filter(c: Client, u: User, f: dict) -> str:
    status, data = await c.call("POST", f"{V3}/user/{quote(u.user_id, safe='')}/filter", u.token, body=f)
    if status != 200:
        raise RuntimeError(f"filter upload: {errtext(status, data)}")
    return data["filter_id"]


async def sync_now(c: Client, u: User, timeout_s: float = 60) -> str:
    """A sync that returns at once: the user's current position (initial sync without a token)."""
    params = {"filter": u.filter_id, "timeout": "0"}
    if u.since:
        params["since"] = u.since
    status, data = await c.call("GET", V3 + "/sync", u.token, params=params, timeout=timeout_s)
    if status != 200 or "next_batch" not in data:
        raise RuntimeError(f"sync for {u.user_id}: {errtext(status, data)}")
    u.since = data["next_batch"]
    return u.since


async def bounded_gather(coros: list, limit: int) -> list:
    sem = asyncio.Semaphore(limit)

    async def one(c):
        async with sem:
            return await c

    return await asyncio.gather(*(one(c) for c in coros))


# ----------------------------------------------------------------------------- phases

def pct(values: list[float], p: float) -> Optional[float]:
    """Nearest-rank percentile."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))
    return s[k]


def fmt_ms(v: Optional[float]) -> str:
    if v is None:
        return "–"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"


def triple(values: list[float]) -> str:
    return " / ".join(fmt_ms(pct(values, p)) for p in (50, 95, 99))


class Phase:
    """One measured phase: senders, receivers, what each receiver got."""

    def __init__(self, name: str, tag: str, receivers: int, expected: int) -> None:
        self.name = name
        self.tag = tag
        self.expected = expected
        self.sent = 0
        self.send_errors = 0
        self.recv_errors = 0
        self.limited = 0
        self.duplicates = 0
        self.responses = 0  # /sync responses or WebSocket sync frames received
        self.empty = 0  # ... of which held no message of this phase
        self.send_lat: list[float] = []
        self.deliv: list[float] = []
        self.counts = [0] * receivers
        self.seen: list[set] = [set() for _ in range(receivers)]
        self.first_start: Optional[int] = None
        self.last_end: Optional[int] = None
        self.all_received = asyncio.Event()
        self.result: dict = {}

    def check_done(self) -> None:
        if all(c >= self.expected for c in self.counts):
            self.all_received.set()

    def consume(self, ridx: int, timeline: dict, t_recv: int) -> None:
        if timeline.get("limited"):
            self.limited += 1
        self.responses += 1
        before = self.counts[ridx]
        for ev in timeline.get("events", []):
            if ev.get("type") != "m.room.message":
                continue
            body = (ev.get("content") or {}).get("body")
            if not isinstance(body, str):
                continue
            parts = body.split(" ")
            if len(parts) != 5 or parts[0] != "bench" or parts[1] != self.tag:
                continue
            key = (parts[2], parts[3])
            if key in self.seen[ridx]:
                self.duplicates += 1
                continue
            self.seen[ridx].add(key)
            self.deliv.append((t_recv - int(parts[4])) / 1e6)
            self.counts[ridx] += 1
        if self.counts[ridx] == before:
            self.empty += 1
        self.check_done()


def timeline_of(sync: dict, room_id: str) -> dict:
    return (((sync.get("rooms") or {}).get("join") or {}).get(room_id) or {}).get("timeline") or {}


@dataclass
class Ctx:
    server: Server
    client: Client
    room_id: str
    users: list[User]
    senders: list[User]
    receivers: list[User]
    nonce: str
    senders_http: "Http1Pool"
    results: dict = field(default_factory=dict)


async def send_one(ctx: Ctx, ph: Phase, sidx: int, u: User, i: int) -> None:
    t0 = now_ns()
    body = {"msgtype": "m.text", "body": f"bench {ph.tag} {sidx} {i} {t0}"}
    path = f"{V3}/rooms/{quote(ctx.room_id, safe='')}/send/m.room.message/{ph.tag}.{sidx}.{i}"
    try:
        status, data = await ctx.senders_http.request("PUT", path, u.token, body=body, timeout=30)
    except (asyncio.TimeoutError, aiohttp.ClientError, OSError, ValueError, asyncio.IncompleteReadError) as e:
        ph.send_errors += 1
        note(f"{ctx.server.name}: send failed: {type(e).__name__} {e}")
        return
    t1 = now_ns()
    if status != 200:
        ph.send_errors += 1
        note(f"{ctx.server.name}: send answered {errtext(status, data)}")
        return
    ph.sent += 1
    ph.send_lat.append((t1 - t0) / 1e6)
    ph.first_start = t0 if ph.first_start is None else min(ph.first_start, t0)
    ph.last_end = t1 if ph.last_end is None else max(ph.last_end, t1)


async def closed_loop_sender(ctx: Ctx, ph: Phase, sidx: int, u: User, m: int, deadline: float) -> None:
    for i in range(m):
        if time.monotonic() > deadline:
            note(f"{ctx.server.name}: {ph.name}: sender {sidx} stopped at the phase time limit after {i} messages")
            return
        await send_one(ctx, ph, sidx, u, i)


async def fixed_rate_sender(ctx: Ctx, ph: Phase, rate: float, seconds: float, deadline: float) -> None:
    n = int(round(rate * seconds))
    start = time.monotonic() + 0.05
    tasks = []
    for i in range(n):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if time.monotonic() > deadline:
            note(f"{ctx.server.name}: {ph.name}: stopped at the phase time limit after {i} messages")
            break
        sidx = i % len(ctx.senders)
        tasks.append(asyncio.create_task(send_one(ctx, ph, sidx, ctx.senders[sidx], i)))
    await asyncio.gather(*tasks)


async def http_receiver(ctx: Ctx, ph: Phase, ridx: int, u: User, stop: asyncio.Event, deadline: float) -> None:
    """Long-poll /sync (timeout 30000, incremental, filtered to the room) until all messages are in."""
    since = u.since
    conn = Http1(ctx.server.base)
    while not stop.is_set() and time.monotonic() < deadline and ph.counts[ridx] < ph.expected:
        target = V3 + "/sync?" + urlencode({"since": since, "timeout": "30000", "filter": u.filter_id})
        try:
            status, data = await conn.request("GET", target, u.token, timeout=60)
        except (asyncio.TimeoutError, aiohttp.ClientError, OSError, ValueError, asyncio.IncompleteReadError) as e:
            ph.recv_errors += 1
            note(f"{ctx.server.name}: /sync failed: {type(e).__name__} {e}")
            await asyncio.sleep(0.5)
            continue
        t = now_ns()
        if status != 200 or "next_batch" not in data:
            ph.recv_errors += 1
            note(f"{ctx.server.name}: /sync answered {errtext(status, data)}")
            await asyncio.sleep(0.5)
            continue
        ph.consume(ridx, timeline_of(data, ctx.room_id), t)
        since = data["next_batch"]
    conn.close()
    u.since = since


async def ws_receiver(ctx: Ctx, ph: Phase, ridx: int, u: User, stop: asyncio.Event, ready: asyncio.Event,
                      deadline: float) -> None:
    """The same, over the Trellis WebSocket API: one `sync` frame, then pushed frames."""
    url = ctx.server.base.replace("http://", "ws://", 1) + WS_PATH
    try:
        async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {u.token}"}, open_timeout=10,
                                      close_timeout=2, ping_interval=None, max_size=2 ** 26) as ws:
            hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if hello.get("type") != "ready":
                raise RuntimeError(f"expected a ready frame, got {hello}")
            # docs/websocket.md says the server answers a `sync` frame at once; the server only
            # answers when there is something new since `since`. A ping right behind it is
            # answered after the sync frame was handled, so its pong tells us we are listening.
            await ws.send(json.dumps({"type": "sync", "since": u.since, "filter": u.filter_id}))
            await ws.send(json.dumps({"type": "ping", "id": ridx}))
            for _ in range(100):
                msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if msg.get("type") == "pong":
                    break
                if msg.get("type") == "sync":
                    u.since = msg["data"].get("next_batch", u.since)
                    ph.consume(ridx, timeline_of(msg["data"], ctx.room_id), now_ns())
                else:
                    raise RuntimeError(f"unexpected frame {str(msg)[:200]}")
            ready.set()
            while not stop.is_set() and time.monotonic() < deadline and ph.counts[ridx] < ph.expected:
                try:
                    raw = await asyncio.wait_for(ws.recv(), timeout=max(0.1, min(5.0, deadline - time.monotonic())))
                except asyncio.TimeoutError:
                    continue
                t = now_ns()
                msg = json.loads(raw)
                if msg.get("type") == "sync":
                    u.since = msg["data"].get("next_batch", u.since)
                    ph.consume(ridx, timeline_of(msg["data"], ctx.room_id), t)
                elif msg.get("type") == "error":
                    ph.recv_errors += 1
                    note(f"{ctx.server.name}: WebSocket error frame: {str(msg)[:200]}")
    except (OSError, asyncio.TimeoutError, websockets.WebSocketException, RuntimeError) as e:
        ph.recv_errors += 1
        note(f"{ctx.server.name}: WebSocket receiver failed: {type(e).__name__} {e}")
    finally:
        ready.set()


async def run_phase(ctx: Ctx, name: str, transport: str, make_senders, expected: int, limit_s: float,
                    drain_s: float) -> dict:
    """Start receivers, wait until they listen, run the senders, wait for delivery, measure."""
    pid = ctx.server.pid
    tag = f"{ctx.nonce}{len(ctx.results)}"
    ph = Phase(name, tag, len(ctx.receivers), expected)
    stop = asyncio.Event()
    deadline = time.monotonic() + limit_s
    await bounded_gather([sync_now(ctx.client, u) for u in ctx.receivers], 10)  # start from "now"
    if transport == "ws":
        readies = [asyncio.Event() for _ in ctx.receivers]
        tasks = [asyncio.create_task(ws_receiver(ctx, ph, i, u, stop, readies[i], deadline)) for i, u in enumerate(ctx.receivers)]
        try:
            await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 30)
        except asyncio.TimeoutError:
            note(f"{ctx.server.name}: {name}: not every WebSocket receiver was ready within 30 s")
    else:
        tasks = [asyncio.create_task(http_receiver(ctx, ph, i, u, stop, deadline)) for i, u in enumerate(ctx.receivers)]
    await asyncio.sleep(1.0)  # let the long-polls park
    cpu0, h0, m0, t0 = cpu_ms(pid), harness_cpu_ms(), machine_busy_ms(), time.monotonic()
    try:
        await asyncio.wait_for(make_senders(ph, deadline), timeout=max(1.0, deadline - time.monotonic()))
    except asyncio.TimeoutError:
        note(f"{ctx.server.name}: {name}: senders cut at the {limit_s:.0f} s phase limit")
    t_sent = time.monotonic()
    ph.expected = ph.sent
    ph.check_done()
    try:
        await asyncio.wait_for(ph.all_received.wait(), timeout=drain_s)
    except asyncio.TimeoutError:
        note(f"{ctx.server.name}: {name}: not every receiver had every message {drain_s:.0f} s after the last send")
    cpu1, h1, m1, t1 = cpu_ms(pid), harness_cpu_ms(), machine_busy_ms(), time.monotonic()
    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    span = ((ph.last_end - ph.first_start) / 1e9) if ph.sent and ph.last_end and ph.first_start else 0.0
    res = {
        "name": name,
        "transport": transport,
        "sent": ph.sent,
        "send_errors": ph.send_errors,
        "recv_errors": ph.recv_errors,
        "throughput": ph.sent / span if span > 0 else 0.0,
        "send_lat": ph.send_lat,
        "deliv": ph.deliv,
        "delivered": sum(ph.counts),
        "expected_deliveries": ph.sent * len(ctx.receivers),
        "limited": ph.limited,
        "duplicates": ph.duplicates,
        "responses": ph.responses,
        "empty": ph.empty,
        "cpu_ms_per_msg": (cpu1 - cpu0) / ph.sent if ph.sent else None,
        "server_cpu_util": (cpu1 - cpu0) / 1000 / max(1e-9, t1 - t0),
        "harness_cpu_ms_per_msg": (h1 - h0) / ph.sent if ph.sent else None,
        "harness_cpu_util": (h1 - h0) / 1000 / max(1e-9, t1 - t0),
        # What the rest of the machine used meanwhile (other processes): should be near 0.
        "other_cpu_util": max(0.0, (m1 - m0) - (cpu1 - cpu0) - (h1 - h0)) / 1000 / max(1e-9, t1 - t0),
        "send_seconds": t_sent - t0,
        "rss_after_kb": status_kb(pid),
    }
    if ph.limited:
        note(f"{ctx.server.name}: {name}: {ph.limited} sync responses had a limited timeline")
    log(f"{ctx.server.name} {name}: {ph.sent} sent, {res['throughput']:.0f} msg/s, send {triple(ph.send_lat)} ms, "
        f"delivery {triple(ph.deliv)} ms, {res['delivered']}/{res['expected_deliveries']} delivered, "
        f"{ph.responses} sync responses ({ph.empty} empty), CPU {res['cpu_ms_per_msg'] or 0:.3f} ms/msg, RSS {mib(res['rss_after_kb'])} MiB")
    ctx.results[name] = res
    return res


async def closed_loop(ctx: Ctx, name: str, transport: str, m: int, limit_s: float, drain_s: float) -> dict:
    async def senders(ph: Phase, deadline: float) -> None:
        await asyncio.gather(*(closed_loop_sender(ctx, ph, i, u, m, deadline) for i, u in enumerate(ctx.senders)))
    return await run_phase(ctx, name, transport, senders, m * len(ctx.senders), limit_s, drain_s)


async def fixed_rate(ctx: Ctx, name: str, transport: str, rate: float, seconds: float, drain_s: float) -> dict:
    async def senders(ph: Phase, deadline: float) -> None:
        await fixed_rate_sender(ctx, ph, rate, seconds, deadline)
    return await run_phase(ctx, name, transport, senders, int(round(rate * seconds)), seconds + 120, drain_s)


async def idle_long_polls(ctx: Ctx, idle_users: list[User], k: int, limit_s: float) -> dict:
    """K concurrent /sync long-polls that nothing wakes; server RSS and fds while they are held."""
    pid = ctx.server.pid
    deadline = time.monotonic() + limit_s
    stop = asyncio.Event()
    pending_connect = asyncio.Semaphore(64)  # requests whose headers are not written yet
    state = {"inflight": 0, "connecting": 0, "returned": 0, "errors": 0}

    def release(tr: dict) -> None:
        if not tr["released"]:
            tr["released"] = True
            state["connecting"] -= 1
            pending_connect.release()

    async def headers_sent(session, trace_ctx, params) -> None:
        if trace_ctx.trace_request_ctx is not None:
            release(trace_ctx.trace_request_ctx)

    tc = aiohttp.TraceConfig()
    tc.on_request_headers_sent.append(headers_sent)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), trace_configs=[tc])
    rss0, fds0 = status_kb(pid), open_fds(pid)

    async def poll(i: int) -> None:
        u = idle_users[i % len(idle_users)]
        since = u.since
        while not stop.is_set() and time.monotonic() < deadline:
            await pending_connect.acquire()
            tr = {"released": False}
            state["connecting"] += 1
            state["inflight"] += 1
            try:
                status, data = await ctx.client.call("GET", V3 + "/sync", u.token, session=session, trace=tr,
                                                     params={"since": since, "timeout": "60000", "filter": u.filter_id},
                                                     timeout=100)
                state["returned"] += 1
                if status == 200:
                    since = data.get("next_batch", since)
                else:
                    state["errors"] += 1
                    note(f"{ctx.server.name}: idle /sync answered {errtext(status, data)}")
                    await asyncio.sleep(1)
            except (asyncio.TimeoutError, aiohttp.ClientError) as e:
                state["errors"] += 1
                note(f"{ctx.server.name}: idle /sync failed: {type(e).__name__} {e}")
                await asyncio.sleep(1)
            finally:
                state["inflight"] -= 1
                release(tr)

    t_open = time.monotonic()
    tasks = [asyncio.create_task(poll(i)) for i in range(k)]
    res: dict = {"k": k, "users": len(idle_users), "rss_before_kb": rss0, "fds_before": fds0}
    try:
        # Settled: every poll sent, and the server has been (almost) idle for 2 s.
        last_cpu, calm = cpu_ms(pid), 0
        while time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            c = cpu_ms(pid)
            busy = (c - last_cpu) / 1000.0
            last_cpu = c
            sent_all = state["inflight"] == k and state["connecting"] == 0
            calm = calm + 1 if sent_all and busy < 0.05 else 0
            if calm >= 2:
                break
        res["open_seconds"] = time.monotonic() - t_open
        res["held"] = state["inflight"]
        res["rss_held_kb"] = status_kb(pid)
        res["hwm_kb"] = status_kb(pid, "VmHWM")
        res["fds_held"] = open_fds(pid)
        res["returned_early"] = state["returned"]
        res["errors"] = state["errors"]
        if res["held"] < k:
            note(f"{ctx.server.name}: only {res['held']} of {k} idle long-polls were outstanding when measured")
    finally:
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await session.close()
    # Let the server notice the closed sockets (bounded), then measure again.
    for _ in range(30):
        if open_fds(pid) <= fds0 + 20:
            break
        await asyncio.sleep(1.0)
    await asyncio.sleep(2.0)
    res["rss_after_close_kb"] = status_kb(pid)
    res["fds_after_close"] = open_fds(pid)
    held = res.get("held", 0)
    res["kib_per_poll"] = (res["rss_held_kb"] - rss0) / held if held else None
    log(f"{ctx.server.name} idle long-polls: {held}/{k} held after {res['open_seconds']:.1f} s, RSS {mib(rss0)} → "
        f"{mib(res['rss_held_kb'])} MiB ({res['kib_per_poll'] or 0:.1f} KiB/poll), server fds {res['fds_held']}, "
        f"after close {mib(res['rss_after_close_kb'])} MiB")
    return res


# ----------------------------------------------------------------------------- one server

async def bench_server(server: Server, p: argparse.Namespace, k_idle: int, websocket: bool, idle_phase: bool,
                       setup_only: bool) -> dict:
    out: dict = {"name": server.name, "rss_start_kb": status_kb(server.pid)}
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
        c = Client(server.base, session)
        nonce = hashlib.sha1(os.urandom(8)).hexdigest()[:6]
        t = time.monotonic()
        creds = await bounded_gather([register(c, f"bench{i}", f"bench-password-{i}") for i in range(p.users)], 4)
        users = [User(i, uid, tok) for i, (uid, tok) in enumerate(creds)]
        status, data = await c.call("POST", V3 + "/createRoom", users[0].token,
                                    body={"preset": "public_chat", "name": "bench", "visibility": "private"}, timeout=60)
        if status != 200:
            raise RuntimeError(f"{server.name}: createRoom {errtext(status, data)}")
        room_id = data["room_id"]
        for u in users[1:]:
            status, data = await c.call("POST", f"{V3}/rooms/{quote(room_id, safe='')}/join", u.token, body={}, timeout=60)
            if status != 200:
                raise RuntimeError(f"{server.name}: join {errtext(status, data)}")
        flt = sync_filter(room_id, p.timeline_limit)
        for u in users:
            u.filter_id = await upload_filter(c, u, flt)
        await bounded_gather([sync_now(c, u) for u in users], 4)
        out["setup_seconds"] = time.monotonic() - t
        await asyncio.sleep(2.0)
        out["rss_idle_kb"] = status_kb(server.pid)
        log(f"{server.name}: {p.users} users in {room_id} ({out['setup_seconds']:.1f} s); RSS start "
            f"{mib(out['rss_start_kb'])} MiB, idle {mib(out['rss_idle_kb'])} MiB")
        if setup_only:
            return out

        ctx = Ctx(server, c, room_id, users, users[:p.senders], users[p.senders:p.senders + p.receivers], nonce,
                  Http1Pool(server.base))
        limit, drain = p.phase_limit, p.drain
        await closed_loop(ctx, "closed_http", "http", p.messages, limit, drain)
        if websocket:
            await closed_loop(ctx, "closed_ws", "ws", p.messages, limit, drain)
        await fixed_rate(ctx, "rate_http", "http", p.rate, p.rate_seconds, drain)
        if websocket:
            await fixed_rate(ctx, "rate_ws", "ws", p.rate, p.rate_seconds, drain)
        ctx.senders_http.close()
        out["phases"] = ctx.results
        if not idle_phase:
            return out

        # Idle long-polls: p.idle_users tokens (the bench users plus fresh ones outside the room).
        t = time.monotonic()
        extra = await bounded_gather([register(c, f"idle{i}", f"idle-password-{i}")
                                      for i in range(max(0, p.idle_users - len(users)))], 4)
        idle = users + [User(len(users) + i, uid, tok) for i, (uid, tok) in enumerate(extra)]
        idle = idle[:p.idle_users]
        iflt = sync_filter(room_id, 1)
        for u in idle:
            u.filter_id = await upload_filter(c, u, iflt)
            u.since = ""
        await bounded_gather([sync_now(c, u) for u in idle], 4)
        log(f"{server.name}: {len(idle)} users ready for idle long-polls ({time.monotonic() - t:.1f} s)")
        out["idle"] = await idle_long_polls(ctx, idle, k_idle, p.idle_limit)
        out["rss_end_kb"] = status_kb(server.pid)
        out["hwm_kb"] = status_kb(server.pid, "VmHWM")
    return out


def wait_quiet(limit: float, what: str) -> None:
    """Wait (at most `limit` s) until other processes use under 0.25 cores over 5 s (e.g. builds)."""
    deadline = time.monotonic() + limit
    busy = 0.0
    while True:
        m0, h0 = machine_busy_ms(), harness_cpu_ms()
        time.sleep(5)
        busy = ((machine_busy_ms() - m0) - (harness_cpu_ms() - h0)) / 5000
        if busy < 0.25:
            return
        if time.monotonic() >= deadline:
            note(f"other processes were using {busy:.2f} cores when the {what} run started "
                 f"(waited {limit:.0f} s for a quiet machine)")
            return
        log(f"waiting for a quiet machine before {what}: other processes use {busy:.2f} cores")


def run_server(server: Server, p: argparse.Namespace, k_idle: int, websocket: bool, idle_phase: bool = True,
               setup_only: bool = False) -> dict:
    try:
        wait_quiet(p.wait_quiet, server.name)
        log(f"starting {server.name}")
        server.start()
        log(f"{server.name} on {server.base}, pid {server.pid}")
        return asyncio.run(bench_server(server, p, k_idle, websocket, idle_phase, setup_only))
    finally:
        log(f"stopping {server.name}")
        server.stop()


# ----------------------------------------------------------------------------- build, report

def build_trellis(p: argparse.Namespace) -> Path:
    if p.trellis_bin:
        return Path(p.trellis_bin)
    env = dict(os.environ, CARGO_TARGET_DIR=str(TARGET))
    cmd = ["cargo", "build", "--release", "--bin", "trellis"]
    log(f"building Trellis: CARGO_TARGET_DIR={TARGET} {' '.join(cmd)} (a cold build takes ~15 min on 2 cores)")
    subprocess.run(cmd, cwd=REPO, env=env, check=True, timeout=90 * 60)
    return TARGET / "release" / "trellis"


def presence_switch(binary: Path) -> bool:
    out = subprocess.run([str(binary), "generate-config"], capture_output=True, text=True, timeout=30).stdout
    section = out.split("[presence]", 1)
    return len(section) == 2 and any(line.strip().startswith("enabled") for line in section[1].split("\n[", 1)[0].splitlines())


def uses_mimalloc(binary: Path) -> bool:
    """Whether the binary links mimalloc (then glibc malloc tunables do not apply to it)."""
    with open(binary, "rb") as f:
        return b"mi_malloc" in f.read()


def symbol_order_coverage(binary: Path) -> Optional[tuple[int, int]]:
    """How many functions of `bench/symbol-order.txt` the binary defines: (found, listed). The
    release link lays those out first (`build.rs`); names drift when dependencies change, and
    then the file should be regenerated with `bench/symbol_order.py`."""
    order = Path(__file__).resolve().parent / "symbol-order.txt"
    if not order.exists():
        return None
    listed = set(order.read_text().split())
    out = subprocess.run(["nm", "--defined-only", "--format=just-symbols", str(binary)],
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        return None
    return len(listed & set(out.stdout.split())), len(listed)


def raise_fd_limit(want: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, want)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as e:
        note(f"could not raise the file-descriptor soft limit from {soft} to {target}: {e}")
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft < want:
        note(f"file-descriptor limit {soft} (hard {hard}) is below the {want} the idle long-polls need")
    return soft


def render(p: argparse.Namespace, info: dict, tr: Optional[dict], sy: Optional[dict], sn: Optional[dict]) -> str:
    def ph(srv: Optional[dict], key: str) -> Optional[dict]:
        return (srv or {}).get("phases", {}).get(key)

    cols = [("Trellis, /sync", ph(tr, "closed_http")), ("Trellis, WebSocket", ph(tr, "closed_ws")),
            ("Synapse, /sync", ph(sy, "closed_http"))]
    rate_cols = [("Trellis, /sync", ph(tr, "rate_http")), ("Trellis, WebSocket", ph(tr, "rate_ws")),
                 ("Synapse, /sync", ph(sy, "rate_http"))]
    if sn:
        cols.append(("Synapse, /sync, SQLite synchronous=NORMAL", ph(sn, "closed_http")))
        rate_cols.append(("Synapse, /sync, SQLite synchronous=NORMAL", ph(sn, "rate_http")))

    def row(label: str, f, columns, target: str = "") -> str:
        cells = [f(r) if r else "–" for _, r in columns]
        return f"| {label} | " + " | ".join(cells) + f" | {target} |"

    def head(columns) -> list[str]:
        return ["| | " + " | ".join(n for n, _ in columns) + " | Trellis target |",
                "|---|" + "---:|" * len(columns) + "---|"]

    def f3(v: Optional[float]) -> str:
        return "–" if v is None else f"{v:.3f}"

    L: list[str] = []
    L += [f"### Closed loop: {p.senders} senders × {p.messages} messages, {p.receivers} receivers", ""]
    L += head(cols)
    L.append(row("Send throughput (messages/s)", lambda r: f"{r['throughput']:.0f}", cols))
    L.append(row("Send latency p50 / p95 / p99 (ms)", lambda r: triple(r["send_lat"]), cols))
    L.append(row("Delivery latency p50 / p95 / p99 (ms)", lambda r: triple(r["deliv"]), cols))
    L.append(row("Deliveries received / expected", lambda r: f"{r['delivered']} / {r['expected_deliveries']}", cols))
    L.append(row("Sync responses received (of which empty)", lambda r: f"{r['responses']} ({r['empty']})", cols))
    L.append(row("Server CPU per message (ms)", lambda r: f3(r["cpu_ms_per_msg"]), cols, "≤ 0.4 ms (10 receivers)"))
    L.append(row("Server CPU per sync response (ms)",
                 lambda r: f3((r["cpu_ms_per_msg"] or 0) * r["sent"] / r["responses"] if r["responses"] else None), cols))
    L.append(row("Server CPU utilisation (cores)", lambda r: f"{r['server_cpu_util']:.2f}", cols))
    L.append(row("Harness CPU per message (ms)", lambda r: f3(r["harness_cpu_ms_per_msg"]), cols))
    L.append(row("Other processes' CPU meanwhile (cores)", lambda r: f"{r['other_cpu_util']:.2f}", cols))
    L.append(row("Server RSS after the phase (MiB)", lambda r: mib(r["rss_after_kb"]), cols))
    L += ["", f"### Fixed rate: {p.rate:g} messages/s for {p.rate_seconds:g} s, {p.receivers} receivers", ""]
    L += head(rate_cols)
    L.append(row("Delivery latency p50 / p95 / p99 (ms)", lambda r: triple(r["deliv"]), rate_cols, "p99 ≤ 5 ms"))
    L.append(row("Send latency p50 / p95 / p99 (ms)", lambda r: triple(r["send_lat"]), rate_cols))
    L.append(row("Deliveries received / expected", lambda r: f"{r['delivered']} / {r['expected_deliveries']}", rate_cols))
    L.append(row("Sync responses received (of which empty)", lambda r: f"{r['responses']} ({r['empty']})", rate_cols))
    L.append(row("Server CPU utilisation (cores)", lambda r: f"{r['server_cpu_util']:.2f}", rate_cols))
    L.append(row("Server CPU per message (ms)", lambda r: f3(r["cpu_ms_per_msg"]), rate_cols))
    L.append(row("Server CPU per sync response (ms)",
                 lambda r: f3((r["cpu_ms_per_msg"] or 0) * r["sent"] / r["responses"] if r["responses"] else None), rate_cols))
    L.append(row("Other processes' CPU meanwhile (cores)", lambda r: f"{r['other_cpu_util']:.2f}", rate_cols))

    srv = [("Trellis", tr), ("Synapse", sy)]

    def srow(label: str, f, target: str = "") -> str:
        return f"| {label} | " + " | ".join(f(s) if s else "–" for _, s in srv) + f" | {target} |"

    L += ["", "### Memory (resident set, MiB = 2²⁰ bytes)", ""]
    L += ["| | Trellis | Synapse | Trellis target |", "|---|---:|---:|---|"]
    L.append(srow("RSS after start", lambda s: mib(s["rss_start_kb"])))
    L.append(srow(f"RSS at idle ({p.users} users registered, room joined)", lambda s: mib(s["rss_idle_kb"]), "≤ 20 MB"))
    if tr and "probe_rss_idle_kb" in tr:
        L.append(srow("… the same, Trellis restarted with `MALLOC_MMAP_THRESHOLD_=131072` (diagnostic)",
                      lambda s: mib(s["probe_rss_idle_kb"]) if "probe_rss_idle_kb" in s else "–"))
    L.append(srow("RSS after the closed-loop /sync phase", lambda s: mib(s["phases"]["closed_http"]["rss_after_kb"])))
    L.append(srow("RSS at the end of the run", lambda s: mib(s["rss_end_kb"])))
    L.append(srow("Peak RSS over the run (VmHWM)", lambda s: mib(s["hwm_kb"])))
    L += ["", f"### Idle long-polls (`/sync`, timeout 60000, spread over {p.idle_users} users' tokens)", ""]
    L += ["| | Trellis | Synapse |", "|---|---:|---:|"]

    def irow(label: str, f) -> str:
        return f"| {label} | " + " | ".join(f(s["idle"]) if s and "idle" in s else "–" for _, s in srv) + " |"

    L.append(irow("Long-polls opened (K)", lambda i: str(i["k"])))
    L.append(irow("Outstanding when measured", lambda i: str(i.get("held", "–"))))
    L.append(irow("Server open file descriptors (before → held)", lambda i: f"{i['fds_before']} → {i.get('fds_held', '–')}"))
    L.append(irow("Seconds to open them all and settle", lambda i: f"{i.get('open_seconds', 0):.1f}"))
    L.append(irow("RSS before (MiB)", lambda i: mib(i["rss_before_kb"])))
    L.append(irow("RSS while held (MiB)", lambda i: mib(i.get("rss_held_kb"))))
    L.append(irow("RSS per held long-poll (KiB)", lambda i: "–" if i.get("kib_per_poll") is None else f"{i['kib_per_poll']:.1f}"))
    L.append(irow("RSS after closing them (MiB)", lambda i: mib(i.get("rss_after_close_kb"))))
    L.append(irow("Polls that returned early / errors", lambda i: f"{i.get('returned_early', 0)} / {i.get('errors', 0)}"))
    return "\n".join(L)


def document(p: argparse.Namespace, info: dict, tables: str) -> str:
    m = info["machine"]
    k_line = f"{p.idle_polls} for Trellis, {p.synapse_idle_polls} for Synapse"
    lines = [
        "# Benchmarks",
        "",
        "Trellis and Synapse side by side, measured in the same run by [`bench/run.py`](../bench/run.py)",
        "(what it does and how: [`bench/README.md`](../bench/README.md)). This file is written by the",
        "harness; to update it, rerun the command below rather than editing figures by hand.",
        "",
        "## Run",
        "",
        f"- **Command:** `{info['command']}` (from the repository root)",
        f"- **Date:** {info['date']}",
        f"- **Machine:** {m['nproc']} cores ({m['cpu']}), {m['mem_gib']:.1f} GiB RAM, Linux {m['kernel']}; "
        "the servers and the harness share these cores",
        f"- **Trellis:** commit `{info['commit']}`{info['dirty']}, {info['build']}, RocksDB, "
        f"rate limits off, log level warn{', presence off' if info['trellis_presence_off'] else ''}",
        f"- **Synapse:** {info['synapse']} from PyPI (`matrix-synapse`), Twisted {info['twisted']}, Python "
        f"{platform.python_version()}, one process, **SQLite** database, no federation listener and "
        "`federation_domain_whitelist: []`, `presence.enabled: false`, every `rc_*` rate limit at 10⁶/s, "
        "log level WARNING, otherwise the generated defaults" + (
            "; the last column of the messaging tables is a second, fresh Synapse with one change, "
            "SQLite `PRAGMA synchronous = NORMAL` (no fsync per commit, like Trellis's RocksDB WAL; "
            "see below)" if info.get("sync_normal") else ""),
        f"- **Harness:** Python {platform.python_version()}, aiohttp {pkg_version('aiohttp')}, websockets "
        f"{pkg_version('websockets')}{', uvloop ' + pkg_version('uvloop') if uvloop else ''}; one asyncio process; "
        "sends and `/sync` long-polls on a minimal HTTP/1.1 keep-alive client (`Http1`), the rest on aiohttp",
        f"- **Parameters:** {p.users} users in one room; {p.senders} closed-loop senders × {p.messages} messages; "
        f"{p.receivers} receivers (long-poll `/sync`, timeout 30000, incremental, filter: this room, timeline "
        f"limit {p.timeline_limit}, no presence/ephemeral/account data); fixed rate {p.rate:g} messages/s for "
        f"{p.rate_seconds:g} s; idle long-polls: {k_line}, over {p.idle_users} users",
        "",
        "Each server starts from an empty database, alone on the machine: Trellis, then Synapse" + (
            ", then the `synchronous=NORMAL` Synapse." if info.get("sync_normal") else "."),
        "Before each server the harness waits until other processes use under 0.25 cores, and each",
        "phase reports what other processes used meanwhile.",
        "Send latency is the time of the `PUT /rooms/{id}/send` request; delivery latency is the time",
        "from the start of that request to the moment a receiver has the message in a `/sync` response",
        "(or WebSocket frame), over every receiver and every message. Server CPU is utime + stime from",
        "`/proc/<pid>/stat` over the phase (first send to last delivery) divided by the messages sent, so",
        "it includes the work of delivering each message to every receiver. RSS is `VmRSS` from",
        "`/proc/<pid>/status`. The targets are goals for Trellis, not assertions.",
        "",
        "## Results",
        "",
        tables,
        "",
    ]
    if NOTES:
        lines += ["## Notes from this run", ""] + [f"- {n}" for n in NOTES] + [""]
    lines += [
        "## Reading these figures",
        "",
        "- The harness is one Python process on the same two cores as the server. In the closed-loop",
        "  phases its CPU (the \"Harness CPU per message\" row) competes with the server's, so send",
        "  throughput and delivery latency there are bounded by the harness as much as by the server;",
        "  server CPU per message and the fixed-rate phase are the figures least affected by it. Sends",
        "  and long-polls use a minimal HTTP/1.1 client (`bench/README.md`): with aiohttp, ~0.15 ms of",
        "  harness CPU per request sat inside the delivery latencies (about 2 ms of the fixed-rate p99).",
        "- In the closed loop a sync response carries every message that arrived since the receiver's",
        "  previous one, so CPU per message also depends on how many responses each message took (the",
        "  \"Sync responses received\" row): a server that answers sooner sends more, smaller responses.",
        "  CPU per sync response is the cost of one wake-up, computation and response. Figures from",
        "  separate runs on this shared machine have differed by up to a third for both servers.",
        "- Synapse runs with SQLite, as a single process; its recommended production setup is",
        "  PostgreSQL (and workers for large deployments), which would change its figures. Its Python",
        "  code runs on one core at a time: a server CPU utilisation near 1.00 means it is saturated,",
        "  and its latencies are then mostly time spent queueing.",
        "- Durability differs by default: Trellis acknowledges a write once it is in RocksDB's WAL in",
        "  the page cache (no fsync; `docs/storage.md`), stock Synapse on SQLite (WAL mode,",
        "  `synchronous=FULL`) fsyncs every commit. The `synchronous=NORMAL` column (when present)",
        "  gives Synapse the same guarantee as Trellis, to separate fsync cost from the rest.",
    ]
    if info.get("symbol_order"):
        found, listed = info["symbol_order"]
        lines += [
        "- Idle memory. Most of an idle server's resident set is code and RocksDB's bookkeeping. The",
        "  release link lays out first, side by side, the functions that start-up and the common",
        "  requests run (`bench/symbol-order.txt`, recorded with callgrind by `bench/symbol_order.py`;",
        f"  {found} of its {listed} functions are in this binary), so the process maps a few MiB of its",
        "  25 MB of code instead of a 64 KiB window around every function it ever ran; all tables share",
        "  one RocksDB column family (each column family costs RocksDB ~70 KB, `docs/storage.md`).",
        ]
    if info.get("mimalloc"):
        lines += ["- This Trellis binary uses mimalloc as its global allocator.", ]
    elif info.get("build") != "not run":
        lines += [
        "- Trellis hashes passwords with argon2id, which allocates 19 MiB per hash. With glibc's",
        "  default malloc, freed blocks that large raise the dynamic mmap threshold and then stay in",
        "  the heap, so Trellis's RSS grows with each registration. The diagnostic row restarts",
        "  Trellis with `MALLOC_MMAP_THRESHOLD_=131072` (a glibc environment variable that turns the",
        "  dynamic threshold off; no code change) and repeats the same start-up and registration:",
        "  the difference between the two rows is memory glibc keeps after those hashes.",
        ]
    lines += [
        "- The WebSocket column is the same workload with the receivers on the Trellis WebSocket API",
        "  (`docs/websocket.md`); senders stay on HTTP. Synapse has no equivalent.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a small run (fewer users, messages and long-polls; no docs file)")
    ap.add_argument("--users", type=int)
    ap.add_argument("--senders", type=int)
    ap.add_argument("--messages", type=int, help="messages per sender in the closed-loop phases")
    ap.add_argument("--receivers", type=int)
    ap.add_argument("--rate", type=float, default=10.0, help="messages/s in the fixed-rate phases")
    ap.add_argument("--rate-seconds", type=float)
    ap.add_argument("--idle-polls", type=int, help="idle /sync long-polls held open against Trellis")
    ap.add_argument("--synapse-idle-polls", type=int, help="the same against Synapse")
    ap.add_argument("--idle-users", type=int, help="users whose tokens the idle long-polls are spread over")
    ap.add_argument("--timeline-limit", type=int, default=1000)
    ap.add_argument("--phase-limit", type=float, default=600, help="time limit of a closed-loop phase, s")
    ap.add_argument("--drain", type=float, default=30, help="how long to wait for deliveries after the last send, s")
    ap.add_argument("--idle-limit", type=float, default=600, help="time limit of the idle long-poll phase, s")
    ap.add_argument("--wait-quiet", type=float, help="wait up to this many seconds for other processes to go "
                                                    "quiet before each server's run (default 900, --quick 0)")
    ap.add_argument("--synapse-sync-normal", action=argparse.BooleanOptionalAction,
                    help="also run the messaging phases against Synapse with SQLite synchronous=NORMAL, the "
                         "durability Trellis has (default: on for a full run, off with --quick)")
    ap.add_argument("--trellis-bin", help="use this binary instead of building the release binary (figures not published)")
    ap.add_argument("--only", choices=["trellis", "synapse"], help="run one server only")
    ap.add_argument("--output", help="where to write the Markdown report (default: docs/benchmarks.md for a full "
                                     "run with the release binary, nowhere otherwise)")
    p = ap.parse_args()
    q = p.quick
    defaults = dict(users=8 if q else 20, senders=2 if q else 5, messages=50 if q else 200, receivers=4 if q else 10,
                    rate_seconds=5 if q else 20, wait_quiet=0 if q else 900, synapse_sync_normal=not q, idle_polls=1000 if q else 10000, idle_users=50 if q else 200)
    for k, v in defaults.items():
        if getattr(p, k) is None:
            setattr(p, k, v)
    if p.synapse_idle_polls is None:
        p.synapse_idle_polls = p.idle_polls
    if p.users < p.senders + p.receivers:
        ap.error("--users must be at least --senders + --receivers")
    output = p.output
    if output is None and not q and not p.trellis_bin and not p.only:
        output = str(REPO / "docs" / "benchmarks.md")

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_term)
    if uvloop is not None:
        uvloop.install()

    raise_fd_limit(max(p.idle_polls, p.synapse_idle_polls) + 1000)
    info = {
        "command": os.environ.get(COMMAND_MARK, "python3 bench/run.py"),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": machine(),
        "commit": git("rev-parse", "--short=12", "HEAD") or "unknown",
        "dirty": "",
        "build": "not run",
        "synapse": pkg_version("matrix-synapse"),
        "twisted": pkg_version("twisted"),
        "trellis_presence_off": False,
    }
    tr = sy = sn = None
    if p.only != "synapse":
        dirty = [line[3:] for line in git("status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock", "conf").splitlines()]
        if dirty:
            info["dirty"] = (" plus uncommitted changes in the working tree at build time (to "
                             + ", ".join(f"`{d}`" for d in dirty) + ")")
            note("Trellis was built from a working tree with uncommitted changes: " + ", ".join(dirty))
        binary = build_trellis(p)
        info["build"] = (f"binary `{binary}` given with --trellis-bin" if p.trellis_bin else
                         f"release build (`CARGO_TARGET_DIR={TARGET} cargo build --release --bin trellis`)")
        if "release" not in binary.parts:
            note(f"Trellis binary {binary} is not a release build: figures are not representative")
        info["trellis_presence_off"] = presence_switch(binary)
        if not info["trellis_presence_off"]:
            note("this Trellis build has no [presence] switch; presence left as built")
        tr = run_server(Trellis(binary, info["trellis_presence_off"]), p, p.idle_polls, websocket=True)
        info["mimalloc"] = uses_mimalloc(binary)
        info["symbol_order"] = symbol_order_coverage(binary)
        if info["symbol_order"] and info["symbol_order"][0] < 0.9 * info["symbol_order"][1]:
            note(f"only {info['symbol_order'][0]} of the {info['symbol_order'][1]} functions in bench/symbol-order.txt "
                 "are in this binary: regenerate it with bench/symbol_order.py (idle RSS is higher until then)")
        if not info["mimalloc"]:
            # Diagnostic: the same start-up and registration with glibc's mmap threshold pinned at
            # 128 KiB, so large freed buffers (argon2id's 19 MiB per password hash) go back to the OS.
            probe = run_server(Trellis(binary, info["trellis_presence_off"], {"MALLOC_MMAP_THRESHOLD_": "131072"}),
                               p, 0, websocket=False, setup_only=True)
            tr["probe_rss_idle_kb"] = probe["rss_idle_kb"]
    if p.only != "trellis":
        sy = run_server(Synapse(), p, p.synapse_idle_polls, websocket=False)
        if p.synapse_sync_normal:
            info["sync_normal"] = True
            sn = run_server(Synapse(sync_normal=True), p, 0, websocket=False, idle_phase=False)
    tables = render(p, info, tr, sy, sn)
    print(tables)
    if NOTES:
        print("\nNotes:\n" + "\n".join(f"- {n}" for n in NOTES))
    if output:
        Path(output).write_text(document(p, info, tables))
        log(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
