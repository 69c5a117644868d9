//! Back-filling between two real Trellis servers, through the client API only: history from
//! before a remote join is fetched from the room's server when `/messages` runs out, in order,
//! down to the room's creation, and never shows up in `/sync` as new events. Needs joins over
//! federation (`POST /join/#alias:B` from A), which another branch adds.

use serde_json::{Value, json};

use super::{Fed, Pki};

#[tokio::test]
async fn history_before_a_remote_join_is_backfilled() {
    let pki = Pki::new();
    let a = Fed::start(&pki);
    let b = Fed::start(&pki);
    let bob = b.server.register("bob", "password-bob").await;
    let room = b
        .server
        .create_room(bob.token().unwrap(), json!({ "preset": "public_chat", "room_alias_name": "history" }))
        .await;
    for i in 1..=30 {
        b.server.send_text(bob.token().unwrap(), &room, &format!("message {i}")).await;
    }

    let alice = a.server.register("alice", "password-alice").await;
    let token = alice.token().unwrap();
    let r = a.server.join(token, &format!("#history:{}", b.name)).await;
    assert_eq!(r.status, 200, "join: {:?}", r.body);
    assert_eq!(r.body["room_id"], room.as_str());

    // The join shows in /sync; the history before it does not.
    let r = a.server.get("/_matrix/client/v3/sync?timeout=0", Some(token)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let joined = &r.body["rooms"]["join"][&room];
    let next_batch = r.body["next_batch"].as_str().unwrap().to_owned();
    let timeline = joined["timeline"]["events"].as_array().unwrap();
    assert!(timeline.iter().all(|e| e["type"] != "m.room.message"), "{timeline:?}");
    let mut from = joined["timeline"]["prev_batch"].as_str().expect("prev_batch").to_owned();

    // Paging backwards from the join reaches every message, newest first, then the creation.
    let mut events: Vec<Value> = Vec::new();
    for _ in 0..50 {
        let path = format!("/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=10&from={from}");
        let r = a.server.get(&path, Some(token)).await;
        assert_eq!(r.status, 200, "messages: {:?}", r.body);
        events.extend(r.body["chunk"].as_array().unwrap().iter().cloned());
        match r.body["end"].as_str() {
            Some(end) => from = end.to_owned(),
            None => break,
        }
    }
    let bodies: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .map(|e| e["content"]["body"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (1..=30).rev().map(|i| format!("message {i}")).collect();
    assert_eq!(bodies, expected);
    assert_eq!(events.last().unwrap()["type"], "m.room.create", "{:?}", events.last());

    // Back-filled events are history: an incremental /sync has no timeline events for them.
    let r = a.server.get(&format!("/_matrix/client/v3/sync?timeout=0&since={next_batch}"), Some(token)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let timeline = &r.body["rooms"]["join"][&room]["timeline"]["events"];
    assert!(timeline.as_array().is_none_or(|t| t.is_empty()), "{timeline:?}");
}
