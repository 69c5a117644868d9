"""Client tests for rooms: the real `trellis` binary driven by matrix-nio's AsyncClient.

Room creation, joining by alias, messages and pagination, edits and reactions (bundled
aggregations), redaction, state, membership (invite, kick, ban) and error mapping, all through
nio's own API methods. The `server` fixture and helpers live in conftest.py. Run with
`bash .ci/run`, or after `cargo build`:

    python -m pytest -q tests/clients
"""

from contextlib import asynccontextmanager

import pytest
from nio import (
    AsyncClient,
    JoinedMembersResponse,
    JoinError,
    JoinResponse,
    MessageDirection,
    ReactionEvent,
    RedactedEvent,
    RoomBanError,
    RoomBanResponse,
    RoomCreateResponse,
    RoomGetEventResponse,
    RoomGetStateEventResponse,
    RoomInviteError,
    RoomInviteResponse,
    RoomKickError,
    RoomKickResponse,
    RoomMessagesResponse,
    RoomMessageText,
    RoomPreset,
    RoomRedactResponse,
    RoomSendError,
    RoomSendResponse,
    RoomUnbanResponse,
    RoomVisibility,
)
from nio.api import RelationshipType  # not re-exported by the nio package

from conftest import SERVER_NAME, new_client, register, run

ALICE = f"@alice:{SERVER_NAME}"
BOB = f"@bob:{SERVER_NAME}"
CAROL = f"@carol:{SERVER_NAME}"

# Upper bound on the events any paginated read in this module may walk through.
MAX_EVENTS = 200


@pytest.fixture(scope="module")
def accounts(server):
    """Register alice, bob and carol once per server; map localpart -> RegisterResponse."""

    async def register_all():
        return {name: await register(server, name) for name in ("alice", "bob", "carol")}

    return run(register_all())


@asynccontextmanager
async def session(url: str, reg):
    """A logged-in AsyncClient for a registered account, closed on exit."""
    client: AsyncClient = new_client(url, reg.user_id)
    client.restore_login(reg.user_id, reg.device_id, reg.access_token)
    try:
        yield client
    finally:
        await client.close()


async def create_room(client: AsyncClient, alias: str, preset: RoomPreset, **kwargs) -> str:
    visibility = RoomVisibility.public if preset == RoomPreset.public_chat else RoomVisibility.private
    resp = await client.room_create(visibility=visibility, alias=alias, preset=preset, **kwargs)
    assert isinstance(resp, RoomCreateResponse), resp
    assert resp.room_id.startswith("!"), resp.room_id
    return resp.room_id


async def send_text(client: AsyncClient, room_id: str, body: str) -> str:
    resp = await client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": body})
    assert isinstance(resp, RoomSendResponse), resp
    assert resp.room_id == room_id
    assert resp.event_id.startswith("$"), resp.event_id
    return resp.event_id


async def history(client: AsyncClient, room_id: str) -> list:
    """The room's whole timeline, newest first, via /messages with dir=b (bounded)."""
    events = []
    start = None
    while len(events) < MAX_EVENTS:
        resp = await client.room_messages(
            room_id, start=start, direction=MessageDirection.back, limit=50
        )
        assert isinstance(resp, RoomMessagesResponse), resp
        events.extend(resp.chunk)
        if not resp.chunk or not resp.end:
            return events
        start = resp.end
    pytest.fail(f"more than {MAX_EVENTS} events in {room_id}")


async def membership(client: AsyncClient, room_id: str, user_id: str) -> dict:
    resp = await client.room_get_state_event(room_id, "m.room.member", user_id)
    assert isinstance(resp, RoomGetStateEventResponse), resp
    assert "errcode" not in resp.content, resp.content
    return resp.content


async def joined(client: AsyncClient, room_id: str) -> set:
    resp = await client.joined_members(room_id)
    assert isinstance(resp, JoinedMembersResponse), resp
    return {m.user_id for m in resp.members}


def test_create_join_by_alias_and_message_history(server, accounts):
    async def scenario():
        async with session(server, accounts["alice"]) as alice, session(server, accounts["bob"]) as bob:
            room_id = await create_room(
                alice, "nio-lobby", RoomPreset.public_chat, name="Nio Lobby", topic="Talking to trellis"
            )

            joined_resp = await bob.join(f"#nio-lobby:{SERVER_NAME}")
            assert isinstance(joined_resp, JoinResponse), joined_resp
            assert joined_resp.room_id == room_id

            first = await send_text(alice, room_id, "hello from alice")
            second = await send_text(bob, room_id, "hi alice, bob here")
            assert first != second

            # Both members see the same history: newest first, bob's reply above alice's message.
            for reader in (alice, bob):
                events = await history(reader, room_id)
                texts = [e for e in events if isinstance(e, RoomMessageText)]
                assert [(e.event_id, e.sender, e.body) for e in texts] == [
                    (second, BOB, "hi alice, bob here"),
                    (first, ALICE, "hello from alice"),
                ]
                assert texts[0].server_timestamp >= texts[1].server_timestamp
                # The oldest event is the room's creation by alice.
                assert events[-1].source["type"] == "m.room.create"
                assert events[-1].sender == ALICE

            # limit=1 returns only the newest event, with a token to continue from.
            page = await alice.room_messages(room_id, direction=MessageDirection.back, limit=1)
            assert isinstance(page, RoomMessagesResponse), page
            assert [e.event_id for e in page.chunk] == [second]
            assert page.end

            # The state the preset, name, topic and alias produced.
            expected_state = {
                "m.room.name": {"name": "Nio Lobby"},
                "m.room.topic": {"topic": "Talking to trellis"},
                "m.room.canonical_alias": {"alias": f"#nio-lobby:{SERVER_NAME}"},
                "m.room.join_rules": {"join_rule": "public"},
            }
            for event_type, content in expected_state.items():
                resp = await bob.room_get_state_event(room_id, event_type)
                assert isinstance(resp, RoomGetStateEventResponse), resp
                assert resp.room_id == room_id and resp.event_type == event_type
                for key, value in content.items():
                    assert resp.content.get(key) == value, (event_type, resp.content)

            assert (await membership(alice, room_id, BOB))["membership"] == "join"
            assert await joined(alice, room_id) == {ALICE, BOB}
            assert await joined(bob, room_id) == {ALICE, BOB}

    run(scenario())


def test_edit_and_reaction_are_aggregated(server, accounts):
    async def scenario():
        async with session(server, accounts["alice"]) as alice, session(server, accounts["bob"]) as bob:
            room_id = await create_room(alice, "nio-edits", RoomPreset.public_chat, name="Edits")
            assert isinstance(await bob.join(room_id), JoinResponse)

            original = await send_text(alice, room_id, "teh original")

            edit_resp = await alice.room_send(
                room_id,
                "m.room.message",
                {
                    "msgtype": "m.text",
                    "body": "* the original",
                    "m.new_content": {"msgtype": "m.text", "body": "the original"},
                    "m.relates_to": {"rel_type": "m.replace", "event_id": original},
                },
            )
            assert isinstance(edit_resp, RoomSendResponse), edit_resp
            edit = edit_resp.event_id

            reaction_resp = await bob.room_send(
                room_id,
                "m.reaction",
                {"m.relates_to": {"rel_type": "m.annotation", "event_id": original, "key": "👍"}},
            )
            assert isinstance(reaction_resp, RoomSendResponse), reaction_resp
            reaction = reaction_resp.event_id

            # The original, fetched by either member, carries the edit as a bundled aggregation.
            for reader in (alice, bob):
                got = await reader.room_get_event(room_id, original)
                assert isinstance(got, RoomGetEventResponse), got
                assert isinstance(got.event, RoomMessageText), got.event
                assert got.event.event_id == original
                assert got.event.sender == ALICE
                # Servers serve the original content; clients apply m.new_content themselves.
                assert got.event.body == "teh original"
                relations = got.event.source["unsigned"]["m.relations"]
                assert relations["m.replace"]["event_id"] == edit

            # The edit and the reaction themselves, as nio parses them.
            got_edit = await bob.room_get_event(room_id, edit)
            assert isinstance(got_edit, RoomGetEventResponse), got_edit
            assert got_edit.event.sender == ALICE
            assert got_edit.event.source["content"]["m.new_content"]["body"] == "the original"
            assert got_edit.event.source["content"]["m.relates_to"] == {
                "rel_type": "m.replace",
                "event_id": original,
            }

            got_reaction = await alice.room_get_event(room_id, reaction)
            assert isinstance(got_reaction, RoomGetEventResponse), got_reaction
            assert isinstance(got_reaction.event, ReactionEvent), got_reaction.event
            assert got_reaction.event.sender == BOB
            assert got_reaction.event.reacts_to == original
            assert got_reaction.event.key == "👍"

            # /relations lists the reaction under m.annotation and the edit under m.replace.
            async def related(rel_type):
                found = []
                relations = alice.room_get_event_relations(room_id, original, rel_type=rel_type)
                async for event in relations:
                    found.append(event.event_id)
                    assert len(found) <= MAX_EVENTS
                return found

            assert await related(RelationshipType.annotation) == [reaction]
            assert await related(RelationshipType.replacement) == [edit]

    run(scenario())


def test_redacting_own_message(server, accounts):
    async def scenario():
        async with session(server, accounts["alice"]) as alice, session(server, accounts["bob"]) as bob:
            room_id = await create_room(alice, "nio-redact", RoomPreset.public_chat)
            assert isinstance(await bob.join(f"#nio-redact:{SERVER_NAME}"), JoinResponse)

            kept = await send_text(alice, room_id, "this stays")
            oops = await send_text(bob, room_id, "my password is hunter2")

            redaction = await bob.room_redact(room_id, oops, reason="leaked a secret")
            assert isinstance(redaction, RoomRedactResponse), redaction
            assert redaction.room_id == room_id
            assert redaction.event_id not in (kept, oops)

            for reader in (alice, bob):
                events = await history(reader, room_id)
                by_id = {e.event_id: e for e in events}

                redacted = by_id[oops]
                assert isinstance(redacted, RedactedEvent), redacted
                assert redacted.sender == BOB
                assert redacted.type == "m.room.message"
                assert redacted.redacter == BOB
                assert redacted.reason == "leaked a secret"
                assert redacted.source["content"] == {}
                assert redacted.source["unsigned"]["redacted_because"]["event_id"] == redaction.event_id

                # The redaction event itself is the newest event.
                newest = events[0]
                assert newest.event_id == redaction.event_id
                assert newest.source["type"] == "m.room.redaction"
                assert newest.sender == BOB
                redacts = newest.source["content"].get("redacts", newest.source.get("redacts"))
                assert redacts == oops

                # Alice's message is untouched.
                assert isinstance(by_id[kept], RoomMessageText)
                assert by_id[kept].body == "this stays"

            # A single-event fetch shows the redaction too.
            got = await alice.room_get_event(room_id, oops)
            assert isinstance(got, RoomGetEventResponse), got
            assert isinstance(got.event, RedactedEvent), got.event
            assert got.event.source["content"] == {}

    run(scenario())


def test_invite_then_kick(server, accounts):
    async def scenario():
        async with (
            session(server, accounts["alice"]) as alice,
            session(server, accounts["bob"]) as bob,
            session(server, accounts["carol"]) as carol,
        ):
            room_id = await create_room(alice, "nio-private", RoomPreset.private_chat, name="Private")
            rules = await alice.room_get_state_event(room_id, "m.room.join_rules")
            assert isinstance(rules, RoomGetStateEventResponse), rules
            assert rules.content["join_rule"] == "invite"

            # Without an invite carol cannot join a private room.
            refused = await carol.join(room_id)
            assert isinstance(refused, JoinError), refused
            assert refused.status_code == "M_FORBIDDEN"
            assert await joined(alice, room_id) == {ALICE}

            invited = await alice.room_invite(room_id, CAROL)
            assert isinstance(invited, RoomInviteResponse), invited
            member = await membership(alice, room_id, CAROL)
            assert member["membership"] == "invite"
            assert await joined(alice, room_id) == {ALICE}, "an invite is not a join"

            accepted = await carol.join(room_id)
            assert isinstance(accepted, JoinResponse), accepted
            assert accepted.room_id == room_id
            assert (await membership(alice, room_id, CAROL))["membership"] == "join"
            assert await joined(carol, room_id) == {ALICE, CAROL}
            said = await send_text(carol, room_id, "thanks for the invite")

            # bob is not in the room, so he can neither kick nor invite.
            not_member = await bob.room_kick(room_id, CAROL)
            assert isinstance(not_member, RoomKickError), not_member
            assert not_member.status_code == "M_FORBIDDEN"

            kicked = await alice.room_kick(room_id, CAROL, reason="meeting over")
            assert isinstance(kicked, RoomKickResponse), kicked
            member = await membership(alice, room_id, CAROL)
            assert member["membership"] == "leave"
            assert member.get("reason") == "meeting over"
            assert await joined(alice, room_id) == {ALICE}

            # A kicked member can no longer send, and cannot rejoin without a new invite.
            hello = {"msgtype": "m.text", "body": "hello?"}
            after = await carol.room_send(room_id, "m.room.message", hello)
            assert isinstance(after, RoomSendError), after
            assert after.status_code == "M_FORBIDDEN"
            rejoin = await carol.join(room_id)
            assert isinstance(rejoin, JoinError), rejoin
            assert rejoin.status_code == "M_FORBIDDEN"

            texts = [e for e in await history(alice, room_id) if isinstance(e, RoomMessageText)]
            assert [(e.event_id, e.sender) for e in texts] == [(said, CAROL)]

    run(scenario())


def test_ban_blocks_join_until_unban(server, accounts):
    async def scenario():
        async with (
            session(server, accounts["alice"]) as alice,
            session(server, accounts["bob"]) as bob,
            session(server, accounts["carol"]) as carol,
        ):
            room_id = await create_room(alice, "nio-bans", RoomPreset.public_chat)
            for client in (bob, carol):
                assert isinstance(await client.join(f"#nio-bans:{SERVER_NAME}"), JoinResponse)
            assert await joined(alice, room_id) == {ALICE, BOB, CAROL}

            # bob has the default power level 0 and may not ban (ban needs 50).
            weak = await bob.room_ban(room_id, CAROL, reason="bob tries")
            assert isinstance(weak, RoomBanError), weak
            assert weak.status_code == "M_FORBIDDEN"
            assert (await membership(alice, room_id, CAROL))["membership"] == "join"

            banned = await alice.room_ban(room_id, CAROL, reason="spam")
            assert isinstance(banned, RoomBanResponse), banned
            member = await membership(bob, room_id, CAROL)
            assert member["membership"] == "ban"
            assert member.get("reason") == "spam"
            assert await joined(bob, room_id) == {ALICE, BOB}

            # Banned: joining (by id or alias) and being invited are refused.
            for target in (room_id, f"#nio-bans:{SERVER_NAME}"):
                refused = await carol.join(target)
                assert isinstance(refused, JoinError), (target, refused)
                assert refused.status_code == "M_FORBIDDEN"
            no_invite = await alice.room_invite(room_id, CAROL)
            assert isinstance(no_invite, RoomInviteError), no_invite
            assert no_invite.status_code == "M_FORBIDDEN"
            assert (await membership(alice, room_id, CAROL))["membership"] == "ban"

            unbanned = await alice.room_unban(room_id, CAROL)
            assert isinstance(unbanned, RoomUnbanResponse), unbanned
            assert (await membership(alice, room_id, CAROL))["membership"] == "leave"

            back = await carol.join(room_id)
            assert isinstance(back, JoinResponse), back
            assert await joined(alice, room_id) == {ALICE, BOB, CAROL}

    run(scenario())


def test_errors_for_rooms_the_user_is_not_in(server, accounts):
    async def scenario():
        async with session(server, accounts["alice"]) as alice, session(server, accounts["bob"]) as bob:
            room_id = await create_room(alice, "nio-alice-only", RoomPreset.private_chat)

            knock = {"msgtype": "m.text", "body": "let me in"}
            denied = await bob.room_send(room_id, "m.room.message", knock)
            assert isinstance(denied, RoomSendError), denied
            assert denied.status_code == "M_FORBIDDEN"
            assert denied.room_id == room_id

            # Nothing from bob reached the room.
            events = await history(alice, room_id)
            assert BOB not in {e.sender for e in events}

            unknown = await bob.join(f"#no-such-alias:{SERVER_NAME}")
            assert isinstance(unknown, JoinError), unknown
            assert unknown.status_code == "M_NOT_FOUND"

    run(scenario())
