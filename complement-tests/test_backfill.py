"""History that predates the remote server's join arrives by backfill."""

import secrets

from harness import bodies, users


def test_history_before_join_is_backfilled(servers):
    alice, bob = users(servers)
    room_id = alice.create_room(alias="hist" + secrets.token_hex(4))
    alias = alice.request("GET", f"/_matrix/client/v3/rooms/{room_id}/aliases")["aliases"][0]
    history = [f"before the join #{i}" for i in range(12)]
    ids = [alice.send_message(room_id, body) for body in history]

    assert bob.join(alias) == room_id
    bob.wait_for_membership(room_id, bob.user_id, "join")
    token = bob.since

    want = set(ids)
    events = bob.paginate_back(room_id, token, lambda evs: want <= {e.get("event_id") for e in evs},
                               max_pages=20, limit=5)
    got = [e for e in reversed(events) if e.get("event_id") in want]  # oldest first
    assert [e["event_id"] for e in got] == ids
    assert bodies(got) == history
    assert all(e["sender"] == alice.user_id for e in got)
    # Paginating further reaches the room's creation.
    rest = bob.paginate_back(room_id, token, lambda evs: any(e.get("type") == "m.room.create" for e in evs),
                             max_pages=20, limit=20)
    create = [e for e in rest if e.get("type") == "m.room.create"]
    assert create and create[0]["sender"] == alice.user_id
