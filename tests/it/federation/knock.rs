//! Knocking on a room of another server and remote refusals relayed, between two real Trellis
//! servers A (alice) and B (bob): a remote 403 or 400 on join is B's own error; alice knocks on bob's
//! knock room, sees it under `knock` with B's stripped state, bob sees the knock, invites,
//! alice joins and messages flow.

use serde_json::json;

use super::join::{Pair, Watch, member, message};
use crate::server::urlencode;

#[tokio::test]
async fn join_of_an_invite_only_room_relays_the_remote_403() {
    let p = Pair::start().await;
    let room = p.b.server.create_room(&p.bob.access_token, json!({ "preset": "private_chat" })).await;
    let r = p.alice_joins(&room).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "{:?}", r.body);
    let error = r.body["error"].as_str().unwrap();
    assert!(!error.contains("answered"), "B's own message, not a wrapper: {error}");

    // Knocking on a room that does not take knocks: B's 403 too.
    let path = format!("/_matrix/client/v3/knock/{}?via={}", urlencode(&room), urlencode(p.b.name.as_str()));
    let r = p.a.server.post(&path, p.alice.token(), json!({})).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "{:?}", r.body);

    // A restricted room whose allowed room B is not in: B's 400 M_UNABLE_TO_AUTHORISE_JOIN.
    let allow = json!({ "join_rule": "restricted", "allow": [{ "type": "m.room_membership", "room_id": format!("!elsewhere:{}", p.b.name) }] });
    let body = json!({
        "preset": "private_chat",
        "room_version": "10",
        "initial_state": [{ "type": "m.room.join_rules", "state_key": "", "content": allow }],
    });
    let restricted = p.b.server.create_room(&p.bob.access_token, body).await;
    let r = p.alice_joins(&restricted).await;
    assert_eq!((r.status, r.errcode()), (400, "M_UNABLE_TO_AUTHORISE_JOIN"), "{:?}", r.body);
}

#[tokio::test]
async fn knock_on_a_remote_room_then_invited_and_joined() {
    let p = Pair::start().await;
    let body = json!({
        "preset": "private_chat",
        "room_version": "10",
        "name": "Knock here",
        "initial_state": [{ "type": "m.room.join_rules", "state_key": "", "content": { "join_rule": "knock" } }],
    });
    let room = p.b.server.create_room(&p.bob.access_token, body).await;
    let mut alice = Watch::new(&p.a.server, &p.alice).await;
    let mut bob = Watch::new(&p.b.server, &p.bob).await;

    let path = format!("/_matrix/client/v3/knock/{}?via={}", urlencode(&room), urlencode(p.b.name.as_str()));
    let r = p.a.server.post(&path, p.alice.token(), json!({ "reason": "let me in" })).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["room_id"], room.as_str());

    let knock = alice.wait("the knock on A", member(&room, &p.alice.user_id, "knock")).await;
    assert_eq!((knock.section.as_str(), knock.part.as_str()), ("knock", "knock_state"));
    assert_eq!(knock.event["content"]["reason"], "let me in");
    let name = alice.wait("the room name", |s| s.room == room && s.event["type"] == "m.room.name").await;
    assert_eq!((name.section.as_str(), name.event["content"]["name"].as_str()), ("knock", Some("Knock here")));
    let rules = alice.wait("the join rules", |s| s.room == room && s.event["type"] == "m.room.join_rules").await;
    assert_eq!(rules.event["content"]["join_rule"], "knock");

    let seen = bob.wait("the knock on B", member(&room, &p.alice.user_id, "knock")).await;
    assert_eq!(seen.event["content"]["reason"], "let me in");

    let invite = json!({ "user_id": p.alice.user_id });
    let r = p.b.server.room_post(&p.bob.access_token, &room, "invite", invite).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let got = alice.wait("the invite", member(&room, &p.alice.user_id, "invite")).await;
    assert_eq!(got.section, "invite");

    let r = p.a.server.room_post(&p.alice.access_token, &room, "join", json!({})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    bob.wait("alice's join", member(&room, &p.alice.user_id, "join")).await;
    p.a.server.send_text(&p.alice.access_token, &room, "hello from A").await;
    bob.wait("alice's message", message(&room, "hello from A")).await;
    p.b.server.send_text(&p.bob.access_token, &room, "hello from B").await;
    alice.wait("bob's message", message(&room, "hello from B")).await;
}
