"""A peer that was down for a while gets what it missed once it is back."""

from harness import bodies, joined_room

CATCH_UP_TIMEOUT_S = 90


def test_peer_down_then_back_gets_missed_messages(servers):
    room = joined_room(servers)
    alice, bob, room_id = room.alice, room.bob, room.room_id
    before = alice.send_message(room_id, "before the outage")
    bob.wait_for_event_id(room_id, before)
    token = bob.since

    servers.b.stop()
    try:
        missed = [alice.send_message(room_id, f"missed #{i}") for i in range(3)]
    finally:
        servers.b.start()  # same data directory, same ports

    last = bob.wait_for_event_id(room_id, missed[-1], timeout=CATCH_UP_TIMEOUT_S)
    assert last["content"]["body"] == "missed #2"
    events = bob.paginate_back(room_id, bob.since,
                               lambda evs: set(missed) | {before} <= {e.get("event_id") for e in evs})
    got = [e for e in reversed(events) if e.get("event_id") in set(missed) | {before}]
    assert [e["event_id"] for e in got] == [before, *missed]
    assert bodies(got) == ["before the outage", "missed #0", "missed #1", "missed #2"]
    assert token != bob.since

    # And the restarted server sends again.
    back = bob.send_message(room_id, "b is back")
    assert alice.wait_for_event_id(room_id, back, timeout=CATCH_UP_TIMEOUT_S)["content"]["body"] == "b is back"
