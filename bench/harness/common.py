"""Shared by the harness: paths, logging and notes, /proc readings, percentiles."""

from __future__ import annotations

import os
import platform
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parent.parent.parent
BENCH = REPO / "bench"
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or Path(os.environ.get("HOME", "/var/tmp")) / ".cache" / "trellis-target")
COMMAND_MARK = "TRELLIS_BENCH_COMMAND"
CLK_TCK = os.sysconf("SC_CLK_TCK")
WS_PATH = "/_matrix/client/unstable/org.trellis.ws/v1/connect"
V3 = "/_matrix/client/v3"
NOTES: list[str] = []


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


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

