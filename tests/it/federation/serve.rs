//! Serving rooms, users and keys to other servers, membership templates and incoming invites
//! (spec: Server-Server API "Retrieving events", "Backfilling", "Joining Rooms", "Inviting to a
//! room", "Room Directory", "Device Management"). Two real servers A and B; the test signs
//! requests as A with A's key and calls B. A has no user in B's rooms, so "in the room" cases use
//! world-readable rooms (which any server may read) and the "not in the room" cases the others.

use std::collections::BTreeSet;

use reqwest::Method;
use ruma::signatures::Ed25519KeyPair;
use serde_json::{Value, json};

use super::{Fed, Pki, now_ms, x_matrix};
use crate::server::{Resp, Session, urlencode};

/// Requests signed as server A.
struct AsA {
    key: Ed25519KeyPair,
    a: ruma::OwnedServerName,
}

impl AsA {
    async fn call(&self, b: &Fed, method: Method, path: &str, body: Option<Value>) -> Resp {
        let auth = x_matrix(&self.key, &self.a, &b.name, method.as_str(), path, body.as_ref());
        b.request(method, path, Some(&auth), body.as_ref()).await
    }
    async fn get(&self, b: &Fed, path: &str) -> Resp {
        self.call(b, Method::GET, path, None).await
    }
}

async fn start() -> (Pki, Fed, Fed, AsA) {
    let pki = Pki::new();
    let mut a = Fed::start(&pki);
    let b = Fed::start(&pki);
    let key = a.signing_key();
    let signer = AsA { key, a: a.name.clone() };
    (pki, a, b, signer)
}

/// `(type, state_key) → event_id` of B's current state, through B's client API.
async fn state_ids(b: &Fed, bob: &Session, room: &str) -> Vec<(String, String, String)> {
    let r = b.server.get(&format!("/_matrix/client/v3/rooms/{}/state", urlencode(room)), bob.token()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let mut out: Vec<_> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap().to_owned();
            (s("type"), s("state_key"), s("event_id"))
        })
        .collect();
    out.sort();
    out
}

fn id_of(state: &[(String, String, String)], kind: &str) -> String {
    state.iter().find(|(t, _, _)| t == kind).map(|(_, _, id)| id.clone()).unwrap()
}

fn bodies(pdus: &Value) -> Vec<String> {
    pdus.as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "m.room.message")
        .map(|p| p["content"]["body"].as_str().unwrap_or("<redacted>").to_owned())
        .collect()
}

/// A world-readable room on B: A reads single events, the state before an event with its auth
/// chain, auth chains, backfill and missing events, the closest event to a time, and gets a
/// join template built on B's latest event.
#[tokio::test]
async fn a_world_readable_room_is_served() {
    let (_pki, _a, b, as_a) = start().await;
    let bob = b.server.register("bob", "password-bob").await;
    let tok = bob.access_token.as_str();
    let room = b
        .server
        .create_room(
            tok,
            json!({ "preset": "public_chat", "room_version": "11", "initial_state": [
                { "type": "m.room.history_visibility", "state_key": "", "content": { "history_visibility": "world_readable" } }
            ] }),
        )
        .await;
    let one = b.server.send_text(tok, &room, "one").await;
    let two = b.server.send_text(tok, &room, "two").await;
    let three = b.server.send_text(tok, &room, "three").await;
    let (r_enc, e) = (urlencode(&room), |id: &str| urlencode(id));

    // One event, exactly as B stored it.
    let r = as_a.get(&b, &format!("/_matrix/federation/v1/event/{}", e(&three))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["origin"], b.name.as_str());
    let pdu = &r.body["pdus"][0];
    assert_eq!((pdu["type"].as_str(), pdu["content"]["body"].as_str()), (Some("m.room.message"), Some("three")));
    assert_eq!((pdu["room_id"].as_str(), pdu["sender"].as_str()), (Some(room.as_str()), Some(bob.user_id.as_str())));
    assert!(pdu["signatures"][b.name.as_str()].is_object() && pdu["hashes"]["sha256"].is_string());
    let three_depth = pdu["depth"].as_u64().unwrap();
    assert_eq!(pdu["prev_events"], json!([two]));

    // The state before `three` is B's current state (messages change no state).
    let state = state_ids(&b, &bob, &room).await;
    let r = as_a.get(&b, &format!("/_matrix/federation/v1/state_ids/{r_enc}?event_id={}", e(&three))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let got: BTreeSet<&str> = r.body["pdu_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let want: BTreeSet<&str> = state.iter().map(|(_, _, id)| id.as_str()).collect();
    assert_eq!(got, want);
    let chain: BTreeSet<&str> =
        r.body["auth_chain_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let create = id_of(&state, "m.room.create");
    let power = id_of(&state, "m.room.power_levels");
    assert!(chain.contains(create.as_str()) && chain.contains(power.as_str()), "{chain:?}");
    let r = as_a.get(&b, &format!("/_matrix/federation/v1/state/{r_enc}?event_id={}", e(&three))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let mut types: Vec<&str> = r.body["pdus"].as_array().unwrap().iter().map(|p| p["type"].as_str().unwrap()).collect();
    types.sort();
    let mut want_types: Vec<&str> = state.iter().map(|(t, _, _)| t.as_str()).collect();
    want_types.sort();
    assert_eq!(types, want_types);
    assert_eq!(r.body["auth_chain"].as_array().unwrap().len(), chain.len());

    // The auth chain of a message by the creator: create, their join, power levels.
    let r = as_a.get(&b, &format!("/_matrix/federation/v1/event_auth/{r_enc}/{}", e(&three))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let types: Vec<&str> =
        r.body["auth_chain"].as_array().unwrap().iter().map(|p| p["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["m.room.create", "m.room.member", "m.room.power_levels"]);

    // Backfill from `three`: it and what precedes it, newest first.
    let r = as_a.get(&b, &format!("/_matrix/federation/v1/backfill/{r_enc}?v={}&limit=3", e(&three))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(bodies(&r.body["pdus"]), ["three", "two", "one"]);
    assert_eq!(r.body["pdus"].as_array().unwrap().len(), 3);
    let r = as_a.get(&b, &format!("/_matrix/federation/v1/backfill/{r_enc}?v={}&limit=100", e(&two))).await;
    let all = r.body["pdus"].as_array().unwrap();
    assert_eq!(bodies(&r.body["pdus"]), ["two", "one"]);
    assert_eq!(all.last().unwrap()["type"], "m.room.create", "the walk ends at the create event");
    let depths: Vec<u64> = all.iter().map(|p| p["depth"].as_u64().unwrap()).collect();
    assert!(depths.windows(2).all(|w| w[0] > w[1]), "newest first: {depths:?}");

    // Missing events between `one` and `three`: just `two`.
    let body = json!({ "earliest_events": [one], "latest_events": [three], "limit": 10, "min_depth": 0 });
    let r =
        as_a.call(&b, Method::POST, &format!("/_matrix/federation/v1/get_missing_events/{r_enc}"), Some(body)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(bodies(&r.body["events"]), ["two"]);
    assert_eq!(r.body["events"].as_array().unwrap().len(), 1);

    // The closest event before now is `three`.
    let path = format!("/_matrix/federation/v1/timestamp_to_event/{r_enc}?ts={}&dir=b", now_ms() + 1000);
    let r = as_a.get(&b, &path).await;
    assert_eq!((r.status, r.body["event_id"].as_str()), (200, Some(three.as_str())), "{:?}", r.body);

    // A join template for a user of A, on B's latest event.
    let x = format!("@x:{}", as_a.a);
    let path = format!("/_matrix/federation/v1/make_join/{r_enc}/{}?ver=10&ver=11", urlencode(&x));
    let r = as_a.get(&b, &path).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["room_version"], "11");
    let t = &r.body["event"];
    assert_eq!(
        (t["type"].as_str(), t["sender"].as_str(), t["state_key"].as_str()),
        (Some("m.room.member"), Some(x.as_str()), Some(x.as_str()))
    );
    assert_eq!(t["content"], json!({ "membership": "join" }));
    assert_eq!(t["room_id"], room.as_str());
    assert_eq!(t["prev_events"], json!([three]));
    assert_eq!(t["depth"].as_u64(), Some(three_depth + 1));
    let auth: BTreeSet<&str> = t["auth_events"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let want: BTreeSet<String> =
        [id_of(&state, "m.room.create"), id_of(&state, "m.room.join_rules"), power.clone()].into();
    assert_eq!(auth, want.iter().map(String::as_str).collect(), "a first join: create, join rules, power levels");
    assert!(t["origin_server_ts"].as_u64().unwrap() >= now_ms() - 60_000);
    assert!(t.get("hashes").is_none() && t.get("signatures").is_none() && t.get("event_id").is_none());

    // A room version A does not support, a user of another server, a leave by a non-member.
    let r = as_a.get(&b, &format!("/_matrix/federation/v1/make_join/{r_enc}/{}?ver=1&ver=2", urlencode(&x))).await;
    assert_eq!(
        (r.status, r.errcode(), r.body["room_version"].as_str()),
        (400, "M_INCOMPATIBLE_ROOM_VERSION", Some("11"))
    );
    let r = as_a.get(&b, &format!("/_matrix/federation/v1/make_join/{r_enc}/{}?ver=11", urlencode(&bob.user_id))).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "{:?}", r.body);
    let r = as_a.get(&b, &format!("/_matrix/federation/v1/make_leave/{r_enc}/{}", urlencode(&x))).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "{:?}", r.body);
    let r = as_a.get(&b, &format!("/_matrix/federation/v1/make_knock/{r_enc}/{}?ver=11", urlencode(&x))).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "public rooms take no knocks: {:?}", r.body);

    // Unknown events and rooms.
    let r = as_a.get(&b, "/_matrix/federation/v1/event/%24nope").await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));
    let r = as_a
        .get(&b, &format!("/_matrix/federation/v1/state_ids/{}?event_id={}", urlencode("!nope:x"), e(&three)))
        .await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));
    let r = as_a.get(&b, &format!("/_matrix/federation/v1/event_auth/{r_enc}/%24nope")).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));
    // Unsigned requests are refused before anything else.
    let r = b.get(&format!("/_matrix/federation/v1/event/{}", e(&three))).await;
    assert_eq!((r.status, r.errcode()), (401, "M_UNAUTHORIZED"));
}

/// A server with no user in a room may read nothing of it (history `joined`, and the default
/// `shared`), nor join an invite-only room; a knock room gives it a knock template; a server
/// ACL that denies it closes a world-readable room too.
#[tokio::test]
async fn servers_outside_the_room_and_denied_servers_are_refused() {
    let (_pki, _a, b, as_a) = start().await;
    let bob = b.server.register("bob", "password-bob").await;
    let tok = bob.access_token.as_str();
    let x = urlencode(&format!("@x:{}", as_a.a));

    for visibility in ["joined", "shared"] {
        let room = b
            .server
            .create_room(
                tok,
                json!({ "preset": "private_chat", "initial_state": [
                    { "type": "m.room.history_visibility", "state_key": "", "content": { "history_visibility": visibility } }
                ] }),
            )
            .await;
        let ev = urlencode(&b.server.send_text(tok, &room, "secret").await);
        let r_enc = urlencode(&room);
        for path in [
            format!("/_matrix/federation/v1/event/{ev}"),
            format!("/_matrix/federation/v1/state/{r_enc}?event_id={ev}"),
            format!("/_matrix/federation/v1/state_ids/{r_enc}?event_id={ev}"),
            format!("/_matrix/federation/v1/event_auth/{r_enc}/{ev}"),
            format!("/_matrix/federation/v1/backfill/{r_enc}?v={ev}&limit=10"),
        ] {
            let r = as_a.get(&b, &path).await;
            assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "{visibility} {path}: {:?}", r.body);
            assert!(!r.body.to_string().contains("secret"));
        }
        let body = json!({ "earliest_events": [], "latest_events": [b.server.send_text(tok, &room, "more").await] });
        let r = as_a
            .call(&b, Method::POST, &format!("/_matrix/federation/v1/get_missing_events/{r_enc}"), Some(body))
            .await;
        assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "{:?}", r.body);
        // Invite-only: A's user may not join.
        let r = as_a.get(&b, &format!("/_matrix/federation/v1/make_join/{r_enc}/{x}?ver=12")).await;
        assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "{:?}", r.body);
    }

    // History that was `joined` and became world-readable: A may read the room now, but the
    // events from before come redacted, and the state at them is refused.
    let room = b
        .server
        .create_room(
            tok,
            json!({ "preset": "private_chat", "initial_state": [
        { "type": "m.room.history_visibility", "state_key": "", "content": { "history_visibility": "joined" } }
    ] }),
        )
        .await;
    let hidden = b.server.send_text(tok, &room, "before").await;
    let hv = json!({ "history_visibility": "world_readable" });
    assert_eq!(b.server.set_state(tok, &room, "m.room.history_visibility", "", hv).await.status, 200);
    let open = b.server.send_text(tok, &room, "after").await;
    let r_enc = urlencode(&room);
    let r = as_a.get(&b, &format!("/_matrix/federation/v1/backfill/{r_enc}?v={}&limit=3", urlencode(&open))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let pdus = r.body["pdus"].as_array().unwrap();
    assert_eq!(pdus[0]["content"]["body"], "after");
    assert_eq!(pdus[1]["type"], "m.room.history_visibility");
    assert_eq!((pdus[2]["type"].as_str(), pdus[2]["content"].clone()), (Some("m.room.message"), json!({})), "redacted");
    assert!(
        pdus[2]["signatures"].is_object() && pdus[2]["hashes"].is_object(),
        "a redacted PDU keeps hashes and signatures"
    );
    let r = as_a.get(&b, &format!("/_matrix/federation/v1/event/{}", urlencode(&hidden))).await;
    assert_eq!((r.status, r.body["pdus"][0]["content"].clone()), (200, json!({})));
    let r = as_a.get(&b, &format!("/_matrix/federation/v1/state_ids/{r_enc}?event_id={}", urlencode(&hidden))).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"));
    let r = as_a.get(&b, &format!("/_matrix/federation/v1/state_ids/{r_enc}?event_id={}", urlencode(&open))).await;
    assert_eq!(r.status, 200);

    // A knock room gives a knock template (room version 12: no create event in auth_events).
    let room = b.server.create_room(tok, json!({ "preset": "private_chat" })).await;
    assert_eq!(
        b.server.set_state(tok, &room, "m.room.join_rules", "", json!({ "join_rule": "knock" })).await.status,
        200
    );
    let r = as_a.get(&b, &format!("/_matrix/federation/v1/make_knock/{}/{x}?ver=12", urlencode(&room))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        (r.body["room_version"].as_str(), r.body["event"]["content"].clone()),
        (Some("12"), json!({ "membership": "knock" }))
    );
    let r = as_a.get(&b, &format!("/_matrix/federation/v1/make_knock/{}/{x}?ver=11", urlencode(&room))).await;
    assert_eq!((r.status, r.errcode()), (400, "M_INCOMPATIBLE_ROOM_VERSION"));

    // Server ACL: readable before, 403 once A's host is denied.
    let room = b
        .server
        .create_room(
            tok,
            json!({ "preset": "public_chat", "initial_state": [
                { "type": "m.room.history_visibility", "state_key": "", "content": { "history_visibility": "world_readable" } }
            ] }),
        )
        .await;
    let ev = urlencode(&b.server.send_text(tok, &room, "hello").await);
    let r = as_a.get(&b, &format!("/_matrix/federation/v1/event/{ev}")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let acl = json!({ "allow": ["*"], "deny": ["127.0.0.1"], "allow_ip_literals": true });
    assert_eq!(b.server.set_state(tok, &room, "m.room.server_acl", "", acl).await.status, 200);
    for path in [
        format!("/_matrix/federation/v1/event/{ev}"),
        format!("/_matrix/federation/v1/state_ids/{}?event_id={ev}", urlencode(&room)),
        format!("/_matrix/federation/v1/make_join/{}/{x}?ver=12", urlencode(&room)),
    ] {
        let r = as_a.get(&b, &path).await;
        assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "{path}: {:?}", r.body);
        assert!(r.body["error"].as_str().unwrap().contains("ACL"), "{:?}", r.body);
    }
}

/// Once the last local user left a room, B no longer follows it and cannot vouch for its
/// state: `make_join` and `make_knock` are 404 `M_NOT_FOUND` (as Synapse), not a template.
#[tokio::test]
async fn no_join_or_knock_template_without_a_local_member() {
    let (_pki, _a, b, as_a) = start().await;
    let bob = b.server.register("bob", "password-bob").await;
    let tok = bob.access_token.as_str();
    let x = urlencode(&format!("@x:{}", as_a.a));
    let public = b.server.create_room(tok, json!({ "preset": "public_chat" })).await;
    let knock = b.server.create_room(tok, json!({ "preset": "private_chat" })).await;
    let rule = json!({ "join_rule": "knock" });
    assert_eq!(b.server.set_state(tok, &knock, "m.room.join_rules", "", rule).await.status, 200);
    let make_join = format!("/_matrix/federation/v1/make_join/{}/{x}?ver=12", urlencode(&public));
    let make_knock = format!("/_matrix/federation/v1/make_knock/{}/{x}?ver=12", urlencode(&knock));
    for path in [&make_join, &make_knock] {
        let r = as_a.get(&b, path).await;
        assert_eq!(r.status, 200, "{path}: {:?}", r.body);
    }
    for room in [&public, &knock] {
        assert_eq!(b.server.room_post(tok, room, "leave", json!({})).await.status, 200);
    }
    for path in [&make_join, &make_knock] {
        let r = as_a.get(&b, path).await;
        assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"), "{path}: {:?}", r.body);
    }
    // An unknown room stays 404 as well.
    let r = as_a.get(&b, &format!("/_matrix/federation/v1/make_join/{}/{x}?ver=12", urlencode("!nope:x"))).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));
}

/// The auth chain of `ids`, computed from the PDUs B serves (`/event`): their `auth_events`,
/// recursively, plus in room version 12 the create event (`$` + the room ID's hash), which
/// every event of the room is authorized by without listing it.
async fn closure(as_a: &AsA, b: &Fed, room: &str, ids: &[String]) -> BTreeSet<String> {
    let create = room.strip_prefix('!').filter(|r| !r.contains(':')).map(|r| format!("${r}"));
    let mut todo: Vec<String> = Vec::new();
    let mut out = BTreeSet::new();
    let parents = async |id: &str| -> Vec<String> {
        let r = as_a.get(b, &format!("/_matrix/federation/v1/event/{}", urlencode(id))).await;
        assert_eq!(r.status, 200, "{id}: {:?}", r.body);
        let pdu = &r.body["pdus"][0];
        let mut p: Vec<String> =
            pdu["auth_events"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
        if pdu["type"] != "m.room.create" {
            p.extend(create.clone());
        }
        p
    };
    for id in ids {
        todo.extend(parents(id).await);
    }
    for _ in 0..1000 {
        let Some(id) = todo.pop() else { break };
        if out.insert(id.clone()) {
            todo.extend(parents(&id).await);
        }
    }
    assert!(todo.is_empty(), "the walk ends");
    out
}

/// `/event_auth`, `/state_ids` and `/state` return the whole auth chain, in room versions 11
/// and 12: in a room with several members, power level and join rule changes, exactly the
/// transitive closure of `auth_events` the test computes from the events themselves.
#[tokio::test]
async fn auth_chains_are_the_transitive_closure() {
    let (_pki, _a, b, as_a) = start().await;
    let bob = b.server.register("bob", "password-bob").await;
    let carol = b.server.register("carol", "password-carol").await;
    let dave = b.server.register("dave", "password-dave").await;
    let erin = b.server.register("erin", "password-erin").await;
    let tok = bob.access_token.as_str();
    for version in ["11", "12"] {
        let world = json!({ "history_visibility": "world_readable" });
        let body = json!({ "preset": "public_chat", "room_version": version, "initial_state": [
            { "type": "m.room.history_visibility", "state_key": "", "content": world }
        ] });
        let room = b.server.create_room(tok, body).await;
        for who in [&carol, &dave] {
            assert_eq!(b.server.join(&who.access_token, &room).await.status, 200);
        }
        let mut power =
            json!({ "users": { bob.user_id.as_str(): 100, carol.user_id.as_str(): 50 }, "state_default": 50 });
        if version == "12" {
            power["users"].as_object_mut().unwrap().remove(bob.user_id.as_str());
        }
        assert_eq!(b.server.set_state(tok, &room, "m.room.power_levels", "", power.clone()).await.status, 200);
        let rule = |r: &str| json!({ "join_rule": r });
        assert_eq!(b.server.set_state(tok, &room, "m.room.join_rules", "", rule("invite")).await.status, 200);
        power["users"][dave.user_id.as_str()] = json!(60);
        assert_eq!(
            b.server.set_state(&carol.access_token, &room, "m.room.topic", "", json!({ "topic": "t" })).await.status,
            200
        );
        assert_eq!(b.server.set_state(tok, &room, "m.room.power_levels", "", power).await.status, 200);
        assert_eq!(b.server.set_state(tok, &room, "m.room.join_rules", "", rule("public")).await.status, 200);
        let r = b.server.set_state(&dave.access_token, &room, "m.room.name", "", json!({ "name": "n" })).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        // A join under the last join rules, and a message: its chain holds both rule changes'
        // power levels.
        assert_eq!(b.server.join(&erin.access_token, &room).await.status, 200);
        let last = b.server.send_text(&erin.access_token, &room, "after it all").await;
        let message = last.clone();
        let r_enc = urlencode(&room);

        let rules = ruma::RoomVersionId::try_from(version).unwrap().rules().unwrap();
        let want = closure(&as_a, &b, &room, std::slice::from_ref(&last)).await;
        // Create, bob's and erin's joins, three power levels, the last join rules.
        assert_eq!(want.len(), 7, "v{version}: {want:?}");
        let r = as_a.get(&b, &format!("/_matrix/federation/v1/event_auth/{r_enc}/{}", urlencode(&last))).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let got: BTreeSet<String> = r.body["auth_chain"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let obj: ruma::CanonicalJsonObject = serde_json::from_value(p.clone()).unwrap();
                format!("${}", ruma::signatures::reference_hash(&obj, &rules).unwrap())
            })
            .collect();
        assert_eq!(got, want, "v{version}: /event_auth");

        // The state before the message and its auth chain.
        let r =
            as_a.get(&b, &format!("/_matrix/federation/v1/state_ids/{r_enc}?event_id={}", urlencode(&message))).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let ids = |v: &Value| -> Vec<String> {
            v.as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_owned()).collect()
        };
        let state = ids(&r.body["pdu_ids"]);
        let chain: BTreeSet<String> = ids(&r.body["auth_chain_ids"]).into_iter().collect();
        assert_eq!(chain, closure(&as_a, &b, &room, &state).await, "v{version}: /state_ids");
        let r = as_a.get(&b, &format!("/_matrix/federation/v1/state/{r_enc}?event_id={}", urlencode(&message))).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body["auth_chain"].as_array().unwrap().len(), chain.len(), "v{version}: /state");
        assert_eq!(r.body["pdus"].as_array().unwrap().len(), state.len());
    }
}
