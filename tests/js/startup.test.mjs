// Element Web's engine, matrix-js-sdk, against Trellis: login, `startClient` to PREPARED, the
// sync loop delivering messages, and push rules edited through the SDK changing what it counts.
// Every request the SDK makes is recorded; none may be answered "unrecognized" (an endpoint
// Trellis does not serve: Element retries some of those forever and never finishes starting).

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import * as sdk from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";

import { PASSWORD, register, request, startServer, waitFor } from "./lib/server.mjs";

logger.setLevel("warn");

let server;
const unrecognized = [];

before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

// Start-up requests for what other issues build; the SDK carries on without them, as it does
// against Synapse's default configuration.
const LATER = new Set([
  "GET /_matrix/client/unstable/org.matrix.msc4143/rtc/transports", // MatrixRTC (issue 17)
]);

/** `fetch` that records requests answered 404/405 `M_UNRECOGNIZED`. */
async function recordingFetch(input, init) {
  const response = await fetch(input, init);
  if (response.status === 404 || response.status === 405) {
    const body = await response.clone().json().catch(() => ({}));
    const request = `${init?.method ?? "GET"} ${new URL(input).pathname}`;
    if (body.errcode === "M_UNRECOGNIZED" && !LATER.has(request)) unrecognized.push(request);
  }
  return response;
}

/** A message `body` from the owner of `token` into `roomId` through the plain HTTP API; resolves to its event ID. */
async function sendAs(token, roomId, txnId, body) {
  const path = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${txnId}`;
  const sent = await request(server.baseUrl, "PUT", path, { token, body: { msgtype: "m.text", body } });
  assert.equal(sent.status, 200);
  return sent.body.event_id;
}

/** Log in through the SDK as a new device and start the client; resolves once PREPARED. */
async function startedClient(localpart) {
  const anonymous = sdk.createClient({ baseUrl: server.baseUrl, fetchFn: recordingFetch });
  const login = await anonymous.loginRequest({
    type: "m.login.password",
    identifier: { type: "m.id.user", user: localpart },
    password: PASSWORD,
    initial_device_display_name: "js-sdk test",
  });
  const client = sdk.createClient({
    baseUrl: server.baseUrl,
    accessToken: login.access_token,
    userId: login.user_id,
    deviceId: login.device_id,
    fetchFn: recordingFetch,
  });
  const prepared = waitFor(client, sdk.ClientEvent.Sync, (state) => state === "PREPARED", 60_000, "PREPARED");
  await client.startClient({ initialSyncLimit: 10 });
  await prepared;
  return client;
}

test("startClient reaches PREPARED and the sync loop delivers messages", async () => {
  await register(server.baseUrl, "alice");
  const bob = await register(server.baseUrl, "bob");
  const alice = await startedClient("alice");
  try {
    assert.equal(alice.getUserId(), "@alice:localhost");
    // The push rules the SDK asked for at start-up: the server defaults.
    const overrides = alice.pushRules.global.override.map((r) => r.rule_id);
    assert.equal(overrides[0], ".m.rule.master");
    assert.ok(overrides.includes(".m.rule.is_user_mention"), overrides.join());
    assert.deepEqual(alice.pushRules.global.content.map((r) => r.rule_id), [".m.rule.contains_user_name"]);

    const { room_id: roomId } = await alice.createRoom({ name: "Lunch", preset: "public_chat" });
    const joined = await request(server.baseUrl, "POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, {
      token: bob.access_token,
      body: {},
    });
    assert.equal(joined.status, 200);

    const syncing = waitFor(alice, sdk.ClientEvent.Sync, (state) => state === "SYNCING", 30_000, "SYNCING");
    const delivered = waitFor(
      alice,
      sdk.RoomEvent.Timeline,
      (event) => event.getType() === "m.room.message" && event.getContent().body === "hello from bob",
      30_000,
      "bob's message",
    );
    const sentId = await sendAs(bob.access_token, roomId, "t1", "hello from bob");
    const [event, room] = await delivered;
    await syncing;
    assert.equal(event.getSender(), "@bob:localhost");
    assert.equal(event.getId(), sentId);
    assert.equal(room.roomId, roomId);
    assert.equal(room.name, "Lunch");
    assert.equal(room.getJoinedMemberCount(), 2);

    // A keyword rule added through the SDK reaches its push-rule state through /sync, and the
    // server's highlight count for the room follows it.
    const rulesSynced = waitFor(
      alice,
      sdk.ClientEvent.AccountData,
      (ev) => ev.getType() === "m.push_rules" && ev.getContent().global.content.some((r) => r.rule_id === "lunch"),
      30_000,
      "m.push_rules with the new rule",
    );
    await alice.addPushRule("global", sdk.PushRuleKind.ContentSpecific, "lunch", {
      actions: ["notify", { set_tweak: "highlight" }],
      pattern: "lunch",
    });
    await rulesSynced;
    assert.deepEqual(alice.pushRules.global.content.map((r) => r.rule_id), ["lunch", ".m.rule.contains_user_name"]);

    const highlighted = waitFor(
      room,
      sdk.RoomEvent.UnreadNotifications,
      (counts) => counts?.highlight === 1,
      30_000,
      "a highlight count of 1",
    );
    await sendAs(bob.access_token, roomId, "t2", "lunch?");
    await highlighted;
    assert.equal(room.getUnreadNotificationCount(sdk.NotificationCountType.Highlight), 1);
    assert.equal(room.getUnreadNotificationCount(sdk.NotificationCountType.Total), 2);
  } finally {
    alice.stopClient();
  }
  assert.deepEqual(unrecognized, [], "requests Trellis does not serve");
});
