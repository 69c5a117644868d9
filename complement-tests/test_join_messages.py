"""Joining a room by alias over federation, and messages in both directions."""

import secrets

from harness import bodies, joined_room, users


def test_join_by_alias(servers):
    alice, bob = users(servers)
    room_id = alice.create_room(alias="lobby" + secrets.token_hex(4), name="Lobby")
    alias = alice.request("GET", f"/_matrix/client/v3/rooms/{room_id}/aliases")["aliases"][0]
    assert alias.endswith(":" + servers.a.server_name)

    assert bob.join(alias) == room_id

    # Both servers agree on the membership, each side sees the other's join event.
    join = alice.wait_for_membership(room_id, bob.user_id, "join")
    assert join["sender"] == bob.user_id
    mine = bob.wait_for_membership(room_id, bob.user_id, "join")
    assert mine["event_id"] == join["event_id"]
    bob.wait_for_membership(room_id, alice.user_id, "join")
    assert set(alice.joined_members(room_id)) == {alice.user_id, bob.user_id}
    assert set(bob.joined_members(room_id)) == {alice.user_id, bob.user_id}
    # b got the room's state from a: its name and canonical alias.
    assert bob.get_state(room_id, "m.room.name")["name"] == "Lobby"
    assert bob.get_state(room_id, "m.room.canonical_alias")["alias"] == alias


def test_messages_both_directions(servers):
    room = joined_room(servers)
    alice, bob, room_id = room.alice, room.bob, room.room_id

    sent = [alice.send_message(room_id, f"from a #{i}") for i in range(3)]
    last = bob.wait_for_event_id(room_id, sent[-1])
    assert last["sender"] == alice.user_id
    assert last["content"] == {"msgtype": "m.text", "body": "from a #2"}
    got = [e for e in bob.events(room_id) if e.get("event_id") in sent]
    assert [e["event_id"] for e in got] == sent  # in order, once each
    assert bodies(got) == ["from a #0", "from a #1", "from a #2"]

    reply = bob.send_message(room_id, "from b", msgtype="m.notice")
    ev = alice.wait_for_event_id(room_id, reply)
    assert ev["sender"] == bob.user_id
    assert ev["content"] == {"msgtype": "m.notice", "body": "from b"}

    # The same event, fetched directly, on both servers.
    assert alice.get_event(room_id, sent[0])["content"]["body"] == "from a #0"
    assert bob.get_event(room_id, sent[0])["content"]["body"] == "from a #0"
    assert bob.get_event(room_id, reply)["event_id"] == alice.get_event(room_id, reply)["event_id"] == reply
