"""The measured phases (closed loop, fixed rate, idle long-polls, ...) and one server's whole run."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import quote, urlencode

import aiohttp
import websockets

from .clients import Client, Http1, Http1Pool, User, bounded_gather, errtext, register, sync_filter, sync_now, upload_filter
from .common import (V3, WS_PATH, cpu_ms, harness_cpu_ms, log, machine_busy_ms, mib, note, now_ns, open_fds, status_kb,
                     triple)
from .servers import Server

# ----------------------------------------------------------------------------- phases

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


async def send_one(ctx: Ctx, ph: Phase, sidx: int, u: User, i: int, room_id: Optional[str] = None) -> None:
    t0 = now_ns()
    body = {"msgtype": "m.text", "body": f"bench {ph.tag} {sidx} {i} {t0}"}
    path = f"{V3}/rooms/{quote(room_id or ctx.room_id, safe='')}/send/m.room.message/{ph.tag}.{sidx}.{i}"
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


async def http_receiver(ctx: Ctx, ph: Phase, ridx: int, u: User, stop: asyncio.Event, deadline: float,
                        room_id: Optional[str] = None) -> None:
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
        ph.consume(ridx, timeline_of(data, room_id or ctx.room_id), t)
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


# ----------------------------------------------------------------------------- wake-up phases

def _release(tr: dict) -> None:
    if not tr["released"]:
        tr["released"] = True
        tr["gate"].release()


class HeldPolls:
    """K `/sync` long-polls (timeout 60000, incremental, so they wait) over `users`' tokens, each
    sent once: they are held, not renewed, so none returns unless the server wakes it (or its
    60 s timeout passes, which the phases below stay clear of and count)."""

    def __init__(self, ctx: Ctx, users: list[User], k: int) -> None:
        self.ctx, self.users, self.k = ctx, users, k
        self.state = {"sent": 0, "returned": 0, "errors": 0}
        self.session: Optional[aiohttp.ClientSession] = None
        self.tasks: list[asyncio.Task] = []
        self.opened_at = 0.0

    async def _poll(self, i: int, gate: asyncio.Semaphore) -> None:
        u = self.users[i % len(self.users)]
        await gate.acquire()  # released once the request's headers are written
        tr = {"released": False, "gate": gate}
        self.state["sent"] += 1
        try:
            status, data = await self.ctx.client.call(
                "GET", V3 + "/sync", u.token, session=self.session, trace=tr, timeout=100,
                params={"since": u.since, "timeout": "60000", "filter": u.filter_id})
            self.state["returned"] += 1
            if status != 200:
                self.state["errors"] += 1
                note(f"{self.ctx.server.name}: held /sync answered {errtext(status, data)}")
        except (asyncio.TimeoutError, aiohttp.ClientError) as e:
            self.state["errors"] += 1
            note(f"{self.ctx.server.name}: held /sync failed: {type(e).__name__} {e}")
        finally:
            _release(tr)

    async def open(self, limit_s: float) -> float:
        """Send them all and wait until the server has been (almost) idle for 2 s; returns seconds."""
        pid = self.ctx.server.pid
        tc = aiohttp.TraceConfig()

        async def headers_sent(session, trace_ctx, params) -> None:
            if trace_ctx.trace_request_ctx is not None:
                _release(trace_ctx.trace_request_ctx)
        tc.on_request_headers_sent.append(headers_sent)
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), trace_configs=[tc])
        gate = asyncio.Semaphore(64)
        self.opened_at = time.monotonic()
        self.tasks = [asyncio.create_task(self._poll(i, gate)) for i in range(self.k)]
        deadline = self.opened_at + limit_s
        last_cpu, calm = cpu_ms(pid), 0
        while time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            c = cpu_ms(pid)
            busy, last_cpu = (c - last_cpu) / 1000.0, c
            calm = calm + 1 if self.state["sent"] == self.k and busy < 0.05 else 0
            if calm >= 2:
                break
        return time.monotonic() - self.opened_at

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.session is not None:
            await self.session.close()


async def idle_with_traffic(ctx: Ctx, idle_users: list[User], k: int, rate: float, seconds: float, drain_s: float,
                            limit_s: float) -> dict:
    """Server CPU per message at `rate` messages/s in the bench room, first alone, then with K
    long-polls of users outside the room held: waking them for the room's messages would show
    as CPU per message (the target: within 1.2x)."""
    quiet = await fixed_rate(ctx, "wake_quiet", "http", rate, seconds, drain_s)
    held = HeldPolls(ctx, idle_users, k)
    res: dict = {"k": k, "users": len(idle_users), "quiet": quiet}
    try:
        res["open_seconds"] = await held.open(limit_s)
        res["held"] = held.state["sent"] - held.state["returned"]
        returned0 = held.state["returned"]
        res["busy"] = await fixed_rate(ctx, "wake_busy", "http", rate, seconds, drain_s)
        res["returned_during"] = held.state["returned"] - returned0
        res["errors"] = held.state["errors"]
        if time.monotonic() - held.opened_at > 55:
            note(f"{ctx.server.name}: held long-polls were open over 55 s by the end of the measured phase: "
                 "some may have reached their 60 s timeout inside it")
    finally:
        await held.close()
    q, b = quiet.get("cpu_ms_per_msg"), res["busy"].get("cpu_ms_per_msg")
    res["ratio"] = b / q if q and b is not None else None
    log(f"{ctx.server.name} idle polls with traffic: {res['held']}/{k} held ({res['open_seconds']:.1f} s to open), "
        f"CPU/msg {q or 0:.3f} → {b or 0:.3f} ms ({res['ratio'] or 0:.2f}x), {res['returned_during']} returned meanwhile")
    return res


async def many_rooms(ctx: Ctx, rooms: list[tuple[str, User, list[User]]], rate: float, seconds: float,
                     drain_s: float) -> dict:
    """`(room, sender, receivers)` per room: every receiver long-polls `/sync` (filtered to its room),
    every sender sends `rate` messages/s into its room for `seconds`. Delivery latency is over
    every receiver of each message; a server that wakes every waiter for every message pays for
    the other rooms' traffic in its latencies."""
    pid = ctx.server.pid
    receivers = [(room, u) for room, _, members in rooms for u in members]
    n = int(round(rate * seconds))
    tag = f"{ctx.nonce}{len(ctx.results)}"
    ph = Phase("many_rooms", tag, len(receivers), n)
    stop = asyncio.Event()
    deadline = time.monotonic() + seconds + 120
    await bounded_gather([sync_now(ctx.client, u) for _, u in receivers], 10)
    pool = Http1Pool(ctx.server.base)
    sub = Ctx(ctx.server, ctx.client, ctx.room_id, ctx.users, [], [], ctx.nonce, pool)
    tasks = [asyncio.create_task(http_receiver(sub, ph, i, u, stop, deadline, room)) for i, (room, u) in enumerate(receivers)]
    await asyncio.sleep(2.0)  # let the long-polls park

    async def sender(sidx: int, room: str, u: User) -> None:
        start = time.monotonic() + 0.05 + sidx / (rate * len(rooms))  # senders interleaved
        sends = []
        for i in range(n):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if time.monotonic() > deadline:
                break
            sends.append(asyncio.create_task(send_one(sub, ph, sidx, u, i, room)))
        await asyncio.gather(*sends)

    cpu0, h0, m0, t0 = cpu_ms(pid), harness_cpu_ms(), machine_busy_ms(), time.monotonic()
    await asyncio.gather(*(sender(i, room, s) for i, (room, s, _) in enumerate(rooms)))
    ph.expected = min(n, ph.sent // max(1, len(rooms)))
    ph.check_done()
    try:
        await asyncio.wait_for(ph.all_received.wait(), timeout=drain_s)
    except asyncio.TimeoutError:
        note(f"{ctx.server.name}: many_rooms: not every receiver had every message {drain_s:.0f} s after the last send")
    cpu1, h1, m1, t1 = cpu_ms(pid), harness_cpu_ms(), machine_busy_ms(), time.monotonic()
    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    pool.close()
    per_room = len(receivers) // max(1, len(rooms))
    res = {
        "name": "many_rooms", "rooms": len(rooms), "receivers": len(receivers), "rate": rate, "seconds": seconds,
        "sent": ph.sent, "send_errors": ph.send_errors, "recv_errors": ph.recv_errors,
        "send_lat": ph.send_lat, "deliv": ph.deliv, "delivered": sum(ph.counts),
        "expected_deliveries": ph.sent * per_room, "responses": ph.responses, "empty": ph.empty,
        "cpu_ms_per_msg": (cpu1 - cpu0) / ph.sent if ph.sent else None,
        "server_cpu_util": (cpu1 - cpu0) / 1000 / max(1e-9, t1 - t0),
        "harness_cpu_util": (h1 - h0) / 1000 / max(1e-9, t1 - t0),
        "other_cpu_util": max(0.0, (m1 - m0) - (cpu1 - cpu0) - (h1 - h0)) / 1000 / max(1e-9, t1 - t0),
        "rss_after_kb": status_kb(pid),
    }
    log(f"{ctx.server.name} many rooms: {ph.sent} sent into {len(rooms)} rooms, delivery {triple(ph.deliv)} ms, "
        f"{res['delivered']}/{res['expected_deliveries']} delivered, {ph.responses} sync responses ({ph.empty} empty), "
        f"CPU {res['cpu_ms_per_msg'] or 0:.3f} ms/msg")
    return res


async def setup_many_rooms(ctx: Ctx, n_rooms: int, per_room: int, timeline_limit: int) -> list[tuple[str, User, list[User]]]:
    """`n_rooms` rooms, each with a fresh sender (its creator) and `per_room` fresh receivers."""
    c = ctx.client
    need = n_rooms * (1 + per_room)
    creds = await bounded_gather([register(c, f"fan{i}", f"fan-password-{i}") for i in range(need)], 4)
    fresh = [User(10_000 + i, uid, tok) for i, (uid, tok) in enumerate(creds)]
    out = []
    for r in range(n_rooms):
        sender, members = fresh[r * (1 + per_room)], fresh[r * (1 + per_room) + 1:(r + 1) * (1 + per_room)]
        status, data = await c.call("POST", V3 + "/createRoom", sender.token,
                                    body={"preset": "public_chat", "name": f"fan {r}", "visibility": "private"}, timeout=60)
        if status != 200:
            raise RuntimeError(f"{ctx.server.name}: createRoom {errtext(status, data)}")
        room = data["room_id"]

        async def join(u: User) -> None:
            st, d = await c.call("POST", f"{V3}/rooms/{quote(room, safe='')}/join", u.token, body={}, timeout=60)
            if st != 200:
                raise RuntimeError(f"{ctx.server.name}: join {errtext(st, d)}")
        await bounded_gather([join(u) for u in members], 4)
        flt = sync_filter(room, timeline_limit)
        for u in [sender, *members]:
            u.filter_id = await upload_filter(c, u, flt)
        out.append((room, sender, members))
    await bounded_gather([sync_now(c, u) for _, s, m in out for u in [s, *m]], 4)
    return out


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
        if p.wake_phases:
            # Wake-ups by relevance: held polls of users outside the bench room while it has
            # traffic; then many rooms, each with its own sender and receivers.
            outside = [u for u in idle if u.index >= len(users)] or idle
            for u in outside:
                await sync_now(c, u)
            ctx.senders_http = Http1Pool(server.base)
            k_wake = min(k_idle, p.wake_polls)
            out["wake"] = await idle_with_traffic(ctx, outside, k_wake, p.rate, p.wake_seconds, drain, p.idle_limit)
            ctx.senders_http.close()
            t = time.monotonic()
            rooms = await setup_many_rooms(ctx, p.fanout_rooms, p.fanout_receivers, p.timeline_limit)
            log(f"{server.name}: {p.fanout_rooms} rooms × {p.fanout_receivers} receivers ready "
                f"({time.monotonic() - t:.1f} s)")
            out["many_rooms"] = await many_rooms(ctx, rooms, p.fanout_rate, p.fanout_seconds, drain)
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


