"""Forgetting a federated room: after leave + forget, /messages on it is 403 and it is gone
from /sync, even with `include_leave` (which shows left rooms that are not forgotten)."""

import itertools
import json

import pytest

from harness import MatrixError, joined_room

_limits = itertools.count(10)


def include_leave() -> str:
    """An include_leave filter, a different one each time: Synapse answers a repeated identical
    /sync request from a short-lived response cache, which would hide the forget."""
    return json.dumps({"room": {"include_leave": True, "timeline": {"limit": next(_limits)}}})


def initial_sync_leave(client) -> dict:
    """rooms.leave of a fresh initial /sync with include_leave."""
    body = client.request("GET", "/_matrix/client/v3/sync",
                          params={"filter": include_leave(), "timeout": "0", "set_presence": "offline"})
    return body.get("rooms", {}).get("leave", {})


def test_leave_and_forget_federated_room(servers):
    room = joined_room(servers)
    alice, bob, room_id = room.alice, room.bob, room.room_id
    hello = alice.send_message(room_id, "before the leave")
    bob.wait_for_event_id(room_id, hello)

    bob.leave(room_id)
    alice.wait_for_membership(room_id, bob.user_id, "leave")
    bob.wait_for_room_section(room_id, "leave")
    # Left but not forgotten: still readable up to the leave, and listed with include_leave.
    assert "before the leave" in [e["content"].get("body") for e in bob.messages(room_id)["chunk"]
                                  if e["type"] == "m.room.message"]
    assert room_id in initial_sync_leave(bob)

    bob.forget(room_id)
    with pytest.raises(MatrixError) as e:
        bob.messages(room_id)
    assert e.value.status == 403, e.value
    assert room_id not in initial_sync_leave(bob)
    # Nor does an incremental sync bring it back when the room moves on.
    after = alice.send_message(room_id, "after the forget")
    alice.wait_for_event_id(room_id, after)
    bob.sync(1_000)
    body = bob.request("GET", "/_matrix/client/v3/sync",
                       params={"filter": include_leave(), "timeout": "1000", "since": bob.since,
                               "set_presence": "offline"})
    assert room_id not in body.get("rooms", {}).get("leave", {})
    assert room_id not in body.get("rooms", {}).get("join", {})

    # The room itself lives on for alice.
    assert set(alice.joined_members(room_id)) == {alice.user_id}
