//! Receiving events: the test speaks for server A (events and requests signed with A's key,
//! read from A's database, so B fetches A's real key from A) and hands B transactions and
//! membership events; B's local user must see exactly what was accepted, and nothing else.

use reqwest::Method;
use ruma::room_version_rules::RoomVersionRules;
use ruma::signatures::{Ed25519KeyPair, hash_and_sign_event, reference_hash};
use ruma::{CanonicalJsonObject, OwnedServerName, RoomVersionId};
use serde_json::{Value, json};

use super::{Fed, Pki, free_port, now_ms, x_matrix};
use crate::server::{Resp, Session, urlencode};

/// Server A as the test plays it: its name, its key and the room version's rules.
struct AsA {
    name: OwnedServerName,
    key: Ed25519KeyPair,
    rules: RoomVersionRules,
}

impl AsA {
    fn new(a: &mut Fed) -> AsA {
        AsA { name: a.name.clone(), key: a.signing_key(), rules: RoomVersionId::V12.rules().unwrap() }
    }

    fn user(&self, local: &str) -> String {
        format!("@{local}:{}", self.name)
    }

    /// A PDU signed by `signer` as A; returns `(event_id, pdu)`.
    #[allow(clippy::too_many_arguments)]
    fn signed(
        &self,
        signer: &Ed25519KeyPair,
        room: &str,
        sender: &str,
        kind: &str,
        state_key: Option<&str>,
        content: Value,
        prev: &[&str],
        auth: &[&str],
        depth: u64,
    ) -> (String, Value) {
        let mut v = json!({
            "room_id": room, "sender": sender, "type": kind, "content": content, "depth": depth,
            "origin_server_ts": now_ms(), "prev_events": prev, "auth_events": auth,
        });
        if let Some(k) = state_key {
            v["state_key"] = json!(k);
        }
        let mut obj: CanonicalJsonObject = serde_json::from_value(v).unwrap();
        hash_and_sign_event(self.name.as_str(), signer, &mut obj, &self.rules.redaction).unwrap();
        let id = format!("${}", reference_hash(&obj, &self.rules).unwrap());
        (id, serde_json::to_value(obj).unwrap())
    }

    #[allow(clippy::too_many_arguments)]
    fn event(
        &self,
        room: &str,
        sender: &str,
        kind: &str,
        state_key: Option<&str>,
        content: Value,
        prev: &[&str],
        auth: &[&str],
        depth: u64,
    ) -> (String, Value) {
        self.signed(&self.key, room, sender, kind, state_key, content, prev, auth, depth)
    }

    fn text(&self, room: &str, sender: &str, body: &str, prev: &str, auth: &[&str], depth: u64) -> (String, Value) {
        self.event(
            room,
            sender,
            "m.room.message",
            None,
            json!({ "msgtype": "m.text", "body": body }),
            &[prev],
            auth,
            depth,
        )
    }

    fn member(
        &self,
        room: &str,
        user: &str,
        membership: &str,
        prev: &str,
        auth: &[&str],
        depth: u64,
    ) -> (String, Value) {
        self.event(room, user, "m.room.member", Some(user), json!({ "membership": membership }), &[prev], auth, depth)
    }

    /// A signed request from A to B.
    async fn put(&self, b: &Fed, path: &str, body: &Value) -> Resp {
        let auth = x_matrix(&self.key, &self.name, &b.name, "PUT", path, Some(body));
        b.request(Method::PUT, path, Some(&auth), Some(body)).await
    }

    async fn txn(&self, b: &Fed, txn_id: &str, pdus: &[&Value]) -> Resp {
        let body = json!({ "origin": self.name, "origin_server_ts": now_ms(), "pdus": pdus });
        self.put(b, &format!("/_matrix/federation/v1/send/{txn_id}"), &body).await
    }
}

/// The room's latest event on B and its depth (a room built by one server is a line, so the
/// depth of its last event is the number of events).
async fn tip(b: &Fed, bob: &Session, room: &str) -> (String, u64) {
    let r = b.server.get(&format!("/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=200"), bob.token()).await;
    let chunk = r.body["chunk"].as_array().unwrap();
    (chunk[0]["event_id"].as_str().unwrap().to_owned(), chunk.len() as u64)
}

/// The event ID of a current state event on B.
async fn state_id(b: &Fed, bob: &Session, room: &str, kind: &str, key: &str) -> String {
    let r = b.server.get(&format!("/_matrix/client/v3/rooms/{room}/state"), bob.token()).await;
    let ev = r.body.as_array().unwrap().iter().find(|e| e["type"] == kind && e["state_key"] == key).cloned();
    ev.unwrap_or_else(|| panic!("no {kind} in {:?}", r.body))["event_id"].as_str().unwrap().to_owned()
}

async fn event_status(b: &Fed, bob: &Session, room: &str, id: &str) -> Resp {
    b.server.get(&format!("/_matrix/client/v3/rooms/{room}/event/{}", urlencode(id)), bob.token()).await
}

async fn joined(b: &Fed, bob: &Session, room: &str) -> Vec<String> {
    let r = b.server.get(&format!("/_matrix/client/v3/rooms/{room}/joined_members"), bob.token()).await;
    let mut users: Vec<String> = r.body["joined"].as_object().unwrap().keys().cloned().collect();
    users.sort();
    users
}

/// B with a public room of bob's, and A's identity.
async fn setup() -> (Fed, Fed, AsA, Session, String) {
    let pki = Pki::new();
    let mut a = Fed::start(&pki);
    let b = Fed::start(&pki);
    let as_a = AsA::new(&mut a);
    let bob = b.server.register("bob", "password-bob").await;
    let room = b.server.create_room(bob.token().unwrap(), json!({ "preset": "public_chat" })).await;
    (a, b, as_a, bob, room)
}

/// A transaction joins @alice:A and carries her messages (listed newest first: B orders them);
/// bob sees them in /sync and /messages; a replayed transaction ID changes nothing; then
/// send_join (with and without omit_members) and send_leave.
#[tokio::test]
async fn remote_events_reach_local_clients() {
    let (a, b, as_a, bob, room) = setup().await;
    let token = bob.token().unwrap();
    let since = b.server.get("/_matrix/client/v3/sync?timeout=0", bob.token()).await.body["next_batch"].clone();
    let (head, depth) = tip(&b, &bob, &room).await;
    let (pl, jr) = (
        state_id(&b, &bob, &room, "m.room.power_levels", "").await,
        state_id(&b, &bob, &room, "m.room.join_rules", "").await,
    );
    let alice = as_a.user("alice");
    let (join, join_pdu) = as_a.member(&room, &alice, "join", &head, &[&pl, &jr], depth + 1);
    let (m1, m1_pdu) = as_a.text(&room, &alice, "hello from A", &join, &[&pl, &join], depth + 2);
    let (m2, m2_pdu) = as_a.text(&room, &alice, "second", &m1, &[&pl, &join], depth + 3);

    let r = as_a.txn(&b, "txn-1", &[&m2_pdu, &m1_pdu, &join_pdu]).await;
    let expected = json!({ "pdus": { &join: {}, &m1: {}, &m2: {} } });
    assert_eq!((r.status, &r.body), (200, &expected));
    assert!(a.server.log().contains("/_matrix/key/v2/server"), "B fetched A's key from A");

    let r = b
        .server
        .get(&format!("/_matrix/client/v3/sync?timeout=0&since={}", since.as_str().unwrap()), bob.token())
        .await;
    let timeline = r.body["rooms"]["join"][&room]["timeline"]["events"].as_array().unwrap().clone();
    let ids: Vec<&str> = timeline.iter().map(|e| e["event_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [join.as_str(), m1.as_str(), m2.as_str()]);
    assert_eq!(timeline[0]["content"], json!({ "membership": "join" }));
    assert_eq!(timeline[2]["content"]["body"], "second");
    assert_eq!(b.server.message_bodies(token, &room).await, ["hello from A", "second"]);
    assert_eq!(joined(&b, &bob, &room).await, {
        let mut v = vec![alice.clone(), bob.user_id.clone()];
        v.sort();
        v
    });

    // The same transaction ID again, even with other PDUs: the first answer, nothing stored.
    let (m3, m3_pdu) = as_a.text(&room, &alice, "replayed", &m2, &[&pl, &join], depth + 4);
    let r = as_a.txn(&b, "txn-1", &[&m3_pdu]).await;
    assert_eq!((r.status, &r.body), (200, &expected));
    assert_eq!(event_status(&b, &bob, &room, &m3).await.status, 404);
    assert_eq!(b.server.message_bodies(token, &room).await, ["hello from A", "second"]);

    // send_join: the event comes back signed by B too, with the state before it and its auth chain.
    let carol = as_a.user("carol");
    let (cj, cj_pdu) = as_a.member(&room, &carol, "join", &m2, &[&pl, &jr], depth + 4);
    let path = format!("/_matrix/federation/v2/send_join/{}/{}", urlencode(&room), urlencode(&cj));
    let r = as_a.put(&b, &path, &cj_pdu).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.body["event"]["signatures"][b.name.as_str()].is_object(), "{:?}", r.body["event"]);
    assert!(r.body["event"]["signatures"][as_a.name.as_str()].is_object());
    let state = r.body["state"].as_array().unwrap();
    let has = |kind: &str, key: &str| state.iter().any(|e| e["type"] == kind && e["state_key"] == key);
    assert!(has("m.room.create", "") && has("m.room.member", &bob.user_id) && has("m.room.member", &alice));
    assert!(!has("m.room.member", &carol), "the state before the join");
    assert!(!r.body["auth_chain"].as_array().unwrap().is_empty());
    assert_eq!(r.body["members_omitted"], false);
    assert!(joined(&b, &bob, &room).await.contains(&carol));

    // omit_members: only the members that sent state (bob), and the servers in the room.
    let dave = as_a.user("dave");
    let (dj, dj_pdu) = as_a.member(&room, &dave, "join", &cj, &[&pl, &jr], depth + 5);
    let path = format!("/_matrix/federation/v2/send_join/{}/{}?omit_members=true", urlencode(&room), urlencode(&dj));
    let r = as_a.put(&b, &path, &dj_pdu).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let members: Vec<&str> = r.body["state"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.member")
        .map(|e| e["state_key"].as_str().unwrap())
        .collect();
    assert_eq!(members, [bob.user_id.as_str()]);
    assert_eq!(r.body["members_omitted"], true);
    let mut servers = vec![as_a.name.to_string(), b.name.to_string()];
    servers.sort();
    assert_eq!(r.body["servers_in_room"], json!(servers));

    // send_leave.
    let (cl, cl_pdu) = as_a.member(&room, &carol, "leave", &dj, &[&pl, &cj], depth + 6);
    let path = format!("/_matrix/federation/v2/send_leave/{}/{}", urlencode(&room), urlencode(&cl));
    let r = as_a.put(&b, &path, &cl_pdu).await;
    assert_eq!((r.status, &r.body), (200, &json!({})));
    assert!(!joined(&b, &bob, &room).await.contains(&carol));

    // send_join refuses an event whose sender is not on the origin, or that is no join.
    let erin = "@erin:example.org";
    let (ej, ej_pdu) = as_a.member(&room, erin, "join", &cl, &[&pl, &jr], depth + 7);
    let path = format!("/_matrix/federation/v2/send_join/{}/{}", urlencode(&room), urlencode(&ej));
    let r = as_a.put(&b, &path, &ej_pdu).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "{:?}", r.body);
    let path = format!("/_matrix/federation/v2/send_join/{}/{}", urlencode(&room), urlencode(&cl));
    let r = as_a.put(&b, &path, &cl_pdu).await;
    assert_eq!((r.status, r.errcode()), (400, "M_BAD_JSON"), "{:?}", r.body);

    // send_knock once the room takes knocks: the answer is the room's stripped state.
    let r = b.server.set_state(token, &room, "m.room.join_rules", "", json!({ "join_rule": "knock" })).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let (head, depth) = tip(&b, &bob, &room).await;
    let jr = state_id(&b, &bob, &room, "m.room.join_rules", "").await;
    let frank = as_a.user("frank");
    let (fk, fk_pdu) = as_a.member(&room, &frank, "knock", &head, &[&pl, &jr], depth + 1);
    let path = format!("/_matrix/federation/v1/send_knock/{}/{}", urlencode(&room), urlencode(&fk));
    let r = as_a.put(&b, &path, &fk_pdu).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let stripped = r.body["knock_room_state"].as_array().unwrap();
    let kinds: Vec<&str> = stripped.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["m.room.create", "m.room.join_rules"], "{stripped:?}");
    assert_eq!(stripped[1]["content"], json!({ "join_rule": "knock" }));
    let r = b.server.get(&format!("/_matrix/client/v3/rooms/{room}/members?membership=knock"), bob.token()).await;
    assert_eq!(r.body["chunk"][0]["state_key"], frank.as_str(), "{:?}", r.body);
}

/// Every broken PDU gets its own error in the answer and leaves no trace a client could see.
#[tokio::test]
async fn bad_pdus_are_refused_and_nothing_is_stored() {
    let (_a, b, as_a, bob, room) = setup().await;
    let token = bob.token().unwrap();
    let (head, depth) = tip(&b, &bob, &room).await;
    let (pl, jr) = (
        state_id(&b, &bob, &room, "m.room.power_levels", "").await,
        state_id(&b, &bob, &room, "m.room.join_rules", "").await,
    );
    let alice = as_a.user("alice");
    let (join, join_pdu) = as_a.member(&room, &alice, "join", &head, &[&pl, &jr], depth + 1);
    assert_eq!(as_a.txn(&b, "j", &[&join_pdu]).await.body, json!({ "pdus": { &join: {} } }));
    let auth = [pl.as_str(), join.as_str()];

    let other_key =
        Ed25519KeyPair::from_der(Ed25519KeyPair::generate().as_slice(), as_a.key.version().to_owned()).unwrap();
    let content = json!({ "msgtype": "m.text", "body": "forged" });
    let (bad_sig, bad_sig_pdu) =
        as_a.signed(&other_key, &room, &alice, "m.room.message", None, content, &[&join], &auth, depth + 2);

    let (not_member, not_member_pdu) =
        as_a.text(&room, &as_a.user("mallory"), "not a member", &join, &[&pl], depth + 2);

    let ghost = format!("@mallory:127.0.0.1:{}", free_port());
    let (forged, forged_pdu) = as_a.text(&room, &ghost, "from C", &join, &[&pl], depth + 2);

    let (big, mut big_pdu) = as_a.text(&room, &alice, "small", &join, &auth, depth + 2);
    big_pdu["content"]["body"] = json!("x".repeat(70_000));

    let r = as_a.txn(&b, "bad", &[&bad_sig_pdu, &not_member_pdu, &forged_pdu, &big_pdu]).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let pdus = r.body["pdus"].as_object().unwrap();
    assert_eq!(pdus.len(), 4, "{pdus:?}");
    let error =
        |id: &str| pdus[id]["error"].as_str().unwrap_or_else(|| panic!("no error for {id}: {pdus:?}")).to_owned();
    assert!(error(&bad_sig).starts_with(&format!("Signature check failed for {bad_sig}")), "{}", error(&bad_sig));
    assert!(error(&not_member).starts_with("Event not authorized by its auth events"), "{}", error(&not_member));
    assert!(error(&forged).starts_with(&format!("Signature check failed for {forged}")), "{}", error(&forged));
    assert!(error(&forged).contains(ghost.trim_start_matches("@mallory:")), "{}", error(&forged));
    assert!(error(&big).starts_with("PDU is ") && error(&big).ends_with("bytes, more than 65536"), "{}", error(&big));
    for id in [&bad_sig, &not_member, &forged, &big] {
        assert_eq!(event_status(&b, &bob, &room, id).await.status, 404, "{id}");
    }
    assert!(b.server.message_bodies(token, &room).await.is_empty());

    // A content hash that does not match: kept, redacted.
    let (tampered, mut tampered_pdu) = as_a.text(&room, &alice, "original", &join, &auth, depth + 2);
    tampered_pdu["content"]["body"] = json!("tampered");
    assert_eq!(as_a.txn(&b, "hash", &[&tampered_pdu]).await.body, json!({ "pdus": { &tampered: {} } }));
    let r = event_status(&b, &bob, &room, &tampered).await;
    assert_eq!((r.status, &r.body["content"]), (200, &json!({})), "{:?}", r.body);
    assert_eq!(b.server.message_bodies(token, &room).await, ["<redacted>"]);

    // Soft failure: bob kicks alice; her message built before the kick is authorized by the
    // state before it but not by the current state.
    let kick = b.server.room_post(token, &room, "kick", json!({ "user_id": alice })).await;
    assert_eq!(kick.status, 200, "{:?}", kick.body);
    let (late, late_pdu) = as_a.text(&room, &alice, "too late", &tampered, &auth, depth + 3);
    assert_eq!(as_a.txn(&b, "late", &[&late_pdu]).await.body, json!({ "pdus": { &late: {} } }));
    assert_eq!(event_status(&b, &bob, &room, &late).await.status, 404);
    assert_eq!(b.server.message_bodies(token, &room).await, ["<redacted>"]);

    // Limits, authentication, server ACLs.
    let many: Vec<&Value> = std::iter::repeat_n(&late_pdu, 51).collect();
    let r = as_a.txn(&b, "many", &many).await;
    assert_eq!((r.status, r.errcode()), (400, "M_BAD_JSON"), "{:?}", r.body);
    let body = json!({ "origin": as_a.name, "origin_server_ts": now_ms(), "pdus": [] });
    let r = b.request(Method::PUT, "/_matrix/federation/v1/send/noauth", None, Some(&body)).await;
    assert_eq!((r.status, r.errcode()), (401, "M_UNAUTHORIZED"));
    let wrong = x_matrix(&other_key, &as_a.name, &b.name, "PUT", "/_matrix/federation/v1/send/wrong", Some(&body));
    let r = b.request(Method::PUT, "/_matrix/federation/v1/send/wrong", Some(&wrong), Some(&body)).await;
    assert_eq!((r.status, r.errcode()), (401, "M_UNAUTHORIZED"));

    let acl = json!({ "allow": ["*"], "deny": [], "allow_ip_literals": false });
    assert_eq!(b.server.set_state(token, &room, "m.room.server_acl", "", acl).await.status, 200);
    let (rejoin, rejoin_pdu) = as_a.member(&room, &alice, "join", &late, &[&pl, &jr], depth + 4);
    let r = as_a.txn(&b, "acl", &[&rejoin_pdu]).await;
    let why = format!("Server {} is denied by the server ACL of {room}", as_a.name);
    assert_eq!(r.body, json!({ "pdus": { &rejoin: { "error": why } } }));
    assert_eq!(event_status(&b, &bob, &room, &rejoin).await.status, 404);
}

/// A join the room's rules refuse is 403 — and stays 403 when sent again (the stored, rejected
/// event must not be taken as "already known" and answered with the room's state).
#[tokio::test]
async fn a_refused_send_join_sent_again_is_still_refused() {
    let pki = Pki::new();
    let mut a = Fed::start(&pki);
    let b = Fed::start(&pki);
    let as_a = AsA::new(&mut a);
    let bob = b.server.register("bob", "password-bob").await;
    let room = b.server.create_room(bob.token().unwrap(), json!({ "preset": "private_chat" })).await;
    let (head, depth) = tip(&b, &bob, &room).await;
    let (pl, jr) = (
        state_id(&b, &bob, &room, "m.room.power_levels", "").await,
        state_id(&b, &bob, &room, "m.room.join_rules", "").await,
    );
    let alice = as_a.user("alice");
    let (join, join_pdu) = as_a.member(&room, &alice, "join", &head, &[&pl, &jr], depth + 1);
    let path = format!("/_matrix/federation/v2/send_join/{}/{}", urlencode(&room), urlencode(&join));
    for attempt in 0..2 {
        let r = as_a.put(&b, &path, &join_pdu).await;
        assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "attempt {attempt}: {:?}", r.body);
        assert!(r.body.get("state").is_none(), "attempt {attempt}: {:?}", r.body);
    }
    assert_eq!(joined(&b, &bob, &room).await, vec![bob.user_id.clone()]);
}
