"""A minimal synchronous Matrix client (Client-Server API v3, stdlib urllib only).

Every request has a socket timeout; every wait has a deadline. A `Client` remembers everything its
/sync responses delivered (`self.seen`, a list of SyncEvent in arrival order) so `wait_for()`
predicates can look at the whole history, not only the latest batch: a test never misses an
event because an earlier wait already consumed the sync that carried it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

PASSWORD = "correct horse battery staple"
REQUEST_TIMEOUT_S = 30.0
DEFAULT_WAIT_S = 30.0
SYNC_POLL_MS = 5_000  # one long-poll; wait_for loops until its own deadline
SYNC_FILTER = json.dumps({"room": {"timeline": {"limit": 100}, "state": {"lazy_load_members": False}}},
                         separators=(",", ":"))

T = TypeVar("T")
_counter = itertools.count(1)


class MatrixError(Exception):
    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        self.status = status
        self.body = body if isinstance(body, dict) else {"_raw": body}
        self.errcode = self.body.get("errcode")
        super().__init__(f"{method} {path} -> {status} {self.errcode or ''} {self.body.get('error', body)}")


@dataclass
class SyncEvent:
    section: str  # timeline | state | ephemeral | account_data | invite | leave_timeline | leave_state | presence | to_device
    room_id: Optional[str]
    event: dict

    @property
    def type(self) -> str:
        return self.event.get("type", "")


@dataclass
class RoomSync:
    """Per-room bookkeeping across syncs."""
    membership: Optional[str] = None  # join | invite | leave | knock (the section it last appeared in)
    prev_batches: list[str] = field(default_factory=list)
    limited: bool = False  # some timeline batch was limited (a gap)


def canonical_json(value: Any) -> bytes:
    """The Matrix canonical JSON form (sorted keys, no whitespace, UTF-8)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _unpadded_b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _q(s: str) -> str:
    return urllib.parse.quote(s, safe="")


def http(method: str, url: str, body: Any = None, token: Optional[str] = None,
         timeout: float = REQUEST_TIMEOUT_S) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        parsed = json.loads(raw) if raw else {}
    except ValueError:
        parsed = raw[:500].decode(errors="replace")
    return status, parsed


class Client:
    def __init__(self, server, user_id: str, access_token: str, device_id: str = "") -> None:
        self.server = server  # a HomeServer (base_url, server_name)
        self.base_url = server.base_url
        self.user_id = user_id
        self.access_token = access_token
        self.device_id = device_id
        self.since: Optional[str] = None
        self.seen: list[SyncEvent] = []
        self.rooms: dict[str, RoomSync] = {}
        self.device_lists_changed: list[str] = []  # device_lists.changed of every sync, in order
        self._txn = itertools.count(1)

    def __repr__(self) -> str:
        return f"<Client {self.user_id}>"

    # --- plumbing ------------------------------------------------------------------------------

    def request_raw(self, method: str, path: str, body: Any = None, params: Optional[dict] = None,
                    timeout: float = REQUEST_TIMEOUT_S) -> tuple[int, Any]:
        url = self.base_url + path
        if params:
            url += "?" + urllib.parse.urlencode(
                [(k, x) for k, v in params.items() if v is not None for x in (v if isinstance(v, list) else [v])])
        return http(method, url, body, self.access_token, timeout)

    def request(self, method: str, path: str, body: Any = None, params: Optional[dict] = None,
                timeout: float = REQUEST_TIMEOUT_S) -> Any:
        status, data = self.request_raw(method, path, body, params, timeout)
        if not 200 <= status < 300:
            raise MatrixError(method, path, status, data)
        return data

    def txn_id(self) -> str:
        return f"t{next(self._txn)}-{secrets.token_hex(3)}"

    # --- rooms ---------------------------------------------------------------------------------

    def create_room(self, alias: Optional[str] = None, room_version: Optional[str] = None,
                    preset: str = "public_chat", invite: Optional[list[str]] = None,
                    name: Optional[str] = None, **extra: Any) -> str:
        body: dict[str, Any] = {"preset": preset, **extra}
        if alias:
            body["room_alias_name"] = alias
        if room_version:
            body["room_version"] = room_version
        if invite:
            body["invite"] = invite
        if name:
            body["name"] = name
        return self.request("POST", "/_matrix/client/v3/createRoom", body)["room_id"]

    def join(self, room: str, via: Optional[list[str]] = None) -> str:
        """Join by room ID or alias; `via` servers go out both as `server_name` and as `via`."""
        params = {"server_name": via, "via": via} if via else None
        return self.request("POST", f"/_matrix/client/v3/join/{_q(room)}", {}, params)["room_id"]

    def leave(self, room_id: str, reason: Optional[str] = None) -> None:
        self.request("POST", f"/_matrix/client/v3/rooms/{_q(room_id)}/leave", {"reason": reason} if reason else {})

    def _membership_action(self, action: str, room_id: str, user_id: str, reason: Optional[str]) -> None:
        body = {"user_id": user_id}
        if reason:
            body["reason"] = reason
        self.request("POST", f"/_matrix/client/v3/rooms/{_q(room_id)}/{action}", body)

    def invite(self, room_id: str, user_id: str, reason: Optional[str] = None) -> None:
        self._membership_action("invite", room_id, user_id, reason)

    def kick(self, room_id: str, user_id: str, reason: Optional[str] = None) -> None:
        self._membership_action("kick", room_id, user_id, reason)

    def ban(self, room_id: str, user_id: str, reason: Optional[str] = None) -> None:
        self._membership_action("ban", room_id, user_id, reason)

    def unban(self, room_id: str, user_id: str, reason: Optional[str] = None) -> None:
        self._membership_action("unban", room_id, user_id, reason)

    def send(self, room_id: str, event_type: str, content: dict) -> str:
        path = f"/_matrix/client/v3/rooms/{_q(room_id)}/send/{_q(event_type)}/{self.txn_id()}"
        return self.request("PUT", path, content)["event_id"]

    def send_message(self, room_id: str, body: str, msgtype: str = "m.text") -> str:
        return self.send(room_id, "m.room.message", {"msgtype": msgtype, "body": body})

    def send_state(self, room_id: str, event_type: str, content: dict, state_key: str = "") -> str:
        path = f"/_matrix/client/v3/rooms/{_q(room_id)}/state/{_q(event_type)}/{_q(state_key)}"
        return self.request("PUT", path, content)["event_id"]

    def get_state(self, room_id: str, event_type: str, state_key: str = "") -> dict:
        path = f"/_matrix/client/v3/rooms/{_q(room_id)}/state/{_q(event_type)}/{_q(state_key)}"
        return self.request("GET", path)

    def room_state(self, room_id: str) -> list[dict]:
        """The room's full current state as events (GET /rooms/{roomId}/state)."""
        return self.request("GET", f"/_matrix/client/v3/rooms/{_q(room_id)}/state")

    def get_event(self, room_id: str, event_id: str) -> dict:
        return self.request("GET", f"/_matrix/client/v3/rooms/{_q(room_id)}/event/{_q(event_id)}")

    def messages(self, room_id: str, from_token: Optional[str] = None, direction: str = "b", limit: int = 50,
                 to_token: Optional[str] = None) -> dict:
        params = {"dir": direction, "limit": str(limit), "from": from_token, "to": to_token}
        return self.request("GET", f"/_matrix/client/v3/rooms/{_q(room_id)}/messages", params=params)

    def paginate_back(self, room_id: str, from_token: str, until: Callable[[list[dict]], bool],
                      max_pages: int = 20, limit: int = 50) -> list[dict]:
        """/messages backwards from `from_token` until `until(events so far)` or the start of the
        room; returns events newest first. Bounded by max_pages."""
        events: list[dict] = []
        token: Optional[str] = from_token
        for _ in range(max_pages):
            page = self.messages(room_id, token, "b", limit)
            chunk = page.get("chunk", [])
            events.extend(chunk)
            if until(events):
                break
            nxt = page.get("end")
            if not chunk or not nxt or nxt == token:
                break
            token = nxt
        return events

    def typing(self, room_id: str, typing: bool = True, timeout_ms: int = 30_000) -> None:
        body: dict[str, Any] = {"typing": typing}
        if typing:
            body["timeout"] = timeout_ms
        self.request("PUT", f"/_matrix/client/v3/rooms/{_q(room_id)}/typing/{_q(self.user_id)}", body)

    def receipt(self, room_id: str, event_id: str, receipt_type: str = "m.read") -> None:
        path = f"/_matrix/client/v3/rooms/{_q(room_id)}/receipt/{_q(receipt_type)}/{_q(event_id)}"
        self.request("POST", path, {})

    def set_presence(self, presence: str, status_msg: Optional[str] = None) -> None:
        body: dict[str, Any] = {"presence": presence}
        if status_msg is not None:
            body["status_msg"] = status_msg
        self.request("PUT", f"/_matrix/client/v3/presence/{_q(self.user_id)}/status", body)

    def get_presence(self, user_id: str) -> dict:
        return self.request("GET", f"/_matrix/client/v3/presence/{_q(user_id)}/status")

    def joined_members(self, room_id: str) -> dict:
        return self.request("GET", f"/_matrix/client/v3/rooms/{_q(room_id)}/joined_members")["joined"]

    def members(self, room_id: str) -> list[dict]:
        """GET /rooms/{roomId}/members: the room's m.room.member events."""
        return self.request("GET", f"/_matrix/client/v3/rooms/{_q(room_id)}/members")["chunk"]

    def forget(self, room_id: str) -> None:
        self.request("POST", f"/_matrix/client/v3/rooms/{_q(room_id)}/forget", {})

    # --- profile and devices -------------------------------------------------------------------

    def set_displayname(self, displayname: str) -> None:
        self.request("PUT", f"/_matrix/client/v3/profile/{_q(self.user_id)}/displayname",
                     {"displayname": displayname})

    def set_avatar_url(self, avatar_url: str) -> None:
        self.request("PUT", f"/_matrix/client/v3/profile/{_q(self.user_id)}/avatar_url",
                     {"avatar_url": avatar_url})

    def rename_device(self, device_id: str, display_name: str) -> None:
        self.request("PUT", f"/_matrix/client/v3/devices/{_q(device_id)}", {"display_name": display_name})

    def upload_device_keys(self) -> dict:
        """Uploads device keys for this client's device, self-signed with a fresh ed25519 key
        (servers drop remote device keys whose self-signature does not verify); returns them."""
        signing = Ed25519PrivateKey.generate()
        public = signing.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        keys: dict[str, Any] = {
            "user_id": self.user_id, "device_id": self.device_id,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {f"curve25519:{self.device_id}": _unpadded_b64(secrets.token_bytes(32)),
                     f"ed25519:{self.device_id}": _unpadded_b64(public)},
        }
        signature = signing.sign(canonical_json(keys))
        keys["signatures"] = {self.user_id: {f"ed25519:{self.device_id}": _unpadded_b64(signature)}}
        self.request("POST", "/_matrix/client/v3/keys/upload", {"device_keys": keys})
        return keys

    def keys_query(self, user_ids: list[str]) -> dict:
        return self.request("POST", "/_matrix/client/v3/keys/query",
                            {"device_keys": {u: [] for u in user_ids}, "timeout": 10_000})

    # --- sync ----------------------------------------------------------------------------------

    def sync(self, timeout_ms: int = 0, set_presence: str = "offline") -> dict:
        """One /sync from `self.since` (initial if None); records what it delivered.
        set_presence=offline (the default here) keeps syncing from changing presence, so the
        presence tests control it explicitly."""
        params = {"timeout": str(timeout_ms), "filter": SYNC_FILTER, "since": self.since,
                  "set_presence": set_presence}
        body = self.request("GET", "/_matrix/client/v3/sync", params=params,
                            timeout=timeout_ms / 1000 + REQUEST_TIMEOUT_S)
        self._record(body)
        self.since = body.get("next_batch", self.since)
        return body

    def _record(self, body: dict) -> None:
        add = self.seen.append
        rooms = body.get("rooms", {})
        for room_id, r in rooms.get("join", {}).items():
            rs = self.rooms.setdefault(room_id, RoomSync())
            rs.membership = "join"
            tl = r.get("timeline", {})
            if tl.get("prev_batch"):
                rs.prev_batches.append(tl["prev_batch"])
            rs.limited = rs.limited or bool(tl.get("limited"))
            for e in r.get("state", {}).get("events", []):
                add(SyncEvent("state", room_id, e))
            for e in tl.get("events", []):
                add(SyncEvent("timeline", room_id, e))
            for e in r.get("ephemeral", {}).get("events", []):
                add(SyncEvent("ephemeral", room_id, e))
            for e in r.get("account_data", {}).get("events", []):
                add(SyncEvent("account_data", room_id, e))
        for room_id, r in rooms.get("invite", {}).items():
            self.rooms.setdefault(room_id, RoomSync()).membership = "invite"
            for e in r.get("invite_state", {}).get("events", []):
                add(SyncEvent("invite", room_id, e))
        for room_id, r in rooms.get("leave", {}).items():
            self.rooms.setdefault(room_id, RoomSync()).membership = "leave"
            for e in r.get("state", {}).get("events", []):
                add(SyncEvent("leave_state", room_id, e))
            for e in r.get("timeline", {}).get("events", []):
                add(SyncEvent("leave_timeline", room_id, e))
        for e in body.get("presence", {}).get("events", []):
            add(SyncEvent("presence", None, e))
        for e in body.get("to_device", {}).get("events", []):
            add(SyncEvent("to_device", None, e))
        self.device_lists_changed.extend(body.get("device_lists", {}).get("changed", []))

    def wait_for(self, predicate: Callable[[], Optional[T]], what: str, timeout: float = DEFAULT_WAIT_S) -> T:
        """Long-poll /sync until `predicate()` (which looks at self.seen / self.rooms) returns
        something truthy; return it. TimeoutError after `timeout` seconds, naming `what`."""
        deadline = time.monotonic() + timeout
        if self.since is None:
            self.sync(0)
        while True:
            value = predicate()
            if value:
                return value
            left = deadline - time.monotonic()
            if left <= 0:
                recent = [(s.section, s.room_id, s.type, s.event.get("sender"), s.event.get("state_key"),
                           s.event.get("content")) for s in self.seen[-8:]]
                raise TimeoutError(f"{self.user_id} on {self.server.server_name}: no {what} within {timeout:.0f}s; "
                                   f"last events seen: {recent}")
            self.sync(int(min(left, SYNC_POLL_MS / 1000) * 1000))

    # --- predicates and waits over what sync delivered ------------------------------------------

    def events(self, room_id: Optional[str] = None, sections: tuple[str, ...] = ("timeline",),
               event_type: Optional[str] = None) -> list[dict]:
        return [s.event for s in self.seen
                if s.section in sections and (room_id is None or s.room_id == room_id)
                and (event_type is None or s.type == event_type)]

    def timeline_ids(self, room_id: str) -> list[str]:
        return [e["event_id"] for e in self.events(room_id, ("timeline", "leave_timeline")) if "event_id" in e]

    def wait_for_event(self, room_id: str, match: Callable[[dict], bool], what: str,
                       sections: tuple[str, ...] = ("timeline", "leave_timeline"),
                       timeout: float = DEFAULT_WAIT_S) -> dict:
        def pred():
            return next((e for e in self.events(room_id, sections) if match(e)), None)
        return self.wait_for(pred, what, timeout)

    def wait_for_event_id(self, room_id: str, event_id: str, timeout: float = DEFAULT_WAIT_S) -> dict:
        return self.wait_for_event(room_id, lambda e: e.get("event_id") == event_id,
                                   f"event {event_id} in {room_id}", timeout=timeout)

    def wait_for_membership(self, room_id: str, user_id: str, membership: str,
                            timeout: float = DEFAULT_WAIT_S) -> dict:
        """An m.room.member event for user_id with that membership, in the timeline or state
        (joined or left rooms) or, for invites, the invite_state."""
        def match(e: dict) -> bool:
            return (e.get("type") == "m.room.member" and e.get("state_key") == user_id
                    and e.get("content", {}).get("membership") == membership)
        return self.wait_for_event(room_id, match, f"{membership} of {user_id} in {room_id}",
                                   ("timeline", "state", "leave_timeline", "leave_state", "invite"), timeout)

    def wait_for_room_section(self, room_id: str, membership: str, timeout: float = DEFAULT_WAIT_S) -> RoomSync:
        def pred():
            rs = self.rooms.get(room_id)
            return rs if rs is not None and rs.membership == membership else None
        return self.wait_for(pred, f"{room_id} under rooms.{membership}", timeout)

    def wait_for_ephemeral(self, room_id: str, event_type: str, match: Callable[[dict], bool], what: str,
                           timeout: float = DEFAULT_WAIT_S) -> dict:
        return self.wait_for_event(room_id, lambda e: e.get("type") == event_type and match(e), what,
                                   ("ephemeral",), timeout)

    def wait_for_typing(self, room_id: str, user_ids: list[str], timeout: float = DEFAULT_WAIT_S) -> dict:
        """The latest m.typing of the room lists exactly `user_ids` (any order)."""
        want = sorted(user_ids)

        def pred():
            typing = self.events(room_id, ("ephemeral",), "m.typing")
            return typing[-1] if typing and sorted(typing[-1]["content"].get("user_ids", [])) == want else None
        return self.wait_for(pred, f"m.typing {want} in {room_id}", timeout)

    def wait_for_receipt(self, room_id: str, event_id: str, user_id: str, receipt_type: str = "m.read",
                         timeout: float = DEFAULT_WAIT_S) -> dict:
        """The receipt's content for user_id ({"ts": ...}) on event_id."""
        def pred():
            for e in self.events(room_id, ("ephemeral",), "m.receipt"):
                r = e.get("content", {}).get(event_id, {}).get(receipt_type, {}).get(user_id)
                if r is not None:
                    return r
            return None
        return self.wait_for(pred, f"{receipt_type} receipt of {user_id} on {event_id}", timeout)

    def wait_for_presence(self, user_id: str, presence: str, status_msg: Optional[str] = None,
                          timeout: float = DEFAULT_WAIT_S) -> dict:
        """An m.presence event for user_id with that presence (and status_msg, if given)."""
        def pred():
            for e in reversed(self.events(None, ("presence",), "m.presence")):
                c = e.get("content", {})
                if e.get("sender") == user_id and c.get("presence") == presence and (
                        status_msg is None or c.get("status_msg") == status_msg):
                    return e
            return None
        return self.wait_for(pred, f"presence {presence!r} of {user_id}", timeout)


# --- registration ------------------------------------------------------------------------------

def unique_localpart(prefix: str = "u") -> str:
    return f"{prefix}{next(_counter)}x{secrets.token_hex(3)}"


def register(server, localpart: Optional[str] = None, password: str = PASSWORD,
             shared_secret: bool = False) -> Client:
    """Register a user on `server` and return a Client for it. Open registration with
    m.login.dummy (first without a UIA session, then with the session the 401 hands out),
    or, with shared_secret=True, Synapse-style /_synapse/admin/v1/register (both servers)."""
    localpart = localpart or unique_localpart()
    if shared_secret:
        return _register_shared_secret(server, localpart, password)
    url = server.base_url + "/_matrix/client/v3/register"
    body: dict[str, Any] = {"username": localpart, "password": password, "auth": {"type": "m.login.dummy"},
                            "initial_device_display_name": "complement"}
    status, data = 0, None
    for _ in range(3):  # plain, then with the UIA session; bounded
        status, data = http("POST", url, body)
        if status == 200:
            return Client(server, data["user_id"], data["access_token"], data.get("device_id", ""))
        if status == 401 and isinstance(data, dict) and data.get("session"):
            body["auth"] = {"type": "m.login.dummy", "session": data["session"]}
            continue
        break
    raise MatrixError("POST", "/register", status, data)


def _register_shared_secret(server, localpart: str, password: str) -> Client:
    url = server.base_url + "/_synapse/admin/v1/register"
    status, data = http("GET", url)
    if status != 200:
        raise MatrixError("GET", "/_synapse/admin/v1/register", status, data)
    nonce = data["nonce"]
    mac = hmac.new(server.shared_secret.encode(), digestmod=hashlib.sha1)
    mac.update(b"\x00".join([nonce.encode(), localpart.encode(), password.encode(), b"notadmin"]))
    body = {"nonce": nonce, "username": localpart, "password": password, "admin": False, "mac": mac.hexdigest()}
    status, data = http("POST", url, body)
    if status != 200:
        raise MatrixError("POST", "/_synapse/admin/v1/register", status, data)
    return Client(server, data["user_id"], data["access_token"], data.get("device_id", ""))
