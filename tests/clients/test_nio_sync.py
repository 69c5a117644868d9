"""matrix-nio's own sync loop (`sync_forever`) against trellis' /sync: live delivery of
messages, state and membership, and nio's schema validation of every sync response."""

import asyncio

from nio import InviteMemberEvent, RoomMessageText, RoomNameEvent, RoomMemberEvent, SyncResponse

from conftest import new_client, register, run

WAIT_S = 20


async def _collect_until(predicate, timeout=WAIT_S):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting for events from sync_forever")
        await asyncio.sleep(0.05)


def test_sync_forever_delivers_live_events(server):
    async def scenario():
        alice_reg = await register(server, "syncalice")
        bob_reg = await register(server, "syncbob")
        alice = new_client(server, alice_reg.user_id)
        alice.restore_login(alice_reg.user_id, alice_reg.device_id, alice_reg.access_token)
        bob = new_client(server, bob_reg.user_id)
        bob.restore_login(bob_reg.user_id, bob_reg.device_id, bob_reg.access_token)
        try:
            created = await alice.room_create(name="Live", invite=[bob_reg.user_id])
            room_id = created.room_id

            seen = []
            invites = []
            syncs = []
            bob.add_event_callback(lambda room, ev: seen.append(ev), (RoomMessageText, RoomNameEvent, RoomMemberEvent))
            bob.add_event_callback(lambda room, ev: invites.append(room.room_id), InviteMemberEvent)
            bob.add_response_callback(lambda resp: syncs.append(resp), SyncResponse)
            loop_task = asyncio.create_task(bob.sync_forever(timeout=5000, full_state=True))
            try:
                await _collect_until(lambda: room_id in invites)
                joined = await bob.join(room_id)
                assert joined.room_id == room_id
                await _collect_until(lambda: any(isinstance(e, RoomMemberEvent) and e.state_key == bob_reg.user_id and e.membership == "join" for e in seen))

                for i in range(3):
                    await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": f"live {i}"})
                await alice.room_put_state(room_id, "m.room.name", {"name": "Renamed"})
                await _collect_until(lambda: any(isinstance(e, RoomNameEvent) and e.name == "Renamed" for e in seen))
            finally:
                loop_task.cancel()
                try:
                    await loop_task
                except asyncio.CancelledError:
                    pass

            bodies = [e.body for e in seen if isinstance(e, RoomMessageText)]
            assert bodies == ["live 0", "live 1", "live 2"]
            assert all(isinstance(r, SyncResponse) for r in syncs), "nio accepted every sync response"
            assert bob.rooms[room_id].name == "Renamed"
            assert set(bob.rooms[room_id].users) == {alice_reg.user_id, bob_reg.user_id}
            assert syncs[-1].next_batch.startswith("s")
        finally:
            await alice.close()
            await bob.close()

    run(scenario())
