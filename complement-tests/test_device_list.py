"""A device rename is a device-list change: the other server's users who share a room see the
renamed user in `device_lists.changed`, and a federated /keys/query still returns the device.

Synapse does not send device names over federation (`allow_device_name_lookup_over_federation`
is off by default: neither the m.device_list_update EDU nor the federation /user/keys/query
answer carry `device_display_name`); Trellis does. So the new name is not required, only that
the old one is gone: the `changed` entry is what the rename must produce."""

import time

from harness import joined_room

WAIT_S = 20.0


def test_device_rename_is_a_device_list_change(servers):
    room = joined_room(servers)
    alice, bob = room.alice, room.bob
    keys = bob.upload_device_keys()
    # alice's server learns bob's device keys (bounded poll: a learns them by EDU or by asking b).
    deadline = time.monotonic() + WAIT_S
    while bob.device_id not in alice.keys_query([bob.user_id])["device_keys"].get(bob.user_id, {}):
        assert time.monotonic() < deadline, f"{bob.user_id}'s device never reached {servers.a.server_name}"
        time.sleep(0.5)
    # The join and the new keys were device-list changes too: let alice's /sync report them
    # until a second-long sync brings no more of bob (at most 5), so that only the rename counts.
    for _ in range(5):
        mark = len(alice.device_lists_changed)
        alice.sync(1_000)
        if bob.user_id not in alice.device_lists_changed[mark:]:
            break
    before = len(alice.device_lists_changed)

    bob.rename_device(bob.device_id, "renamed phone")
    assert bob.request("GET", f"/_matrix/client/v3/devices/{bob.device_id}")["display_name"] == "renamed phone"
    alice.wait_for(lambda: bob.user_id in alice.device_lists_changed[before:],
                   f"{bob.user_id} in device_lists.changed", WAIT_S)

    answer = alice.keys_query([bob.user_id])
    device = answer["device_keys"][bob.user_id][bob.device_id]
    assert device["device_id"] == bob.device_id and device["user_id"] == bob.user_id
    assert device["keys"] == keys["keys"]
    # Synapse sends no device names over federation; Trellis does. Either way, never the old name.
    assert device.get("unsigned", {}).get("device_display_name") in (None, "renamed phone"), device
