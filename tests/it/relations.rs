//! Edits, reactions, references and threads: `/relations`, bundled aggregations, `/threads`.

use serde_json::{Value, json};

use crate::server::TestServer;

async fn send(s: &TestServer, token: &str, room: &str, kind: &str, txn: &str, content: Value) -> String {
    let r = s.put(&format!("/_matrix/client/v3/rooms/{room}/send/{kind}/{txn}"), Some(token), content).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["event_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn edits_reactions_references_and_threads_aggregate() {
    let s = TestServer::start();
    let alice = s.register("alice", "password1").await;
    let bob = s.register("bob", "password1").await;
    let room = s.create_room(&alice.access_token, json!({ "preset": "public_chat" })).await;
    s.join(&bob.access_token, &room).await;
    let (a, b) = (alice.access_token.as_str(), bob.access_token.as_str());

    let root = s.send_text(a, &room, "original").await;
    let edit = |n: u32| {
        json!({ "msgtype": "m.text", "body": format!("* edit {n}"), "m.new_content": { "msgtype": "m.text", "body": format!("edit {n}") },
                "m.relates_to": { "rel_type": "m.replace", "event_id": root } })
    };
    send(&s, a, &room, "m.room.message", "e1", edit(1)).await;
    let latest_edit = send(&s, a, &room, "m.room.message", "e2", edit(2)).await;
    send(&s, b, &room, "m.room.message", "evil", edit(666)).await; // not the sender: ignored
    send(
        &s,
        b,
        &room,
        "m.reaction",
        "r1",
        json!({ "m.relates_to": { "rel_type": "m.annotation", "event_id": root, "key": "👍" } }),
    )
    .await;
    let reference = send(
        &s,
        b,
        &room,
        "m.room.message",
        "ref",
        json!({ "body": "see above", "m.relates_to": { "rel_type": "m.reference", "event_id": root } }),
    )
    .await;
    let t1 = send(
        &s,
        b,
        &room,
        "m.room.message",
        "t1",
        json!({ "body": "thread 1", "m.relates_to": { "rel_type": "m.thread", "event_id": root } }),
    )
    .await;
    let t2 = send(
        &s,
        a,
        &room,
        "m.room.message",
        "t2",
        json!({ "body": "thread 2", "m.relates_to": { "rel_type": "m.thread", "event_id": root } }),
    )
    .await;

    let r = s.get(&format!("/_matrix/client/v3/rooms/{room}/event/{root}"), Some(a)).await;
    let rel = &r.body["unsigned"]["m.relations"];
    assert_eq!(rel["m.replace"]["event_id"], json!(latest_edit), "the latest edit by the sender");
    assert_eq!(rel["m.replace"]["content"]["m.new_content"]["body"], "edit 2");
    assert_eq!(r.body["content"]["body"], "original", "content is not replaced (spec v1.7+)");
    assert_eq!(rel["m.thread"]["count"], json!(2));
    assert_eq!(rel["m.thread"]["latest_event"]["event_id"], json!(t2));
    assert_eq!(rel["m.thread"]["current_user_participated"], json!(true));
    assert_eq!(rel["m.reference"]["chunk"], json!([{ "event_id": reference }]));
    assert_eq!(r.body["unsigned"]["membership"], "join");

    // /relations: all, by type, by type and event type; newest first; paginated.
    let r = s.get(&format!("/_matrix/client/v1/rooms/{room}/relations/{root}"), Some(a)).await;
    assert_eq!(r.body["chunk"].as_array().unwrap().len(), 7);
    let r = s.get(&format!("/_matrix/client/v1/rooms/{room}/relations/{root}/m.thread"), Some(a)).await;
    let ids: Vec<&str> = r.body["chunk"].as_array().unwrap().iter().map(|e| e["event_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [t2.as_str(), t1.as_str()]);
    let r = s.get(&format!("/_matrix/client/v1/rooms/{room}/relations/{root}/m.annotation/m.reaction"), Some(a)).await;
    assert_eq!(r.body["chunk"][0]["content"]["m.relates_to"]["key"], "👍");
    let r = s.get(&format!("/_matrix/client/v1/rooms/{room}/relations/{root}?limit=3&dir=f"), Some(a)).await;
    assert_eq!(r.body["chunk"].as_array().unwrap().len(), 3);
    let next = r.body["next_batch"].as_str().unwrap().to_owned();
    let r =
        s.get(&format!("/_matrix/client/v1/rooms/{room}/relations/{root}?limit=10&dir=f&from={next}"), Some(a)).await;
    assert_eq!(r.body["chunk"].as_array().unwrap().len(), 4, "the rest, no overlap");
    assert!(r.body.get("next_batch").is_none());

    // A reply to a thread reply, found with recurse.
    let reply = send(
        &s,
        b,
        &room,
        "m.room.message",
        "deep",
        json!({ "body": "quote", "m.relates_to": { "rel_type": "m.reference", "event_id": t1 } }),
    )
    .await;
    let r = s.get(&format!("/_matrix/client/v1/rooms/{room}/relations/{root}?recurse=true"), Some(a)).await;
    assert!(r.body["chunk"].as_array().unwrap().iter().any(|e| e["event_id"] == json!(reply)));
    assert_eq!(r.body["recursion_depth"], json!(2));

    // /threads lists the root, by latest activity, and "participated" filters.
    let r = s.get(&format!("/_matrix/client/v1/rooms/{room}/threads"), Some(b)).await;
    assert_eq!(r.body["chunk"][0]["event_id"], json!(root));
    assert_eq!(r.body["chunk"][0]["unsigned"]["m.relations"]["m.thread"]["count"], json!(2));
    let carol = s.register("carol", "password1").await;
    s.join(&carol.access_token, &room).await;
    let r = s.get(&format!("/_matrix/client/v1/rooms/{room}/threads?include=participated"), carol.token()).await;
    assert_eq!(r.body["chunk"], json!([]));

    let r = s.get(&format!("/_matrix/client/v1/rooms/{room}/relations/$missing"), Some(a)).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));
    let eve = s.register("eve", "password1").await;
    let private = s.create_room(a, json!({})).await;
    let secret = s.send_text(a, &private, "secret").await;
    let r = s.get(&format!("/_matrix/client/v1/rooms/{private}/relations/{secret}"), eve.token()).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"));
}
