#!/usr/bin/env python3
"""Regenerate `bench/code-order.txt`: patterns of the functions a Trellis server runs at start-up and on its
common requests, in the order it first runs them. `build.rs` hands the file to the linker
(`--symbol-ordering-file`) for release builds, which lays those functions out next to each other:
start-up then maps a few MiB of code instead of touching a page in every corner of a 25 MB `.text`
(see docs/benchmarks.md, "Reading these figures", idle memory).

    python3 bench/symbol_order.py [--binary PATH]

Needs valgrind (callgrind) and the bench venv (`websockets`; `python3 bench/run.py --quick` creates
it). The server runs on loopback with a temporary database; every request count is fixed.
Stale names in the file (after a dependency upgrade) are harmless: the linker skips symbols it does
not find, and those functions fall back to the default layout until the file is regenerated.
"""

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "code-order.txt"


def pattern(symbol: str) -> str:
    """A symbol with its hashes as `*` (`17h<16 hex>E` of legacy Rust names, `Cs<hash>_` crate
    disambiguators of v0 names): what `build.rs` matches section names with, stable across code
    and dependency changes."""
    return re.sub(r"Cs[0-9A-Za-z]+_", "Cs*_", re.sub(r"17h[0-9a-f]{16}E$", "17h*", symbol))
V3 = "/_matrix/client/v3"
WS_PATH = "/_matrix/client/unstable/org.trellis.ws/v1/connect"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    def __init__(self, base: str) -> None:
        self.base = base

    def call(self, method: str, path: str, token: str = "", body=None, timeout: float = 300) -> tuple[int, dict]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def ok(self, method: str, path: str, token: str = "", body=None, timeout: float = 300) -> dict:
        status, data = self.call(method, path, token, body, timeout)
        if status != 200:
            raise RuntimeError(f"{method} {path}: {status} {data}")
        return data

    def register(self, name: str) -> tuple[str, str]:
        body = {"username": name, "password": f"pw-{name}-secret", "auth": {"type": "m.login.dummy"}}
        status, data = self.call("POST", V3 + "/register", body=body)
        if status == 401:
            body["auth"]["session"] = data["session"]
            data = self.ok("POST", V3 + "/register", body=body)
        elif status != 200:
            raise RuntimeError(f"register {name}: {status} {data}")
        return data["user_id"], data["access_token"]


def workload(api: Api) -> None:
    """The requests of the benchmark's set-up and phases, and of a client starting up."""
    api.ok("GET", "/_matrix/client/versions")
    api.ok("GET", V3 + "/login")
    users = [api.register(f"u{i}") for i in range(3)]
    (u0, t0), (u1, t1), (u2, t2) = users
    t0b = api.ok("POST", V3 + "/login", body={"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "u0"},
                                               "password": "pw-u0-secret"})["access_token"]
    room = api.ok("POST", V3 + "/createRoom", t0, {"preset": "public_chat", "name": "bench"})["room_id"]
    r = quote(room, safe="")
    for t in (t1, t2):
        api.ok("POST", f"{V3}/rooms/{r}/join", t, {})
    flt = {"room": {"rooms": [room], "timeline": {"limit": 1000}, "ephemeral": {"not_types": ["*"]}},
           "presence": {"not_types": ["*"]}, "account_data": {"not_types": ["*"]}}
    fid = api.ok("POST", f"{V3}/user/{quote(u1, safe='')}/filter", t1, flt)["filter_id"]
    since = {t: api.ok("GET", f"{V3}/sync?timeout=0", t)["next_batch"] for t in (t0, t0b, t1, t2)}
    since[t1] = api.ok("GET", f"{V3}/sync?timeout=0&filter={fid}", t1)["next_batch"]
    api.ok("POST", V3 + "/keys/upload", t0, {"one_time_keys": {}})
    api.ok("POST", V3 + "/keys/query", t0, {"device_keys": {u1: []}})
    api.ok("GET", f"{V3}/account/whoami", t0)
    api.ok("GET", f"{V3}/profile/{quote(u0, safe='')}", t0)

    # A long-poll woken by messages, as the benchmark's receivers are.
    def poll(t: str, flt_id: str, n: int) -> None:
        for _ in range(n):
            q = f"{V3}/sync?timeout=30000&since={since[t]}" + (f"&filter={flt_id}" if flt_id else "")
            since[t] = api.ok("GET", q, t, timeout=120)["next_batch"]

    pollers = [threading.Thread(target=poll, args=(t1, fid, 3)), threading.Thread(target=poll, args=(t0b, "", 3))]
    for p in pollers:
        p.start()
    for i in range(12):
        time.sleep(0.3)
        api.ok("PUT", f"{V3}/rooms/{r}/send/m.room.message/txn{i}", t0, {"msgtype": "m.text", "body": f"hello {i}"})
        if i == 3:
            api.ok("PUT", f"{V3}/rooms/{r}/typing/{quote(u0, safe='')}", t0, {"typing": True, "timeout": 5000})
    for p in pollers:
        p.join(timeout=600)
    events = api.ok("GET", f"{V3}/rooms/{r}/messages?dir=b&limit=5", t1)["chunk"]
    api.ok("POST", f"{V3}/rooms/{r}/receipt/m.read/{quote(events[0]['event_id'], safe='')}", t1, {})
    api.ok("GET", f"{V3}/rooms/{r}/state", t1)
    api.ok("POST", V3 + "/logout", t0b, {})

    # The WebSocket API: a pushed sync result and one request over the socket.
    from websockets.sync.client import connect  # bench venv
    url = api.base.replace("http://", "ws://") + WS_PATH
    with connect(url, additional_headers={"Authorization": f"Bearer {t2}"}, open_timeout=60) as ws:
        ws.recv(timeout=120)  # ready
        ws.send(json.dumps({"type": "sync", "filter": flt}))
        ws.recv(timeout=120)  # the initial sync
        api.ok("PUT", f"{V3}/rooms/{r}/send/m.room.message/ws1", t0, {"msgtype": "m.text", "body": "to ws"})
        ws.recv(timeout=120)  # pushed
        ws.send(json.dumps({"type": "request", "id": "r1", "method": "PUT",
                            "path": f"{V3}/rooms/{r}/send/m.room.message/ws2",
                            "body": {"msgtype": "m.text", "body": "from ws"}}))
        for _ in range(3):  # the response, and the sync frame with the event (either order)
            if json.loads(ws.recv(timeout=120)).get("type") == "response":
                break


def run_profiled(binary: Path, tmp: Path) -> Path:
    out = tmp / "callgrind.out"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRELLIS_")}
    env.update(TRELLIS_SERVER_NAME="localhost", TRELLIS_LISTEN__CLIENT=f"127.0.0.1:{port}",
               TRELLIS_DATABASE__PATH=str(tmp / "db"), TRELLIS_RATE_LIMITS__ENABLED="false",
               TRELLIS_LOGGING__LEVEL="warn", TRELLIS_PRESENCE__ENABLED="false")
    cmd = ["valgrind", "--tool=callgrind", "--demangle=no", f"--callgrind-out-file={out}", str(binary)]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(tmp / "server.log", "wb"))
    api = Api(f"http://127.0.0.1:{port}")
    try:
        for _ in range(240):
            try:
                api.call("GET", "/_matrix/client/versions", timeout=5)
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError("the server did not answer within 120 s")
        workload(api)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=300)
    return out


def first_run_order(profile: Path) -> list[str]:
    """Function names in the order callgrind first met them (its name ids grow as it goes)."""
    seen: dict[int, str] = {}
    for line in profile.read_text(errors="replace").splitlines():
        m = re.match(r"c?fn=\((\d+)\) (.+)", line)
        if m:
            seen.setdefault(int(m.group(1)), m.group(2))
    return [name for _, name in sorted(seen.items())]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache" / "trellis-target"))
    ap.add_argument("--binary", type=Path, default=target / "release" / "trellis")
    p = ap.parse_args()
    defined = set(subprocess.run(["nm", "--defined-only", "--format=just-symbols", str(p.binary)],
                                 check=True, capture_output=True, text=True).stdout.split())
    with tempfile.TemporaryDirectory(prefix="trellis-order-") as tmp:
        names = [n for n in first_run_order(run_profiled(p.binary, Path(tmp))) if n in defined]
    patterns = list(dict.fromkeys(pattern(n) for n in names))
    OUT.write_text("\n".join(patterns) + "\n")
    print(f"{len(patterns)} patterns ({len(names)} functions) written to {OUT.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
