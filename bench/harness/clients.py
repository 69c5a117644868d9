"""The harness's clients: aiohttp for set-up, a minimal HTTP/1.1 keep-alive client for the measured
hot paths, and the Matrix calls the phases share."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Optional
from urllib.parse import quote, urlsplit

import aiohttp

from .common import V3

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


