"""Restricted joins: a room whose join rule (`restricted`, or `knock_restricted`) lets in the
members of another room, a space-like R1. A member of R1 joins R2 without an invite: a remote
user through make_join/send_join (the resident server fills `join_authorised_via_users_server`
with one of its users who may invite), a local user directly; anybody else gets 403."""

import pytest

from harness import MatrixError, joined_room, users


def restricted_room(alice, space_id: str, version: str, rule: str) -> str:
    """R2, private (no alias), with the join rule `rule` allowing the members of R1."""
    return alice.create_room(
        room_version=version, preset="private_chat", name=f"{rule} v{version}",
        initial_state=[{"type": "m.room.join_rules", "state_key": "",
                        "content": {"join_rule": rule,
                                    "allow": [{"type": "m.room_membership", "room_id": space_id}]}}])


def assert_refused(client, room_id: str, via: list[str]) -> None:
    with pytest.raises(MatrixError) as e:
        client.join(room_id, via=via)
    assert e.value.status == 403, e.value


@pytest.mark.parametrize("version,rule", [("10", "restricted"), ("10", "knock_restricted"),
                                          ("12", "restricted"), ("12", "knock_restricted")])
def test_restricted_join(servers, version, rule):
    a_name = servers.a.server_name
    # R1, the space: alice creates it, bob (on b) joins it over federation.
    space = joined_room(servers, room_version=version, creation_content={"type": "m.space"})
    alice, bob, space_id = space.alice, space.bob, space.room_id
    room_id = restricted_room(alice, space_id, version, rule)
    assert alice.get_state(room_id, "m.room.join_rules")["join_rule"] == rule

    # A remote member of R1 joins R2 over federation, authorised by alice's server.
    assert bob.join(room_id, via=[a_name]) == room_id
    join = alice.wait_for_membership(room_id, bob.user_id, "join")
    assert join["sender"] == bob.user_id
    assert join["content"].get("join_authorised_via_users_server") == alice.user_id
    bob.wait_for_room_section(room_id, "join")
    hello = bob.send_message(room_id, "in via the space")
    assert alice.wait_for_event_id(room_id, hello)["content"]["body"] == "in via the space"

    # A later profile change is a join -> join that needs no authoriser: the new member event
    # must drop join_authorised_via_users_server (b cannot get a's signature on it; with the key
    # kept, a would reject the event).
    bob.set_displayname(f"bob in {rule} v{version}")
    renamed = alice.wait_for_event(
        room_id, lambda e: e.get("type") == "m.room.member" and e.get("state_key") == bob.user_id
        and e["content"].get("displayname") == f"bob in {rule} v{version}", "bob's new display name in R2")
    assert renamed["content"]["membership"] == "join"
    assert "join_authorised_via_users_server" not in renamed["content"], renamed

    # A remote user who is not in R1 is refused.
    carol = servers.b.register()
    assert_refused(carol, room_id, [a_name])

    # The same for local users of a: a member of R1 joins, a non-member is refused.
    dave = servers.a.register()
    assert dave.join(space_id) == space_id
    assert dave.join(room_id) == room_id
    local_join = alice.wait_for_membership(room_id, dave.user_id, "join")
    assert local_join["content"].get("join_authorised_via_users_server") == alice.user_id
    erin = servers.a.register()
    assert_refused(erin, room_id, [a_name])
    assert set(alice.joined_members(room_id)) == {alice.user_id, bob.user_id, dave.user_id}
