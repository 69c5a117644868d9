//! `GET /rooms/{roomId}/timestamp_to_event`.

use std::time::Duration;

use serde_json::json;

use crate::server::TestServer;

async fn origin_ts(s: &TestServer, token: &str, room: &str, event: &str) -> u64 {
    let r = s.get(&format!("/_matrix/client/v3/rooms/{room}/event/{event}"), Some(token)).await;
    r.body["origin_server_ts"].as_u64().expect("origin_server_ts")
}

async fn send_spaced(s: &TestServer, token: &str, room: &str, text: &str) -> String {
    tokio::time::sleep(Duration::from_millis(15)).await;
    let id = s.send_text(token, room, text).await;
    tokio::time::sleep(Duration::from_millis(15)).await;
    id
}

#[tokio::test]
async fn timestamp_to_event_finds_the_closest_visible_event() {
    let s = TestServer::start();
    let a = s.register("alice", "password1").await;
    let b = s.register("bob", "password1").await;
    let room = s.create_room(&a.access_token, json!({ "preset": "public_chat" })).await;
    let m1 = send_spaced(&s, &a.access_token, &room, "one").await;
    let m2 = send_spaced(&s, &a.access_token, &room, "two").await;
    let m3 = send_spaced(&s, &a.access_token, &room, "three").await;
    let (t1, t2, t3) = (
        origin_ts(&s, &a.access_token, &room, &m1).await,
        origin_ts(&s, &a.access_token, &room, &m2).await,
        origin_ts(&s, &a.access_token, &room, &m3).await,
    );
    assert!(t1 < t2 && t2 < t3, "{t1} {t2} {t3}");
    let find = |ts: u64, dir: &str| format!("/_matrix/client/v1/rooms/{room}/timestamp_to_event?ts={ts}&dir={dir}");

    for (ts, dir, want, at) in [
        (t2, "f", &m2, t2),
        (t2, "b", &m2, t2),
        (t2 + 1, "f", &m3, t3),
        (t2 + 1, "b", &m2, t2),
        (t1 - 1, "f", &m1, t1),
        (u64::from(u32::MAX) * 1000, "b", &m3, t3),
    ] {
        let r = s.get(&find(ts, dir), a.token()).await;
        assert_eq!((r.status, &r.body), (200, &json!({ "event_id": want, "origin_server_ts": at })), "{ts} {dir}");
    }
    let r = s.get(&find(0, "f"), a.token()).await;
    let first = r.body["event_id"].as_str().unwrap().to_owned();
    let r = s.get(&format!("/_matrix/client/v3/rooms/{room}/event/{first}"), a.token()).await;
    assert_eq!(r.body["type"], "m.room.create", "the first event of the room");
    let unstable = format!("/_matrix/client/unstable/org.matrix.msc3030/rooms/{room}/timestamp_to_event?ts={t3}&dir=b");
    assert_eq!(s.get(&unstable, a.token()).await.body["event_id"], json!(m3));

    for (path, code) in [(find(0, "b"), "M_NOT_FOUND"), (find(t3 + 1, "f"), "M_NOT_FOUND")] {
        let r = s.get(&path, a.token()).await;
        assert_eq!((r.status, r.errcode()), (404, code), "{path}");
    }
    let base = format!("/_matrix/client/v1/rooms/{room}/timestamp_to_event");
    for (query, status, code) in [
        ("?ts=1", 400, "M_MISSING_PARAM"),
        ("?dir=f", 400, "M_MISSING_PARAM"),
        ("?ts=1&dir=x", 400, "M_INVALID_PARAM"),
        ("?ts=abc&dir=f", 400, "M_INVALID_PARAM"),
    ] {
        let r = s.get(&format!("{base}{query}"), a.token()).await;
        assert_eq!((r.status, r.errcode()), (status, code), "{query}");
    }
    let r = s.get(&find(t2, "f"), b.token()).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "never in the room");
    let r = s.get("/_matrix/client/v1/rooms/!nowhere:localhost/timestamp_to_event?ts=1&dir=f", a.token()).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "an unknown room reads like one never joined");
}

#[tokio::test]
async fn timestamp_to_event_respects_history_visibility() {
    let s = TestServer::start();
    let a = s.register("alice", "password1").await;
    let b = s.register("bob", "password1").await;
    let room = s.create_room(&a.access_token, json!({ "preset": "public_chat" })).await;
    let early = send_spaced(&s, &a.access_token, &room, "shared history").await;
    let r = s
        .set_state(&a.access_token, &room, "m.room.history_visibility", "", json!({ "history_visibility": "joined" }))
        .await;
    assert_eq!(r.status, 200);
    let hv = r.body["event_id"].as_str().unwrap().to_owned();
    let before = send_spaced(&s, &a.access_token, &room, "before bob").await;
    assert_eq!(s.join(&b.access_token, &room).await.status, 200);
    let after = send_spaced(&s, &a.access_token, &room, "after bob").await;
    let t_before = origin_ts(&s, &a.access_token, &room, &before).await;
    let find = |ts: u64, dir: &str| format!("/_matrix/client/v1/rooms/{room}/timestamp_to_event?ts={ts}&dir={dir}");

    assert_eq!(s.get(&find(t_before, "b"), a.token()).await.body["event_id"], json!(before));
    let r = s.get(&find(t_before, "b"), b.token()).await;
    let found = r.body["event_id"].as_str().unwrap().to_owned();
    assert!(found == early || found == hv, "bob skips the hidden message: {found}");
    let r = s.get(&find(t_before, "f"), b.token()).await;
    let found = r.body["event_id"].as_str().unwrap().to_owned();
    let r = s.get(&format!("/_matrix/client/v3/rooms/{room}/event/{found}"), b.token()).await;
    assert_eq!(
        (r.body["type"].clone(), r.body["state_key"].clone()),
        (json!("m.room.member"), json!(b.user_id)),
        "his join"
    );
    let t_after = origin_ts(&s, &a.access_token, &room, &after).await;
    assert_eq!(s.get(&find(t_after, "b"), b.token()).await.body["event_id"], json!(after));
}
