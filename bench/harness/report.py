"""The report: Markdown tables side by side, and docs/benchmarks.md around them."""

from __future__ import annotations

import argparse
import platform
from importlib.metadata import version as pkg_version
from typing import Optional

from .common import NOTES, mib, triple

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

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
    L += wake_tables(p, srv)
    return "\n".join(L)


def wake_tables(p: argparse.Namespace, srv: list) -> list[str]:
    """The wake-up phases: held long-polls outside a busy room, and many rooms at once."""
    if not any(s and ("wake" in s or "many_rooms" in s) for _, s in srv):
        return []

    def f3(v: Optional[float]) -> str:
        return "–" if v is None else f"{v:.3f}"

    def wrow(label: str, f, target: str = "") -> str:
        return f"| {label} | " + " | ".join(f(s["wake"]) if s and "wake" in s else "–" for _, s in srv) + f" | {target} |"

    def mrow(label: str, f, target: str = "") -> str:
        cells = (f(s["many_rooms"]) if s and "many_rooms" in s else "–" for _, s in srv)
        return f"| {label} | " + " | ".join(cells) + f" | {target} |"

    head = ["| | Trellis | Synapse | Trellis target |", "|---|---:|---:|---|"]
    L = ["", f"### Wake-ups by relevance: {p.rate:g} messages/s for {p.wake_seconds:g} s in the room of {p.users} users "
             f"({p.receivers} receivers), alone and with long-polls of users outside it held", ""]
    L += head
    L.append(wrow("Long-polls held outside the room (K)", lambda w: f"{w.get('held', '–')} / {w['k']}"))
    L.append(wrow("Seconds to open them and settle", lambda w: f"{w.get('open_seconds', 0):.1f}"))
    L.append(wrow("Server CPU per message, alone (ms)", lambda w: f3(w["quiet"]["cpu_ms_per_msg"])))
    L.append(wrow("Server CPU per message, with them held (ms)", lambda w: f3(w["busy"]["cpu_ms_per_msg"]) if "busy" in w else "–"))
    L.append(wrow("Ratio (with ÷ alone)", lambda w: "–" if w.get("ratio") is None else f"{w['ratio']:.2f}x", "≤ 1.2x"))
    L.append(wrow("Delivery latency p50 / p95 / p99, alone (ms)", lambda w: triple(w["quiet"]["deliv"])))
    L.append(wrow("Delivery latency p50 / p95 / p99, with them held (ms)",
                  lambda w: triple(w["busy"]["deliv"]) if "busy" in w else "–"))
    L.append(wrow("Held long-polls that returned during the phase / errors",
                  lambda w: f"{w.get('returned_during', '–')} / {w.get('errors', '–')}", "0"))
    rate_total = p.fanout_rate * p.fanout_rooms
    L += ["", f"### Many rooms: {p.fanout_rooms} rooms × {p.fanout_receivers} long-polling receivers, one sender per room "
              f"at {p.fanout_rate:g} messages/s ({rate_total:g}/s in all) for {p.fanout_seconds:g} s", ""]
    L += head
    L.append(mrow("Delivery latency p50 / p95 / p99 (ms)", lambda r: triple(r["deliv"]), "p99 ≤ 20 ms"))
    L.append(mrow("Send latency p50 / p95 / p99 (ms)", lambda r: triple(r["send_lat"])))
    L.append(mrow("Deliveries received / expected", lambda r: f"{r['delivered']} / {r['expected_deliveries']}"))
    L.append(mrow("Sync responses received (of which empty)", lambda r: f"{r['responses']} ({r['empty']})"))
    L.append(mrow("Server CPU per message (ms)", lambda r: f3(r["cpu_ms_per_msg"])))
    L.append(mrow("Server CPU utilisation (cores)", lambda r: f"{r['server_cpu_util']:.2f}"))
    L.append(mrow("Other processes' CPU meanwhile (cores)", lambda r: f"{r['other_cpu_util']:.2f}"))
    return L


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
        f"{p.rate_seconds:g} s; idle long-polls: {k_line}, over {p.idle_users} users"
        + (f"; wake-ups: {p.wake_polls} long-polls of users outside the room held during {p.wake_seconds:g} s at "
           f"{p.rate:g} messages/s (and the same run without them), then {p.fanout_rooms} rooms × "
           f"{p.fanout_receivers} receivers with one sender each at {p.fanout_rate:g} messages/s for "
           f"{p.fanout_seconds:g} s" if p.wake_phases else ""),
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
        found, listed, hot = info["symbol_order"]
        lines += [
        "- Idle memory. Most of an idle server's resident set is code and RocksDB's bookkeeping. The",
        "  release link lays out first, side by side, the functions that start-up and the common",
        "  requests run (`bench/code-order.txt`, hash-free patterns recorded with callgrind by `bench/symbol_order.py`;",
        f"  {found} of its {listed} patterns match this binary, {hot / 2**20:.1f} MiB of code in `.text.hot`),",
        "  so the process maps a few MiB of its",
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


