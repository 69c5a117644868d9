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
# Inside the venv from here on: the harness package (bench/harness/: common, servers, clients,
# phases, report).
# --------------------------------------------------------------------------------------------

import signal  # noqa: E402

sys.path.insert(0, str(BENCH))

from harness.common import NOTES, git, log, machine, note, raise_fd_limit  # noqa: E402,F811
from harness.phases import run_server  # noqa: E402
from harness.report import document, render  # noqa: E402
from harness.servers import Synapse, Trellis, build_trellis, presence_switch, symbol_order_coverage, uses_mimalloc  # noqa: E402
from importlib.metadata import version as pkg_version  # noqa: E402

try:
    import uvloop  # noqa: E402
except ImportError:  # pragma: no cover
    uvloop = None


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
    ap.add_argument("--wake-phases", action=argparse.BooleanOptionalAction, default=True,
                    help="the wake-up phases: held long-polls with traffic, and many rooms (default: on)")
    ap.add_argument("--wake-polls", type=int, help="long-polls of users outside the room held while it has traffic "
                                                   "(default: --idle-polls, capped by it)")
    ap.add_argument("--wake-seconds", type=float, help="seconds of each run of that phase, at --rate (default: --rate-seconds)")
    ap.add_argument("--fanout-rooms", type=int, help="rooms of the many-rooms phase, one sender each (default 20, --quick 4)")
    ap.add_argument("--fanout-receivers", type=int, help="long-polling receivers per room (default 10, --quick 5)")
    ap.add_argument("--fanout-rate", type=float, default=1.0, help="messages/s per sender in the many-rooms phase")
    ap.add_argument("--fanout-seconds", type=float, help="seconds of the many-rooms phase (default 60, --quick 10)")
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
                    rate_seconds=5 if q else 20, wait_quiet=0 if q else 900, synapse_sync_normal=not q, idle_polls=1000 if q else 10000, idle_users=50 if q else 200,
                    fanout_rooms=4 if q else 20, fanout_receivers=5 if q else 10, fanout_seconds=10 if q else 60)
    for k, v in defaults.items():
        if getattr(p, k) is None:
            setattr(p, k, v)
    if p.synapse_idle_polls is None:
        p.synapse_idle_polls = p.idle_polls
    if p.wake_polls is None:
        p.wake_polls = p.idle_polls
    if p.wake_seconds is None:
        p.wake_seconds = p.rate_seconds
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
            note(f"only {info['symbol_order'][0]} of the {info['symbol_order'][1]} patterns in bench/code-order.txt "
                 "match this binary: functions were renamed; regenerate it with bench/symbol_order.py")
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
