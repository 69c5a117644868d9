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


def leave_and_forget(client, room_id: str, watcher, hello: str) -> None:
    """client leaves room_id (watcher, who stays, sees it), checks the room is readable and
    listed with include_leave, forgets it, checks it is neither any more; then watcher sends
    a message and client's next syncs still do not bring the room back."""
    client.leave(room_id)
    watcher.wait_for_membership(room_id, client.user_id, "leave")
    client.wait_for_room_section(room_id, "leave")
    # Left but not forgotten: still readable up to the leave, and listed with include_leave.
    assert hello in [e["content"].get("body") for e in client.messages(room_id)["chunk"]
                     if e["type"] == "m.room.message"]
    assert room_id in initial_sync_leave(client)

    client.forget(room_id)
    with pytest.raises(MatrixError) as e:
        client.messages(room_id)
    assert e.value.status == 403, e.value
    assert room_id not in initial_sync_leave(client)
    # Nor does an incremental sync bring it back when the room moves on.
    after = watcher.send_message(room_id, "after the forget")
    watcher.wait_for_event_id(room_id, after)
    client.sync(1_000)
    body = client.request("GET", "/_matrix/client/v3/sync",
                          params={"filter": include_leave(), "timeout": "1000", "since": client.since,
                                  "set_presence": "offline"})
    assert room_id not in body.get("rooms", {}).get("leave", {})
    assert room_id not in body.get("rooms", {}).get("join", {})


def test_leave_and_forget_federated_room(servers):
    """bob, on b, forgets the room of a."""
    room = joined_room(servers)
    alice, bob, room_id = room.alice, room.bob, room.room_id
    hello = alice.send_message(room_id, "before the leave")
    bob.wait_for_event_id(room_id, hello)

    leave_and_forget(bob, room_id, alice, "before the leave")
    # The room itself lives on for alice.
    assert set(alice.joined_members(room_id)) == {alice.user_id}


def test_forget_on_the_resident_server(servers):
    """carol, on a, forgets a's room that bob (on b) is in; the room's events keep arriving
    on a, where the forget must hold."""
    room = joined_room(servers)
    alice, bob, room_id = room.alice, room.bob, room.room_id
    carol = servers.a.register()
    carol.sync()
    assert carol.join(room.alias) == room_id
    carol.wait_for_room_section(room_id, "join")
    # bob's server must have carol's join before bob sends: an event whose prev_events come
    # before the join is one carol, once departed, may not see (history visibility "shared").
    bob.wait_for_membership(room_id, carol.user_id, "join")
    hello = bob.send_message(room_id, "before carol leaves")
    carol.wait_for_event_id(room_id, hello)

    leave_and_forget(carol, room_id, bob, "before carol leaves")
    assert set(alice.joined_members(room_id)) == {alice.user_id, bob.user_id}
