"""Building blocks the scenarios share."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Optional

from .client import Client


@dataclass
class Pair:
    """Two running servers: `a` hosts the rooms, `b` joins them over federation."""
    a: "object"  # HomeServer
    b: "object"  # HomeServer
    id: str

    def __iter__(self):
        return iter((self.a, self.b))


@dataclass
class Room:
    room_id: str
    alias: str
    alice: Client  # on server a, created the room
    bob: Client  # on server b, joined over federation


def users(pair) -> tuple[Client, Client]:
    """A fresh user on each server of the pair, both with an initial sync done."""
    alice = pair.a.register()
    bob = pair.b.register()
    alice.sync()
    bob.sync()
    return alice, bob


def joined_room(pair, room_version: Optional[str] = None, preset: str = "public_chat",
                alice: Optional[Client] = None, bob: Optional[Client] = None, **create_args) -> Room:
    """alice (server a) creates a room with an alias; bob (server b) joins it by that alias over
    federation (`create_args` go to createRoom as they are); returns once alice's /sync shows
    bob's join and bob's /sync shows the room."""
    if alice is None or bob is None:
        alice, bob = users(pair)
    local = "r" + secrets.token_hex(4)
    room_id = alice.create_room(alias=local, room_version=room_version, preset=preset, **create_args)
    alias = f"#{local}:{pair.a.server_name}"
    joined = bob.join(alias)
    assert joined == room_id, f"joining {alias} gave {joined}, the room is {room_id}"
    alice.wait_for_membership(room_id, bob.user_id, "join")
    # And bob's own /sync has the room. Not a formality: Synapse joins remote rooms with partial
    # state first and leaves them out of /sync (without lazy-loaded members) until the state
    # is complete; a typing notification that arrives in that window is never delivered to
    # bob's client. Tests start once bob's client can see the room, as a person would.
    bob.wait_for_room_section(room_id, "join")
    bob.wait_for_membership(room_id, bob.user_id, "join")
    return Room(room_id, alias, alice, bob)


def bodies(events: list[dict]) -> list[str]:
    return [e["content"]["body"] for e in events if e.get("type") == "m.room.message"]
