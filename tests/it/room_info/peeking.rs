//! Room previews: `initialSync` and `/events?room_id=` for rooms one is not joined to.

use std::time::Duration;

use serde_json::json;

use crate::server::TestServer;

#[tokio::test]
async fn a_world_readable_room_can_be_peeked_into() {
    let s = TestServer::start();
    let alice = s.register("alice", "password1").await;
    let bob = s.register("bob", "password1").await;
    let room = s.create_room(&alice.access_token, json!({ "preset": "public_chat", "name": "Open" })).await;
    let r = s
        .set_state(
            &alice.access_token,
            &room,
            "m.room.history_visibility",
            "",
            json!({ "history_visibility": "world_readable" }),
        )
        .await;
    assert_eq!(r.status, 200);
    for text in ["one", "two", "three"] {
        s.send_text(&alice.access_token, &room, text).await;
    }

    let r = s.get(&format!("/_matrix/client/v3/rooms/{room}/initialSync"), bob.token()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["room_id"], room.as_str());
    let bodies: Vec<&str> =
        r.body["messages"]["chunk"].as_array().unwrap().iter().filter_map(|e| e["content"]["body"].as_str()).collect();
    assert_eq!(bodies, ["one", "two", "three"], "oldest first");
    let name = r.body["state"].as_array().unwrap().iter().find(|e| e["type"] == "m.room.name").unwrap();
    assert_eq!(name["content"]["name"], "Open");
    assert_eq!(r.body["visibility"], "private");
    assert!(r.body.get("membership").is_none(), "bob never joined");
    // `start` pages further back with /messages, which shows bob nothing from before the room
    // became world-readable.
    let start = r.body["messages"]["start"].as_str().unwrap();
    let back =
        s.get(&format!("/_matrix/client/v3/rooms/{room}/messages?dir=b&from={start}&limit=50"), bob.token()).await;
    assert_eq!(back.status, 200, "{:?}", back.body);
    let kinds: Vec<&str> = back.body["chunk"].as_array().unwrap().iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(!kinds.contains(&"m.room.create") && !kinds.contains(&"m.room.message"), "{kinds:?}");

    // /events: nothing new yet, then a message sent while bob waits.
    let r = s.get(&format!("/_matrix/client/v3/events?room_id={room}&timeout=0"), bob.token()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["chunk"], json!([]));
    let from = r.body["end"].as_str().unwrap().to_owned();
    let path = format!("/_matrix/client/v3/events?room_id={room}&from={from}&timeout=20000");
    let wait = s.get(&path, bob.token());
    let send = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        s.send_text(&alice.access_token, &room, "four").await
    };
    let (r, event_id) = tokio::join!(wait, send);
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["chunk"][0]["event_id"], event_id.as_str());
    assert_eq!(r.body["chunk"][0]["content"]["body"], "four");
    assert_eq!(r.body["start"], from.as_str());
    let end = r.body["end"].as_str().unwrap().to_owned();
    assert_ne!(end, from);
    let r = s.get(&format!("/_matrix/client/v3/events?room_id={room}&from={end}&timeout=0"), bob.token()).await;
    assert_eq!(r.body["chunk"], json!([]), "nothing after the end token");

    let r = s.get(&format!("/_matrix/client/v3/events?room_id={room}&from=bogus&timeout=0"), bob.token()).await;
    assert_eq!((r.status, r.errcode()), (400, "M_INVALID_PARAM"));
}

#[tokio::test]
async fn a_private_room_cannot_be_peeked_into() {
    let s = TestServer::start();
    let alice = s.register("alice", "password1").await;
    let bob = s.register("bob", "password1").await;
    let room = s.create_room(&alice.access_token, json!({ "preset": "private_chat" })).await;
    s.send_text(&alice.access_token, &room, "secret").await;
    let r = s.get(&format!("/_matrix/client/v3/rooms/{room}/initialSync"), bob.token()).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"));
    let r = s.get(&format!("/_matrix/client/v3/events?room_id={room}&timeout=0"), bob.token()).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"));
    // The creator sees their own room, with their membership.
    let r = s.get(&format!("/_matrix/client/v3/rooms/{room}/initialSync"), alice.token()).await;
    assert_eq!(r.body["membership"], "join");
    let last = r.body["messages"]["chunk"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["content"]["body"], "secret");
}
