//! Typing, receipts, read markers, presence and TURN over HTTP: what each endpoint accepts and
//! the spec's errors. (What `/sync` delivers from them is tested with the services themselves.)

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha1::Sha1;

use crate::server::{Session, TestServer, urlencode};

/// Alice's room with Bob in it; Carol is outside.
async fn setup(s: &TestServer) -> (Session, Session, Session, String) {
    let alice = s.register("alice", "password1").await;
    let bob = s.register("bob", "password1").await;
    let carol = s.register("carol", "password1").await;
    let room = s.create_room(&alice.access_token, json!({ "preset": "public_chat" })).await;
    assert_eq!(s.join(&bob.access_token, &room).await.status, 200);
    (alice, bob, carol, room)
}

#[tokio::test]
async fn typing_is_for_yourself_in_rooms_you_are_in() {
    let s = TestServer::start();
    let (alice, bob, carol, room) = setup(&s).await;
    let path = |who: &Session| format!("/_matrix/client/v3/rooms/{room}/typing/{}", urlencode(&who.user_id));

    let r = s.put(&path(&alice), alice.token(), json!({ "typing": true, "timeout": 30000 })).await;
    assert_eq!((r.status, r.body.clone()), (200, json!({})));
    let r = s.put(&path(&alice), alice.token(), json!({ "typing": true, "timeout": 999_999_999 })).await;
    assert_eq!(r.status, 200, "long timeouts are capped, not refused");
    let r = s.put(&path(&alice), alice.token(), json!({ "typing": false })).await;
    assert_eq!(r.status, 200);
    let r = s.put(&path(&alice), alice.token(), json!({ "typing": false })).await;
    assert_eq!(r.status, 200, "stopping again is fine");

    let r = s.put(&path(&bob), alice.token(), json!({ "typing": true, "timeout": 1000 })).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "someone else's typing");
    let r = s.put(&path(&carol), carol.token(), json!({ "typing": true, "timeout": 1000 })).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "not in the room");
    let r = s
        .put(
            &format!("/_matrix/client/v3/rooms/!nowhere:localhost/typing/{}", urlencode(&alice.user_id)),
            alice.token(),
            json!({ "typing": true, "timeout": 1000 }),
        )
        .await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "an unknown room is one the user is not in");
    let r = s.put(&path(&alice), alice.token(), json!({ "typing": true })).await;
    assert_eq!(r.status, 400, "typing needs a timeout: {:?}", r.body);
    let r = s.put(&path(&alice), alice.token(), json!({ "timeout": 1000 })).await;
    assert_eq!(r.status, 400, "typing is required: {:?}", r.body);
    let r = s.put(&path(&alice), None, json!({ "typing": false })).await;
    assert_eq!((r.status, r.errcode()), (401, "M_MISSING_TOKEN"));
}

#[tokio::test]
async fn receipts_and_read_markers() {
    let s = TestServer::start();
    let (alice, bob, carol, room) = setup(&s).await;
    let m1 = s.send_text(&alice.access_token, &room, "one").await;
    let root = s.send_text(&alice.access_token, &room, "root").await;
    let reply = s
        .put(
            &format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/reply1"),
            alice.token(),
            json!({ "body": "reply", "m.relates_to": { "rel_type": "m.thread", "event_id": root } }),
        )
        .await
        .body["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let receipt = |who: &Session, kind: &str, event: &str, body: Value| {
        let path = format!("/_matrix/client/v3/rooms/{room}/receipt/{kind}/{}", urlencode(event));
        let token = who.access_token.clone();
        let s = &s;
        async move { s.post(&path, Some(&token), body).await }
    };

    for (kind, event, body) in [
        ("m.read", &m1, json!({})),
        ("m.read.private", &m1, json!({})),
        ("m.read", &root, json!({ "thread_id": "main" })),
        ("m.read", &reply, json!({ "thread_id": root })),
        ("m.read.private", &root, json!({ "thread_id": root })),
    ] {
        let r = receipt(&bob, kind, event, body.clone()).await;
        assert_eq!((r.status, r.body.clone()), (200, json!({})), "{kind} {body}");
    }
    let r = receipt(&bob, "m.fully_read", &root, json!({})).await;
    assert_eq!(r.status, 200);
    let marker = format!("/_matrix/client/v3/user/{}/rooms/{room}/account_data/m.fully_read", urlencode(&bob.user_id));
    assert_eq!(s.get(&marker, bob.token()).await.body, json!({ "event_id": root }));

    let bad = [
        (&bob, "m.read", m1.as_str(), json!({ "thread_id": "" }), 400, "M_INVALID_PARAM"),
        (&bob, "m.read", m1.as_str(), json!({ "thread_id": "sideways" }), 400, "M_INVALID_PARAM"),
        (&bob, "m.read", reply.as_str(), json!({ "thread_id": "main" }), 400, "M_INVALID_PARAM"),
        (&bob, "m.read", m1.as_str(), json!({ "thread_id": root }), 400, "M_INVALID_PARAM"),
        (&bob, "m.fully_read", m1.as_str(), json!({ "thread_id": "main" }), 400, "M_INVALID_PARAM"),
        (&bob, "m.something", m1.as_str(), json!({}), 400, "M_INVALID_PARAM"),
        (&bob, "m.read", "$unknown", json!({}), 404, "M_NOT_FOUND"),
        (&carol, "m.read", m1.as_str(), json!({}), 403, "M_FORBIDDEN"),
    ];
    for (who, kind, event, body, status, errcode) in bad {
        let r = receipt(who, kind, event, body.clone()).await;
        assert_eq!((r.status, r.errcode()), (status, errcode), "{kind} {event} {body}: {:?}", r.body);
    }

    let markers = format!("/_matrix/client/v3/rooms/{room}/read_markers");
    let r =
        s.post(&markers, bob.token(), json!({ "m.fully_read": m1, "m.read": reply, "m.read.private": reply })).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(s.get(&marker, bob.token()).await.body, json!({ "event_id": m1 }));
    let r = s.post(&markers, bob.token(), json!({ "m.read": "$unknown" })).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));
    let r = s.post(&markers, carol.token(), json!({ "m.read": m1 })).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"));
}

#[tokio::test]
async fn presence_set_get_errors_and_going_offline() {
    let s = TestServer::start_with(&[("TRELLIS_PRESENCE__IDLE_TIMEOUT_MS", "300")]);
    let (alice, bob, carol, _room) = setup(&s).await;
    let path = |who: &str| format!("/_matrix/client/v3/presence/{}/status", urlencode(who));

    let r = s.get(&path(&alice.user_id), bob.token()).await;
    assert_eq!((r.status, r.body.clone()), (200, json!({ "presence": "offline" })), "never set");
    let r = s.put(&path(&alice.user_id), alice.token(), json!({ "presence": "online", "status_msg": "here" })).await;
    assert_eq!((r.status, r.body.clone()), (200, json!({})));
    let r = s.get(&path(&alice.user_id), bob.token()).await;
    assert_eq!((r.body["presence"].clone(), r.body["status_msg"].clone()), (json!("online"), json!("here")));
    assert_eq!(r.body["currently_active"], true);
    assert!(r.body["last_active_ago"].as_u64().unwrap() < 300);
    let r = s.get(&path(&alice.user_id), alice.token()).await;
    assert_eq!(r.body["presence"], "online", "one's own");

    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = s.get(&path(&alice.user_id), bob.token()).await;
        if r.body["presence"] == "offline" {
            assert_eq!(r.body["status_msg"], "here", "the status message stays");
            assert!(r.body.get("currently_active").is_none());
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still {:?}", r.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let r = s.put(&path(&alice.user_id), alice.token(), json!({ "presence": "unavailable" })).await;
    assert_eq!(r.status, 200);
    let r = s.get(&path(&alice.user_id), alice.token()).await;
    assert_eq!(r.body["presence"], "unavailable");
    assert!(r.body.get("status_msg").is_none(), "a PUT without status_msg clears it");

    let r = s.put(&path(&bob.user_id), alice.token(), json!({ "presence": "online" })).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "someone else's presence");
    let r = s.put(&path(&alice.user_id), alice.token(), json!({ "presence": "busy" })).await;
    assert_eq!((r.status, r.errcode()), (400, "M_INVALID_PARAM"));
    let r = s.put(&path(&alice.user_id), alice.token(), json!({ "status_msg": "no state" })).await;
    assert_eq!(r.status, 400, "presence is required: {:?}", r.body);
    let r = s.get(&path(&alice.user_id), carol.token()).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "carol shares no room with alice");
    let r = s.get(&path("@nobody:localhost"), alice.token()).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));
    let r = s.get(&path("@someone:elsewhere.example"), alice.token()).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));
}

#[tokio::test]
async fn disabled_presence_still_answers() {
    let s = TestServer::start_with(&[("TRELLIS_PRESENCE__ENABLED", "false")]);
    let alice = s.register("alice", "password1").await;
    let path = format!("/_matrix/client/v3/presence/{}/status", urlencode(&alice.user_id));
    let r = s.put(&path, alice.token(), json!({ "presence": "online", "status_msg": "hi" })).await;
    assert_eq!(r.status, 200);
    let r = s.get(&path, alice.token()).await;
    assert_eq!((r.status, r.body), (200, json!({ "presence": "offline" })));
}

#[tokio::test]
async fn turn_credentials_are_an_hmac_of_the_username() {
    let uris = r#"["turn:turn.example.org:3478?transport=udp","turns:turn.example.org:5349?transport=tcp"]"#;
    let s = TestServer::start_with(&[
        ("TRELLIS_VOIP__TURN_SHARED_SECRET", "coturn-secret"),
        ("TRELLIS_VOIP__TURN_URIS", uris),
        ("TRELLIS_VOIP__TURN_TTL_SECS", "600"),
    ]);
    let alice = s.register("alice", "password1").await;
    let r = s.get("/_matrix/client/v3/voip/turnServer", alice.token()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["ttl"], 600);
    assert_eq!(r.body["uris"], serde_json::from_str::<Value>(uris).unwrap());
    let username = r.body["username"].as_str().unwrap();
    let (expiry, user) = username.split_once(':').unwrap();
    assert_eq!(user, "@alice:localhost");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let expiry: u64 = expiry.parse().unwrap();
    assert!((now + 590..=now + 610).contains(&expiry), "expiry {expiry} is now + ttl ({now})");
    let mut mac = Hmac::<Sha1>::new_from_slice(b"coturn-secret").unwrap();
    mac.update(username.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(r.body["password"], json!(expected));

    let r = s.get("/_matrix/client/v3/voip/turnServer", None).await;
    assert_eq!((r.status, r.errcode()), (401, "M_MISSING_TOKEN"));

    let plain = TestServer::start_with(&[("TRELLIS_VOIP__TURN_URIS", uris)]);
    let bob = plain.register("bob", "password1").await;
    let r = plain.get("/_matrix/client/v3/voip/turnServer", bob.token()).await;
    assert_eq!((r.status, r.body), (200, json!({})), "no secret: nothing to offer");
}
