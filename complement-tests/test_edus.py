"""Ephemeral data over federation: typing notifications, read receipts, presence."""

from harness import joined_room


def test_typing_both_ways(servers):
    room = joined_room(servers)
    alice, bob, room_id = room.alice, room.bob, room.room_id

    alice.typing(room_id, True, timeout_ms=30_000)
    ev = bob.wait_for_typing(room_id, [alice.user_id])
    assert ev["content"]["user_ids"] == [alice.user_id]
    alice.typing(room_id, False)
    bob.wait_for_typing(room_id, [])

    bob.typing(room_id, True, timeout_ms=30_000)
    ev = alice.wait_for_typing(room_id, [bob.user_id])
    assert ev["content"]["user_ids"] == [bob.user_id]
    bob.typing(room_id, False)
    alice.wait_for_typing(room_id, [])


def test_receipts_both_ways(servers):
    room = joined_room(servers)
    alice, bob, room_id = room.alice, room.bob, room.room_id

    from_a = alice.send_message(room_id, "read me, b")
    bob.wait_for_event_id(room_id, from_a)
    bob.receipt(room_id, from_a)
    r = alice.wait_for_receipt(room_id, from_a, bob.user_id)
    assert isinstance(r.get("ts"), int) and r["ts"] > 0

    from_b = bob.send_message(room_id, "read me, a")
    alice.wait_for_event_id(room_id, from_b)
    alice.receipt(room_id, from_b)
    r = bob.wait_for_receipt(room_id, from_b, alice.user_id)
    assert isinstance(r.get("ts"), int) and r["ts"] > 0


def test_presence_both_ways(servers):
    room = joined_room(servers)
    alice, bob = room.alice, room.bob

    alice.set_presence("online", "at my desk")
    ev = bob.wait_for_presence(alice.user_id, "online", "at my desk")
    assert ev["content"]["presence"] == "online"
    alice.set_presence("unavailable", "lunch")
    ev = bob.wait_for_presence(alice.user_id, "unavailable", "lunch")
    assert ev["content"]["status_msg"] == "lunch"

    bob.set_presence("online", "hello from b")
    ev = alice.wait_for_presence(bob.user_id, "online", "hello from b")
    assert ev["sender"] == bob.user_id
    # The remote server answers the presence API from what federation told it.
    assert bob.get_presence(alice.user_id)["presence"] == "unavailable"
    assert alice.get_presence(bob.user_id)["presence"] == "online"
