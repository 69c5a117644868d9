//! Tags, read markers and content reports.

use serde_json::json;
use trellis::config::Config;
use trellis::rooms::info::reports;
use trellis::services::Services;

use crate::server::TestServer;

fn tags_path(user: &str, room: &str) -> String {
    format!("/_matrix/client/v3/user/{user}/rooms/{room}/tags")
}

#[tokio::test]
async fn tags_are_room_account_data_of_their_owner() {
    let s = TestServer::start();
    let a = s.register("alice", "password1").await;
    let b = s.register("bob", "password1").await;
    let room = s.create_room(&a.access_token, json!({})).await;
    let tags = tags_path(&a.user_id, &room);

    let r = s.get(&tags, a.token()).await;
    assert_eq!((r.status, r.body.clone()), (200, json!({ "tags": {} })));
    assert_eq!(s.put(&format!("{tags}/m.favourite"), a.token(), json!({ "order": 0.25 })).await.status, 200);
    assert_eq!(s.put(&format!("{tags}/u.work"), a.token(), json!({})).await.status, 200);
    let r = s.get(&tags, a.token()).await;
    assert_eq!(r.body, json!({ "tags": { "m.favourite": { "order": 0.25 }, "u.work": {} } }));

    // Stored as the room account data `m.tag`, where /sync will find it.
    let ad = format!("/_matrix/client/v3/user/{}/rooms/{room}/account_data/m.tag", a.user_id);
    let r = s.get(&ad, a.token()).await;
    assert_eq!(r.body, json!({ "tags": { "m.favourite": { "order": 0.25 }, "u.work": {} } }));

    assert_eq!(s.put(&format!("{tags}/m.favourite"), a.token(), json!({ "order": 0.5 })).await.status, 200);
    assert_eq!(s.delete(&format!("{tags}/u.work"), a.token(), json!({})).await.status, 200);
    assert_eq!(s.delete(&format!("{tags}/u.absent"), a.token(), json!({})).await.status, 200, "idempotent");
    let r = s.get(&tags, a.token()).await;
    assert_eq!(r.body, json!({ "tags": { "m.favourite": { "order": 0.5 } } }));
    let other_room = s.create_room(&a.access_token, json!({})).await;
    assert_eq!(s.get(&tags_path(&a.user_id, &other_room), a.token()).await.body, json!({ "tags": {} }));

    // Tags written through the account data API are read back; malformed parts are skipped.
    let weird = json!({ "tags": { "u.ok": { "order": 1 }, "u.bad": "x" } });
    assert_eq!(s.put(&ad, a.token(), weird).await.status, 200);
    assert_eq!(s.get(&tags, a.token()).await.body, json!({ "tags": { "u.ok": { "order": 1 } } }));
    assert_eq!(s.put(&ad, a.token(), json!({ "tags": [] })).await.status, 200);
    assert_eq!(s.get(&tags, a.token()).await.body, json!({ "tags": {} }));

    // Only the owner.
    for r in [
        s.get(&tags, b.token()).await,
        s.put(&format!("{tags}/u.x"), b.token(), json!({})).await,
        s.delete(&format!("{tags}/u.ok"), b.token(), json!({})).await,
    ] {
        assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "{:?}", r.body);
    }
    let r = s.get(&tags, None).await;
    assert_eq!((r.status, r.errcode()), (401, "M_MISSING_TOKEN"));
    // Bad input.
    let r = s.put(&format!("{tags}/u.x"), a.token(), json!({ "order": "high" })).await;
    assert_eq!((r.status, r.errcode()), (400, "M_BAD_JSON"));
    let r = s.raw(reqwest::Method::PUT, &format!("{tags}/u.x"), a.token(), b"{not json").await;
    assert_eq!((r.status, r.errcode()), (400, "M_NOT_JSON"));
    let r = s.get(&tags_path(&a.user_id, "not-a-room"), a.token()).await;
    assert_eq!((r.status, r.errcode()), (400, "M_INVALID_PARAM"));
    assert_eq!(s.get(&tags, a.token()).await.body, json!({ "tags": {} }), "nothing changed");
}

#[tokio::test]
async fn read_markers_set_fully_read() {
    let s = TestServer::start();
    let a = s.register("alice", "password1").await;
    let b = s.register("bob", "password1").await;
    let room = s.create_room(&a.access_token, json!({})).await;
    let other = s.create_room(&a.access_token, json!({})).await;
    let m1 = s.send_text(&a.access_token, &room, "one").await;
    let m2 = s.send_text(&a.access_token, &room, "two").await;
    let elsewhere = s.send_text(&a.access_token, &other, "elsewhere").await;
    let fully_read = format!("/_matrix/client/v3/user/{}/rooms/{room}/account_data/m.fully_read", a.user_id);

    assert_eq!(s.get(&fully_read, a.token()).await.errcode(), "M_NOT_FOUND");
    let r = s.room_post(&a.access_token, &room, "read_markers", json!({ "m.fully_read": m1, "m.read": m1 })).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(s.get(&fully_read, a.token()).await.body, json!({ "event_id": m1 }));
    let r = s.room_post(&a.access_token, &room, "read_markers", json!({ "m.fully_read": m2 })).await;
    assert_eq!(r.status, 200);
    assert_eq!(s.get(&fully_read, a.token()).await.body, json!({ "event_id": m2 }));
    let r = s.room_post(&a.access_token, &room, "read_markers", json!({ "m.read.private": m1 })).await;
    assert_eq!(r.status, 200, "receipts alone are accepted");
    assert_eq!(s.get(&fully_read, a.token()).await.body, json!({ "event_id": m2 }), "marker unchanged");

    for body in [
        json!({ "m.fully_read": "$unknown" }),
        json!({ "m.fully_read": elsewhere }),
        json!({ "m.fully_read": m1, "m.read": "$unknown" }),
    ] {
        let r = s.room_post(&a.access_token, &room, "read_markers", body.clone()).await;
        assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"), "{body}");
    }
    assert_eq!(s.get(&fully_read, a.token()).await.body, json!({ "event_id": m2 }), "failed calls change nothing");
    let r = s.room_post(&b.access_token, &room, "read_markers", json!({ "m.fully_read": m1 })).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "not joined");
    let r = s.room_post(&a.access_token, &room, "read_markers", json!({ "m.fully_read": 5 })).await;
    assert_eq!((r.status, r.errcode()), (400, "M_BAD_JSON"));
    let r = s.room_post(&a.access_token, &room, "read_markers", json!({ "m.fully_read": "no-sigil" })).await;
    assert_eq!((r.status, r.errcode()), (400, "M_BAD_JSON"));
    let r = s.room_post(&a.access_token, "!nowhere:localhost", "read_markers", json!({ "m.fully_read": m1 })).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "an unknown room is one the user is not in");
}

#[tokio::test]
async fn reports_are_stored_for_operators() {
    let mut s = TestServer::start();
    let a = s.register("alice", "password1").await;
    let b = s.register("bob", "password1").await;
    let c = s.register("carol", "password1").await;
    let room = s.create_room(&a.access_token, json!({ "invite": ["@bob:localhost"] })).await;
    assert_eq!(s.join(&b.access_token, &room).await.status, 200);
    let other = s.create_room(&a.access_token, json!({})).await;
    let m1 = s.send_text(&a.access_token, &room, "offensive").await;
    let elsewhere = s.send_text(&a.access_token, &other, "elsewhere").await;
    let report = |room: &str, event: &str| format!("/_matrix/client/v3/rooms/{room}/report/{event}");

    let r = s.post(&report(&room, &m1), b.token(), json!({ "reason": "spam" })).await;
    assert_eq!((r.status, r.body.clone()), (200, json!({})));
    let r = s.post(&report(&room, &m1), b.token(), json!({})).await;
    assert_eq!(r.status, 200, "the reason is optional");
    let r = s.room_post(&b.access_token, &room, "report", json!({ "reason": "bad room" })).await;
    assert_eq!((r.status, r.body.clone()), (200, json!({})));
    let r = s.room_post(&c.access_token, &room, "report", json!({ "reason": "heard of it" })).await;
    assert_eq!(r.status, 200, "reporting a room needs no membership");

    for (who, path) in [
        (&c, report(&room, &m1)),                // not joined
        (&b, report(&room, "$unknown")),         // unknown event
        (&b, report(&room, &elsewhere)),         // event of another room
        (&b, report("!nowhere:localhost", &m1)), // unknown room
    ] {
        let r = s.post(&path, who.token(), json!({ "reason": "x" })).await;
        assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"), "{path}");
    }
    let r = s.room_post(&c.access_token, "!nowhere:localhost", "report", json!({ "reason": "x" })).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));
    let r = s.post(&report(&room, &m1), b.token(), json!({ "reason": 5 })).await;
    assert_eq!((r.status, r.errcode()), (400, "M_BAD_JSON"));
    assert_eq!(s.room_post(&b.access_token, &room, "leave", json!({})).await.status, 200);
    let r = s.post(&report(&room, &m1), b.token(), json!({ "reason": "after leaving" })).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"), "must be joined");
    s.stop();

    let mut config = Config::default();
    config.database.path = s.data_dir().join("db");
    let services = Services::new(config).map_err(|e| e.to_string()).unwrap();
    let room_id = ruma::RoomId::parse(&room).unwrap();
    let mut stored = reports::list(&services, &room_id).unwrap();
    for r in &mut stored {
        assert!(r["ts"].as_u64().is_some_and(|ts| ts > 1_600_000_000_000), "{r}");
        r.as_object_mut().unwrap().remove("ts");
    }
    assert_eq!(
        stored,
        [
            json!({ "reporter": b.user_id, "room_id": room, "event_id": m1, "reason": "spam" }),
            json!({ "reporter": b.user_id, "room_id": room, "event_id": m1, "reason": null }),
            json!({ "reporter": b.user_id, "room_id": room, "reason": "bad room" }),
            json!({ "reporter": c.user_id, "room_id": room, "reason": "heard of it" }),
        ]
    );
    assert!(reports::list(&services, &ruma::RoomId::parse(&other).unwrap()).unwrap().is_empty());
}
