"""Client tests: the real `trellis` binary driven by matrix-nio's AsyncClient.

Accounts, login, profile and devices. The `server` fixture and helpers live in conftest.py.
Run with `bash .ci/run`, or after `cargo build`:

    python -m pytest -q tests/clients
"""

from nio import (
    DevicesResponse,
    LoginError,
    LoginResponse,
    LogoutResponse,
    ProfileGetDisplayNameResponse,
    ProfileSetDisplayNameResponse,
    WhoamiError,
    WhoamiResponse,
)
from nio.responses import RegisterErrorResponse  # not re-exported by the nio package

from conftest import PASSWORD, new_client, register, run


def test_register_login_whoami(server):
    async def scenario():
        reg = await register(server, "alice")
        assert reg.user_id == "@alice:localhost"
        assert reg.access_token.startswith("trl_")
        assert reg.device_id

        client = new_client(server, "alice")
        try:
            login = await client.login(PASSWORD, device_name="nio test")
            assert isinstance(login, LoginResponse), login
            assert login.user_id == "@alice:localhost"
            assert login.device_id != reg.device_id, "each login is a new device"
            assert login.access_token != reg.access_token
            assert client.access_token == login.access_token

            who = await client.whoami()
            assert isinstance(who, WhoamiResponse), who
            assert who.user_id == "@alice:localhost"
            assert who.device_id == login.device_id
            assert who.is_guest is False
        finally:
            await client.close()

    run(scenario())


def test_duplicate_registration_and_wrong_password(server):
    async def scenario():
        await register(server, "erin")

        client = new_client(server)
        try:
            again = await client.register("erin", PASSWORD)
            assert isinstance(again, RegisterErrorResponse), again
            assert again.status_code == "M_USER_IN_USE"
        finally:
            await client.close()

        client = new_client(server, "erin")
        try:
            bad = await client.login("not the password")
            assert isinstance(bad, LoginError), bad
            assert bad.status_code == "M_FORBIDDEN"
            assert client.access_token == ""
        finally:
            await client.close()

    run(scenario())


def test_set_and_get_displayname(server):
    async def scenario():
        await register(server, "bob")
        client = new_client(server, "bob")
        try:
            assert isinstance(await client.login(PASSWORD), LoginResponse)

            initial = await client.get_displayname()
            assert isinstance(initial, ProfileGetDisplayNameResponse), initial
            assert initial.displayname == "bob", "a new account's display name is its localpart"

            set_resp = await client.set_displayname("Bob the Builder")
            assert isinstance(set_resp, ProfileSetDisplayNameResponse), set_resp

            got = await client.get_displayname()
            assert isinstance(got, ProfileGetDisplayNameResponse), got
            assert got.displayname == "Bob the Builder"
        finally:
            await client.close()

        # Profiles are readable without logging in.
        anonymous = new_client(server)
        try:
            public = await anonymous.get_displayname("@bob:localhost")
            assert isinstance(public, ProfileGetDisplayNameResponse), public
            assert public.displayname == "Bob the Builder"
        finally:
            await anonymous.close()

    run(scenario())


def test_devices_list_last_seen_ip(server):
    async def scenario():
        reg = await register(server, "carol", device_name="registration device")
        client = new_client(server, "carol")
        try:
            login = await client.login(PASSWORD, device_name="carol's laptop")
            assert isinstance(login, LoginResponse), login

            resp = await client.devices()
            assert isinstance(resp, DevicesResponse), resp
            by_id = {d.id: d for d in resp.devices}
            assert set(by_id) == {reg.device_id, login.device_id}

            laptop = by_id[login.device_id]
            assert laptop.display_name == "carol's laptop"
            assert laptop.last_seen_ip == "127.0.0.1"
            assert laptop.last_seen_date is not None

            first = by_id[reg.device_id]
            assert first.display_name == "registration device"
            assert first.last_seen_ip == "127.0.0.1"
        finally:
            await client.close()

    run(scenario())


def test_logout_revokes_the_token(server):
    async def scenario():
        reg = await register(server, "dave")
        client = new_client(server, "dave")
        try:
            login = await client.login(PASSWORD)
            assert isinstance(login, LoginResponse), login
            old_token = login.access_token

            out = await client.logout()
            assert isinstance(out, LogoutResponse), out
            assert client.access_token == ""

            client.access_token = old_token
            who = await client.whoami()
            assert isinstance(who, WhoamiError), who
            assert who.status_code == "M_UNKNOWN_TOKEN"
            assert who.soft_logout is False
        finally:
            await client.close()

        # The registration session is untouched, and the logged-out device is gone.
        other = new_client(server, "dave")
        other.restore_login("@dave:localhost", reg.device_id, reg.access_token)
        try:
            who = await other.whoami()
            assert isinstance(who, WhoamiResponse), who
            assert who.user_id == "@dave:localhost"
            assert who.device_id == reg.device_id

            devices = await other.devices()
            assert isinstance(devices, DevicesResponse), devices
            assert [d.id for d in devices.devices] == [reg.device_id]
        finally:
            await other.close()

    run(scenario())
