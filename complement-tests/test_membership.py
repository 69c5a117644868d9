"""Membership changes of a remote user: invite, kick, ban, leave and rejoin."""

import pytest

from harness import MatrixError, joined_room, users


def test_invite_remote_user_who_joins(servers):
    alice, bob = users(servers)
    room_id = alice.create_room(preset="private_chat", name="Invite only")
    alice.invite(room_id, bob.user_id)

    invite = bob.wait_for_membership(room_id, bob.user_id, "invite")
    assert invite["sender"] == alice.user_id
    assert bob.rooms[room_id].membership == "invite"
    names = [e for e in bob.events(room_id, ("invite",), "m.room.name")]
    assert names and names[-1]["content"]["name"] == "Invite only"
    assert alice.wait_for_membership(room_id, bob.user_id, "invite")["sender"] == alice.user_id

    assert bob.join(room_id, via=[servers.a.server_name]) == room_id
    join = alice.wait_for_membership(room_id, bob.user_id, "join")
    assert join["sender"] == bob.user_id
    bob.wait_for_room_section(room_id, "join")

    hello = bob.send_message(room_id, "thanks for the invite")
    assert alice.wait_for_event_id(room_id, hello)["content"]["body"] == "thanks for the invite"


def test_kick_remote_user(servers):
    room = joined_room(servers)
    alice, bob, room_id = room.alice, room.bob, room.room_id

    alice.kick(room_id, bob.user_id, reason="out you go")
    kick = bob.wait_for_membership(room_id, bob.user_id, "leave")
    assert kick["sender"] == alice.user_id
    assert kick["content"].get("reason") == "out you go"
    bob.wait_for_room_section(room_id, "leave")
    assert alice.wait_for_membership(room_id, bob.user_id, "leave")["event_id"] == kick["event_id"]
    assert set(alice.joined_members(room_id)) == {alice.user_id}

    with pytest.raises(MatrixError) as e:
        bob.send_message(room_id, "still here?")
    assert e.value.status == 403

    # A kick is not a ban: bob can come back.
    assert bob.join(room.alias) == room_id
    assert alice.wait_for_event(room_id, lambda ev: ev.get("type") == "m.room.member"
                                and ev.get("state_key") == bob.user_id and ev["content"]["membership"] == "join"
                                and ev.get("unsigned", {}).get("prev_content", {})
                                .get("membership") == "leave", "bob's rejoin after the kick")


def test_ban_remote_user(servers):
    room = joined_room(servers)
    alice, bob, room_id = room.alice, room.bob, room.room_id

    alice.ban(room_id, bob.user_id, reason="banned for testing")
    ban = bob.wait_for_membership(room_id, bob.user_id, "ban")
    assert ban["sender"] == alice.user_id
    assert ban["content"].get("reason") == "banned for testing"
    assert alice.wait_for_membership(room_id, bob.user_id, "ban")["event_id"] == ban["event_id"]

    with pytest.raises(MatrixError) as e:
        bob.join(room.alias)
    assert e.value.status == 403, e.value

    alice.unban(room_id, bob.user_id)
    unban = alice.wait_for_event(room_id, lambda ev: ev.get("type") == "m.room.member"
                                 and ev.get("state_key") == bob.user_id and ev["content"]["membership"] == "leave"
                                 and ev["sender"] == alice.user_id, "the unban")
    assert unban["event_id"] != ban["event_id"]
    assert bob.join(room.alias) == room_id
    rejoin = alice.wait_for_event(room_id, lambda ev: ev.get("type") == "m.room.member"
                                  and ev.get("state_key") == bob.user_id and ev["content"]["membership"] == "join"
                                  and ev.get("unsigned", {}).get("prev_content", {}).get("membership") == "leave",
                                  "bob's join after the unban")
    assert rejoin["sender"] == bob.user_id


def test_leave_and_rejoin(servers):
    room = joined_room(servers)
    alice, bob, room_id = room.alice, room.bob, room.room_id
    first_join = alice.wait_for_membership(room_id, bob.user_id, "join")

    bob.leave(room_id)
    left = alice.wait_for_membership(room_id, bob.user_id, "leave")
    assert left["sender"] == bob.user_id
    bob.wait_for_room_section(room_id, "leave")
    assert set(alice.joined_members(room_id)) == {alice.user_id}

    while_away = alice.send_message(room_id, "said while b was away")

    assert bob.join(room.alias) == room_id
    rejoin = alice.wait_for_event(room_id, lambda ev: ev.get("type") == "m.room.member"
                                  and ev.get("state_key") == bob.user_id and ev["content"]["membership"] == "join"
                                  and ev["event_id"] != first_join["event_id"], "bob's second join")
    assert rejoin["sender"] == bob.user_id
    bob.wait_for_room_section(room_id, "join")

    back = bob.send_message(room_id, "back again")
    assert alice.wait_for_event_id(room_id, back)["content"]["body"] == "back again"
    after = alice.send_message(room_id, "welcome back")
    assert bob.wait_for_event_id(room_id, after)["content"]["body"] == "welcome back"
    # History visibility "shared": the message from b's absence is readable after the rejoin
    # (b's server has to fetch it from a: /messages backfills across the gap).
    events = bob.paginate_back(room_id, bob.since, lambda evs: any(e.get("event_id") == while_away for e in evs))
    away = [e for e in events if e.get("event_id") == while_away]
    assert away and away[0]["content"]["body"] == "said while b was away"
