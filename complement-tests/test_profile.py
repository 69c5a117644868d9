"""Profile changes reach the other server: a new display name or avatar goes out as a new
m.room.member event in every joined room, seen in /sync and in /members, both ways."""

import secrets

from harness import joined_room


def member_with(client, room_id: str, user_id: str, displayname: str, avatar_url: str) -> dict:
    """Waits (in client's /sync) for user_id's join event carrying both the new name and avatar."""
    def match(e: dict) -> bool:
        c = e.get("content", {})
        return (e.get("type") == "m.room.member" and e.get("state_key") == user_id
                and c.get("membership") == "join" and c.get("displayname") == displayname
                and c.get("avatar_url") == avatar_url)
    return client.wait_for_event(room_id, match, f"{user_id}'s member event as {displayname!r}")


def change_profile(changer, watcher, room_id: str) -> None:
    name = "Renamed " + secrets.token_hex(3)
    avatar = f"mxc://{changer.server.server_name}/avatar{secrets.token_hex(4)}"
    changer.set_displayname(name)
    changer.set_avatar_url(avatar)

    event = member_with(watcher, room_id, changer.user_id, name, avatar)
    assert event["sender"] == changer.user_id
    # The previous member event is the one it replaces (same membership).
    assert event.get("unsigned", {}).get("prev_content", {}).get("membership") == "join"
    members = {e["state_key"]: e for e in watcher.members(room_id)}
    assert members[changer.user_id]["content"]["displayname"] == name
    assert members[changer.user_id]["content"]["avatar_url"] == avatar
    assert members[changer.user_id]["content"]["membership"] == "join"
    assert watcher.joined_members(room_id)[changer.user_id] == {"display_name": name, "avatar_url": avatar}


def test_remote_profile_change(servers):
    room = joined_room(servers)
    change_profile(room.bob, room.alice, room.room_id)


def test_local_profile_change_reaches_remote(servers):
    room = joined_room(servers)
    change_profile(room.alice, room.bob, room.room_id)
