//! History visibility, `/messages` pagination, `/context`, redactions.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::server::TestServer;

#[tokio::test]
async fn history_visibility_is_obeyed() {
    let s = TestServer::start();
    let alice = s.register("alice", "password1").await;
    let bob = s.register("bob", "password1").await;
    let eve = s.register("eve", "password1").await;
    for (visibility, expected) in [
        ("shared", vec!["before invite", "while invited", "after join"]),
        ("invited", vec!["while invited", "after join"]),
        ("joined", vec!["after join"]),
        ("world_readable", vec!["before invite", "while invited", "after join"]),
    ] {
        let room = s
            .create_room(
                &alice.access_token,
                json!({ "initial_state": [{ "type": "m.room.history_visibility", "state_key": "", "content": { "history_visibility": visibility } }] }),
            )
            .await;
        let before = s.send_text(&alice.access_token, &room, "before invite").await;
        s.room_post(&alice.access_token, &room, "invite", json!({ "user_id": "@bob:localhost" })).await;
        s.send_text(&alice.access_token, &room, "while invited").await;
        assert_eq!(s.join(&bob.access_token, &room).await.status, 200);
        s.send_text(&alice.access_token, &room, "after join").await;

        assert_eq!(s.message_bodies(&bob.access_token, &room).await, expected, "{visibility}");
        let r = s.get(&format!("/_matrix/client/v3/rooms/{room}/event/{before}"), bob.token()).await;
        let visible = expected.contains(&"before invite");
        assert_eq!(r.status, if visible { 200 } else { 404 }, "{visibility}: /event");
        let r = s.get(&format!("/_matrix/client/v3/rooms/{room}/context/{before}?limit=4"), bob.token()).await;
        assert_eq!(r.status, if visible { 200 } else { 404 }, "{visibility}: /context");

        let r = s.get(&format!("/_matrix/client/v3/rooms/{room}/messages?dir=b"), eve.token()).await;
        if visibility == "world_readable" {
            assert_eq!(r.status, 200, "outsiders read world_readable rooms");
        } else {
            assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "{visibility}: outsiders");
        }
    }
}

fn bodies(chunk: &Value) -> Vec<String> {
    chunk.as_array().unwrap().iter().filter_map(|e| e["content"]["body"].as_str().map(str::to_owned)).collect()
}

#[tokio::test]
async fn messages_paginate_1000_events_both_ways() {
    let s = TestServer::start();
    let alice = s.register("alice", "password1").await;
    let bob = s.register("bob", "password1").await;
    let room = s.create_room(&alice.access_token, json!({ "preset": "public_chat" })).await;
    s.join(&bob.access_token, &room).await;
    for i in 0..1000 {
        let who = if i % 10 == 0 { &bob } else { &alice };
        s.send_text(&who.access_token, &room, &format!("m{i}")).await;
    }

    // Backwards with an odd page size: every message once, newest first, then no `end`.
    let mut seen = Vec::new();
    let mut from: Option<String> = None;
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages < 100, "pagination must end");
        let mut path = format!(
            "/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=37&filter=%7B%22types%22%3A%5B%22m.room.message%22%5D%7D"
        );
        if let Some(f) = &from {
            path.push_str(&format!("&from={f}"));
        }
        let r = s.get(&path, alice.token()).await;
        assert_eq!(r.status, 200);
        let page = bodies(&r.body["chunk"]);
        assert!(page.len() <= 37);
        seen.extend(page);
        match r.body["end"].as_str() {
            Some(end) => from = Some(end.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..1000).rev().map(|i| format!("m{i}")).collect();
    assert_eq!(seen, expected, "no gaps, no duplicates, newest first");

    // Forwards from the start: the same events oldest first.
    let mut forward = Vec::new();
    let mut from = String::from("t0_0");
    for _ in 0..100 {
        let r = s
            .get(&format!("/_matrix/client/v3/rooms/{room}/messages?dir=f&limit=100&from={from}"), alice.token())
            .await;
        forward.extend(bodies(&r.body["chunk"]).into_iter().filter(|b| b.starts_with('m')));
        match r.body["end"].as_str() {
            Some(end) => from = end.to_owned(),
            None => break,
        }
    }
    let oldest_first: Vec<String> = (0..1000).map(|i| format!("m{i}")).collect();
    assert_eq!(forward, oldest_first);

    // Filters: only bob's messages.
    let filter = json!({ "senders": ["@bob:localhost"], "lazy_load_members": true }).to_string();
    let r = s
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=1000&filter={}",
                crate::server::urlencode(&filter)
            ),
            alice.token(),
        )
        .await;
    let bob_msgs = bodies(&r.body["chunk"]);
    assert_eq!(bob_msgs.len(), 100);
    assert!(bob_msgs.iter().all(|b| b.trim_start_matches('m').parse::<u32>().unwrap() % 10 == 0));
    let lazy: HashSet<&str> =
        r.body["state"].as_array().unwrap().iter().map(|e| e["state_key"].as_str().unwrap()).collect();
    assert_eq!(lazy, HashSet::from(["@bob:localhost"]), "lazy-loaded members are the senders");
    let r = s.get(&format!("/_matrix/client/v3/rooms/{room}/messages?dir=b&from=garbage"), alice.token()).await;
    assert_eq!((r.status, r.errcode()), (400, "M_INVALID_PARAM"));
}

#[tokio::test]
async fn redaction_hides_content_everywhere_and_survives_restart() {
    let mut s = TestServer::start();
    let alice = s.register("alice", "password1").await;
    let bob = s.register("bob", "password1").await;
    let room = s.create_room(&alice.access_token, json!({ "preset": "public_chat" })).await;
    s.join(&bob.access_token, &room).await;
    let secret = s.send_text(&bob.access_token, &room, "my password is hunter2").await;
    s.send_text(&alice.access_token, &room, "after").await;
    let r = s
        .put(&format!("/_matrix/client/v3/rooms/{room}/redact/{secret}/rd1"), bob.token(), json!({ "reason": "oops" }))
        .await;
    assert_eq!(r.status, 200);
    let redaction = r.body["event_id"].as_str().unwrap().to_owned();

    for round in 0..2 {
        let r = s.get(&format!("/_matrix/client/v3/rooms/{room}/event/{secret}"), alice.token()).await;
        assert_eq!(r.body["content"], json!({}), "round {round}: /event");
        assert_eq!(r.body["unsigned"]["redacted_because"]["event_id"], json!(redaction));
        assert_eq!(r.body["unsigned"]["redacted_because"]["content"]["reason"], "oops");
        let r = s.get(&format!("/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=10"), alice.token()).await;
        let text = r.body.to_string();
        assert!(!text.contains("hunter2"), "round {round}: /messages");
        let redacted = r.body["chunk"].as_array().unwrap().iter().find(|e| e["event_id"] == json!(secret)).unwrap();
        assert_eq!(redacted["content"], json!({}));
        let redaction_event =
            r.body["chunk"].as_array().unwrap().iter().find(|e| e["event_id"] == json!(redaction)).unwrap();
        assert_eq!(redaction_event["redacts"], json!(secret));
        let r = s.get(&format!("/_matrix/client/v3/rooms/{room}/context/{secret}"), alice.token()).await;
        assert!(!r.body.to_string().contains("hunter2"), "round {round}: /context");
        s.restart();
    }
}
