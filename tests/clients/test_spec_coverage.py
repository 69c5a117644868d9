"""Every Client-Server operation of the spec reaches a real handler.

Each operation in `spec_operations.json` (regenerate with `spec_operations.py`) is sent once to
the real server, with a valid access token, real IDs in its path and an empty JSON body: whatever
the answer (200, or the spec's error for an empty body), it must not be 404/405
`M_UNRECOGNIZED`, which is what Trellis answers for a route it does not serve. The operations that
other issues own, or that no homeserver serves without an external service, are listed in
`NOT_YET` with the reason; the test fails if one of those starts being served (so the list only
shrinks) and if the committed list of operations drifts from the spec beside the repository.
"""

import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from conftest import PASSWORD, SERVER_NAME

HERE = Path(__file__).resolve().parent
OPERATIONS = json.loads((HERE / "spec_operations.json").read_text())

# operationId -> why it is not served yet.
NOT_YET = {
    # Issue 14 (media repository).
    **{
        op: "media repository (issue 14)"
        for op in (
            "getContentAuthed", "getContentOverrideNameAuthed", "getContentThumbnailAuthed", "getUrlPreviewAuthed",
            "getConfigAuthed", "uploadContent", "uploadContentToMXC", "createContent",
        )
    },
    # Issue 15 (end-to-end encryption: cross-signing and key backup).
    **{
        op: "cross-signing and key backup (issue 15)"
        for op in (
            "uploadCrossSigningKeys", "uploadCrossSigningSignatures", "postRoomKeysVersion", "getRoomKeysVersionCurrent",
            "getRoomKeysVersion", "putRoomKeysVersion", "deleteRoomKeysVersion", "putRoomKeys", "getRoomKeys",
            "deleteRoomKeys", "putRoomKeysByRoomId", "getRoomKeysByRoomId", "deleteRoomKeysByRoomId",
            "putRoomKeyBySessionId", "getRoomKeyBySessionId", "deleteRoomKeyBySessionId",
        )
    },
    # The spec's answer for a server without the OAuth 2.0 API (it keeps the legacy login API).
    "getAuthMetadata": "404 M_UNRECOGNIZED is the spec's answer without the OAuth 2.0 API",
    # Issue 13, not yet built.
    **{
        op: "issue 13, not yet"
        for op in (
            "add3PID", "bind3PID", "delete3pidFromAccount", "unbind3pidFromAccount", "requestTokenTo3PIDEmail",
            "requestTokenToResetPasswordEmail", "requestTokenToRegisterEmail", "pingAppservice",
            "updateAppserviceRoomDirectoryVisibility", "getProtocols", "getProtocolMetadata",
            "queryLocationByProtocol", "queryUserByProtocol", "queryLocationByAlias", "queryUserByID",
            "getNotifications", "getPushers", "postPusher", "search", "redirectToSSO", "redirectToIdP",
        )
    },
}

TXN = iter(range(1_000_000))


def call(url: str, method: str, path: str, token: str | None, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw or b"{}")
        except ValueError:
            return e.code, {"raw": raw[:200].decode(errors="replace")}


def session(url: str) -> dict:
    """A new user and its login."""
    name = f"u{uuid.uuid4().hex[:10]}"
    status, body = call(url, "POST", "/_matrix/client/v3/register", None,
                        {"username": name, "password": PASSWORD, "auth": {"type": "m.login.dummy"}})
    assert status == 200, body
    return body


def test_the_committed_operations_are_the_spec_beside_the_repository():
    spec = HERE.parents[2] / "shared" / "matrix-spec" / "data" / "api" / "client-server"
    yaml = pytest.importorskip("yaml")
    if not spec.is_dir():
        pytest.skip(f"no spec at {spec}")
    import spec_operations  # noqa: E402 (needs PyYAML)

    assert yaml and spec_operations.operations(spec) == OPERATIONS, "run tests/clients/spec_operations.py"


def test_every_operation_reaches_a_handler(server):
    me = session(server)
    token, user, device = me["access_token"], me["user_id"], me["device_id"]
    status, room = call(server, "POST", "/_matrix/client/v3/createRoom", token, {"preset": "public_chat"})
    assert status == 200, room
    room_id = room["room_id"]
    status, sent = call(server, "PUT", f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/t0", token,
                        {"msgtype": "m.text", "body": "hi"})
    assert status == 200, sent
    status, flt = call(server, "POST", f"/_matrix/client/v3/user/{user}/filter", token, {})
    assert status == 200, flt
    values = {
        "roomId": room_id, "userId": user, "eventId": sent["event_id"], "ruleId": ".m.rule.master",
        "kind": "override", "eventType": "m.room.message", "type": "org.example.coverage", "serverName": SERVER_NAME,
        "mediaId": "abc", "version": "1", "sessionId": "s1", "roomIdOrAlias": room_id,
        "roomAlias": f"#coverage:{SERVER_NAME}", "protocol": "irc", "keyName": "m.room.topic",
        "deviceId": device, "tag": "u.coverage", "stateKey": "", "relType": "m.annotation",
        "receiptType": "m.read", "networkId": "irc", "idpId": "oidc", "filterId": flt["filter_id"],
        "fileName": "a.txt", "appserviceId": "bridge",
    }
    # Operations that end the session or the account get a user of their own.
    ending = {"logout", "logout_all", "deactivateAccount", "changePassword", "deleteDevice", "deleteDevices"}

    unrecognized, wrongly_listed = [], []
    for op in OPERATIONS:
        path = op["path"]
        for name, value in values.items():
            path = path.replace("{" + name + "}", urllib.parse.quote(value, safe=""))
        path = path.replace("{txnId}", f"txn{next(TXN)}")
        assert "{" not in path, f"no value for a parameter of {op['path']}"
        body = None if op["method"] in ("GET", "DELETE") else {}
        own = session(server)["access_token"] if op["operation"] in ending else token
        status, answer = call(server, op["method"], path, own, body)
        missing = status in (404, 405) and answer.get("errcode") == "M_UNRECOGNIZED"
        assert status < 500, f"{op['method']} {path}: {status} {answer}"
        if missing and op["operation"] not in NOT_YET:
            unrecognized.append(f"{op['method']} {op['path']} ({op['operation']})")
        if not missing and op["operation"] in NOT_YET:
            wrongly_listed.append(op["operation"])
    assert unrecognized == [], f"{len(unrecognized)} operations not served:\n" + "\n".join(unrecognized)
    assert wrongly_listed == [], f"served now, take them out of NOT_YET: {wrongly_listed}"
