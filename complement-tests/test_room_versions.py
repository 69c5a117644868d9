"""Rooms of versions 1, 2, 10, 11 and 12 federate: join, state, messages both ways. Versions 1 and 2
have event IDs of the form `$id:server` (old public rooms still run on them)."""

import pytest

from harness import joined_room


@pytest.mark.parametrize("version", ["1", "2", "10", "11", "12"])
def test_room_version(servers, version):
    room = joined_room(servers, room_version=version)
    alice, bob, room_id = room.alice, room.bob, room.room_id

    create = bob.get_state(room_id, "m.room.create")
    create_ev = next(e for e in bob.room_state(room_id) if e["type"] == "m.room.create")
    assert create_ev["content"] == create
    assert create_ev["sender"] == alice.user_id
    assert create["room_version"] == version
    if version in ("1", "2"):
        assert create_ev["event_id"].endswith(":" + servers.a.server_name), create_ev["event_id"]
    if version in ("1", "2", "10"):
        assert create["creator"] == alice.user_id
        assert room_id.endswith(":" + servers.a.server_name)
    else:
        assert "creator" not in create  # v11+: the sender is the creator
    if version == "12":
        # v12 room IDs are the create event's reference hash, without a server name.
        assert ":" not in room_id
        assert room_id == "!" + create_ev["event_id"][1:]
    else:
        assert room_id.endswith(":" + servers.a.server_name)

    a_msg = alice.send_message(room_id, f"v{version} from a")
    assert bob.wait_for_event_id(room_id, a_msg)["content"]["body"] == f"v{version} from a"
    b_msg = bob.send_message(room_id, f"v{version} from b")
    assert alice.wait_for_event_id(room_id, b_msg)["content"]["body"] == f"v{version} from b"
