"""The servers under test: Trellis (built here) and Synapse (from PyPI), each started on loopback
with a fresh database and stopped (SIGTERM, then SIGKILL) at the end."""

from __future__ import annotations

import argparse
import os
import re
import selectors
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Optional

import yaml

from .common import BENCH, REPO, TARGET, free_port, log

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


def symbol_order_coverage(binary: Path) -> Optional[tuple[int, int, int]]:
    """How many patterns of `bench/code-order.txt` match a function of the binary, and the size
    of the section the release link lays them out in: (found, listed, `.text.hot` bytes). Hashes
    are `*` there, so only renamed functions drop out; in v0 names (`.cargo/config.toml`) a
    pattern names one instantiation of a generic function."""
    order = BENCH / "code-order.txt"
    if not order.exists():
        return None
    listed = set(order.read_text().split())
    out = subprocess.run(["nm", "--defined-only", "--format=just-symbols", str(binary)],
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        return None
    stable = {re.sub(r"Cs[0-9A-Za-z]+_", "Cs*_", re.sub(r"17h[0-9a-f]{16}E$", "17h*", s)) for s in out.stdout.split()}
    sections = subprocess.run(["readelf", "-SW", str(binary)], capture_output=True, text=True, timeout=120)
    hot = 0
    for line in sections.stdout.splitlines():
        fields = line.replace("[ ", "[").split()
        if len(fields) > 5 and fields[1] == ".text.hot":
            hot = int(fields[5], 16)
    return len(listed & stable), len(listed), hot
