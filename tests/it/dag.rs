//! Walk every room's DAG on disk and check each event: prev and auth events exist, depth is
//! max(prev depth) + 1, hashes and signatures verify with the server's key, the event ID is
//! the reference hash (room versions 1 and 2: the event's own `$id:server`), and the auth rules
//! pass against the state before it.

use serde_json::json;
use trellis::config::Config;
use trellis::rooms::{self, verify};
use trellis::services::Services;
use trellis::storage::catalog::{ROOM_TIMELINE, ROOMS};
use trellis::storage::codec::Counter;

use crate::server::TestServer;

#[tokio::test]
async fn every_event_of_every_room_verifies() {
    let mut s = TestServer::start();
    let alice = s.register("alice", "password1").await;
    let bob = s.register("bob", "password1").await;
    let carol = s.register("carol", "password1").await;
    for version in ["1", "2", "10", "11", "12"] {
        let room = s
            .create_room(&alice.access_token, json!({ "room_version": version, "preset": "public_chat", "name": "DAG", "invite": ["@carol:localhost"] }))
            .await;
        assert_eq!(s.join(&bob.access_token, &room).await.status, 200);
        assert_eq!(s.join(&carol.access_token, &room).await.status, 200);
        let msg = s.send_text(&bob.access_token, &room, "hello").await;
        assert_eq!(
            s.set_state(&alice.access_token, &room, "m.room.topic", "", json!({ "topic": "t" })).await.status,
            200
        );
        let r = s.put(&format!("/_matrix/client/v3/rooms/{room}/redact/{msg}/r"), alice.token(), json!({})).await;
        assert_eq!(r.status, 200, "v{version} redact: {:?}", r.body);
        let r = s.room_post(&alice.access_token, &room, "kick", json!({ "user_id": "@carol:localhost" })).await;
        assert_eq!(r.status, 200, "v{version} kick: {:?}", r.body);
        let r = s.room_post(&alice.access_token, &room, "ban", json!({ "user_id": "@bob:localhost" })).await;
        assert_eq!(r.status, 200, "v{version} ban: {:?}", r.body);
        s.send_text(&alice.access_token, &room, "bye").await;
    }
    s.stop();

    let mut config = Config::default();
    config.database.path = s.data_dir().join("db");
    let services = Services::new(config).map_err(|e| e.to_string()).unwrap();
    let keys = verify::local_keys(&services);
    let mut checked = 0;
    let all_rooms = services.db.scan_all(ROOMS).unwrap();
    assert_eq!(all_rooms.len(), 5);
    for (room_id, record) in all_rooms {
        let mut previous_depth = 0;
        for ((_, _), Counter(sid)) in services.db.scan_prefix(ROOM_TIMELINE, &record.shortroomid).unwrap() {
            let ev = rooms::load_by_short(&services, sid).unwrap().expect("stored event");
            verify::verify_stored(&services, &ev, &keys).unwrap_or_else(|e| panic!("{room_id}: {e}"));
            assert!(ev.pdu.depth > previous_depth, "a local room never forks: depth grows along the timeline");
            previous_depth = ev.pdu.depth;
            checked += 1;
        }
    }
    // create, join, power levels, join rules, history visibility, guest access, name, invite,
    // 2 joins, message, topic, redaction, kick, ban, message — per room.
    assert_eq!(checked, 5 * 16, "every event was walked");
}

/// Concurrent senders never fork a local room: appends are serialised per room.
#[tokio::test]
async fn concurrent_senders_keep_the_room_linear() {
    let mut s = TestServer::start();
    let mut sessions = Vec::new();
    for i in 0..4 {
        sessions.push(s.register(&format!("user{i}"), "password1").await);
    }
    let room = s.create_room(&sessions[0].access_token, json!({ "preset": "public_chat" })).await;
    for sess in &sessions[1..] {
        s.join(&sess.access_token, &room).await;
    }
    let http = crate::server::client();
    let mut tasks = Vec::new();
    for (n, sess) in sessions.iter().enumerate() {
        for i in 0..25 {
            let url = format!("{}/_matrix/client/v3/rooms/{room}/send/m.room.message/c{n}_{i}", s.url);
            let req = http
                .put(url)
                .bearer_auth(&sess.access_token)
                .json(&json!({ "msgtype": "m.text", "body": format!("{n}-{i}") }));
            tasks.push(tokio::spawn(crate::server::send(req)));
        }
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().status, 200);
    }
    s.stop();

    let mut config = Config::default();
    config.database.path = s.data_dir().join("db");
    let services = Services::new(config).map_err(|e| e.to_string()).unwrap();
    let room_id = ruma::RoomId::parse(&room).unwrap();
    let record = rooms::room(&services, &room_id).unwrap();
    assert_eq!(record.forward_extremities.len(), 1, "one head");
    let mut depth = 0;
    let mut messages = 0;
    for (_, Counter(sid)) in services.db.scan_prefix(ROOM_TIMELINE, &record.shortroomid).unwrap() {
        let ev = rooms::load_by_short(&services, sid).unwrap().unwrap();
        assert_eq!(ev.pdu.depth, depth + 1, "each event follows the previous one");
        assert!(ev.pdu.prev_events.len() <= 1);
        depth = ev.pdu.depth;
        messages += usize::from(ev.pdu.kind.to_string() == "m.room.message");
    }
    assert_eq!(messages, 100);
}
