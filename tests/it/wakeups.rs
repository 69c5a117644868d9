//! Long-polls wake only for changes they would see: a room's messages wake its members, not
//! others; to-device wakes the addressed device; presence and device lists wake those who share
//! a room; account data wakes its owner; an invite wakes its target. `trellis_sync_wakeups_total`
//! (on `/metrics`) counts wake-ups, so "did not wake" is observed, not inferred from timing.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::server::{Session, TestServer, client, send, urlencode};
use crate::sync::sync;

const QUIET_MS: u64 = 1500;

fn server() -> TestServer {
    TestServer::start_with(&[("TRELLIS_METRICS__ENABLED", "true")])
}

async fn metric(s: &TestServer, name: &str) -> u64 {
    let url = s.metrics_url.clone().expect("metrics listener");
    let text = client().get(url).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
}

async fn wakeups(s: &TestServer) -> u64 {
    metric(s, "trellis_sync_wakeups_total").await
}

async fn since(s: &TestServer, who: &Session) -> String {
    sync(s, who, None, "").await["next_batch"].as_str().unwrap().to_owned()
}

/// Start a long-poll of `who` from `since`; give it time to register before returning.
async fn poll(
    s: &TestServer,
    who: &Session,
    since: &str,
    timeout_ms: u64,
) -> tokio::task::JoinHandle<(Value, Duration)> {
    let url = format!("{}/_matrix/client/v3/sync?timeout={timeout_ms}&since={since}", s.url);
    let token = who.access_token.clone();
    let handle = tokio::spawn(async move {
        let started = Instant::now();
        let r = send(client().get(url).bearer_auth(token)).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        (r.body, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    handle
}

/// Wait for a long-poll that should sit out its whole timeout: it returns empty, late, and
/// nothing woke it.
async fn assert_quiet(s: &TestServer, before: u64, poll: tokio::task::JoinHandle<(Value, Duration)>) -> Value {
    let (body, took) = poll.await.unwrap();
    assert!(took >= Duration::from_millis(QUIET_MS - 100), "returned after {took:?}: {body}");
    assert_eq!(wakeups(s).await, before, "nothing this user sees changed: {body}");
    assert!(body["rooms"]["join"].as_object().unwrap().is_empty(), "{body}");
    assert!(body["rooms"]["invite"].as_object().unwrap().is_empty(), "{body}");
    for section in ["to_device", "presence", "account_data"] {
        assert_eq!(body[section]["events"], json!([]), "{section}: {body}");
    }
    assert_eq!(body["device_lists"]["changed"], json!([]), "{body}");
    body
}

/// Wait for a long-poll that should return well before its (10 s) timeout.
async fn prompt(poll: tokio::task::JoinHandle<(Value, Duration)>) -> Value {
    let (body, took) = poll.await.unwrap();
    assert!(took < Duration::from_secs(5), "took {took:?}: {body}");
    body
}

struct World {
    s: TestServer,
    alice: Session,
    bob: Session,
    carol: Session,
    room: String,
}

/// Alice and Bob share a room; Carol shares none with either.
async fn world() -> World {
    let s = server();
    let alice = s.register("alice", "password1").await;
    let bob = s.register("bob", "password1").await;
    let carol = s.register("carol", "password1").await;
    let room = s.create_room(&alice.access_token, json!({ "preset": "public_chat" })).await;
    s.join(&bob.access_token, &room).await;
    World { s, alice, bob, carol, room }
}

#[tokio::test]
async fn messages_wake_members_of_the_room_only() {
    let World { s, alice, bob, carol, room } = world().await;
    let carol_since = since(&s, &carol).await;
    let before = wakeups(&s).await;
    let waiting = poll(&s, &carol, &carol_since, QUIET_MS).await;
    for i in 0..3 {
        s.send_text(&alice.access_token, &room, &format!("not for carol {i}")).await;
    }
    let body = assert_quiet(&s, before, waiting).await;
    assert!(!body.to_string().contains("not for carol"));

    let bob_since = since(&s, &bob).await;
    let waiting = poll(&s, &bob, &bob_since, 10_000).await;
    s.send_text(&alice.access_token, &room, "for bob").await;
    let body = prompt(waiting).await;
    assert_eq!(crate::sync::timeline_bodies(&body, &room), ["for bob"]);
    assert_eq!(metric(&s, "trellis_notifier_keys").await, 0, "no waiter left, no key left");
}

#[tokio::test]
async fn to_device_wakes_the_addressed_device_only() {
    let World { s, alice, bob, .. } = world().await;
    let laptop = Session::from(&s.login("bob", "password1").await.body);
    let (phone_since, laptop_since) = (since(&s, &bob).await, since(&s, &laptop).await);
    let to = |device: &str, n: u32| json!({ "messages": { "@bob:localhost": { device: { "n": n } } } });

    let before = wakeups(&s).await;
    let waiting = poll(&s, &bob, &phone_since, QUIET_MS).await;
    let r = s.put("/_matrix/client/v3/sendToDevice/m.test/t1", alice.token(), to(&laptop.device_id, 1)).await;
    assert_eq!(r.status, 200);
    assert_quiet(&s, before, waiting).await;

    let waiting = poll(&s, &bob, &phone_since, 10_000).await;
    let r = s.put("/_matrix/client/v3/sendToDevice/m.test/t2", alice.token(), to(&bob.device_id, 2)).await;
    assert_eq!(r.status, 200);
    let body = prompt(waiting).await;
    assert_eq!(body["to_device"]["events"][0]["content"]["n"], json!(2), "{body}");

    let waiting = poll(&s, &laptop, &laptop_since, 10_000).await;
    let body = prompt(waiting).await;
    assert_eq!(body["to_device"]["events"][0]["content"]["n"], json!(1), "kept for the laptop: {body}");
    let everywhere = json!({ "messages": { "@bob:localhost": { "*": { "n": 3 } } } });
    let next = body["next_batch"].as_str().unwrap().to_owned();
    let waiting = poll(&s, &laptop, &next, 10_000).await;
    assert_eq!(s.put("/_matrix/client/v3/sendToDevice/m.test/t3", alice.token(), everywhere).await.status, 200);
    let body = prompt(waiting).await;
    assert_eq!(body["to_device"]["events"][0]["content"]["n"], json!(3), "`*` reaches every device: {body}");
}

#[tokio::test]
async fn presence_and_device_lists_wake_those_who_share_a_room() {
    let World { s, alice, bob, carol, .. } = world().await;
    let presence = format!("/_matrix/client/v3/presence/{}/status", urlencode(&alice.user_id));
    let carol_since = since(&s, &carol).await;
    let before = wakeups(&s).await;
    let waiting = poll(&s, &carol, &carol_since, QUIET_MS).await;
    let r = s.put(&presence, alice.token(), json!({ "presence": "unavailable", "status_msg": "away" })).await;
    assert_eq!(r.status, 200);
    s.login("alice", "password1").await;
    assert_quiet(&s, before, waiting).await;

    let bob_since = since(&s, &bob).await;
    let waiting = poll(&s, &bob, &bob_since, 10_000).await;
    let r = s.put(&presence, alice.token(), json!({ "presence": "online", "status_msg": "back" })).await;
    assert_eq!(r.status, 200);
    let body = prompt(waiting).await;
    let events = body["presence"]["events"].as_array().unwrap();
    assert!(events.iter().any(|e| e["sender"] == "@alice:localhost"), "{body}");

    let next = body["next_batch"].as_str().unwrap().to_owned();
    let waiting = poll(&s, &bob, &next, 10_000).await;
    s.login("alice", "password1").await;
    let body = prompt(waiting).await;
    assert!(body["device_lists"]["changed"].as_array().unwrap().contains(&json!("@alice:localhost")), "{body}");
}

#[tokio::test]
async fn account_data_wakes_its_owner_and_an_invite_its_target() {
    let World { s, alice, bob, carol, room } = world().await;
    let data = |who: &str| format!("/_matrix/client/v3/user/{}/account_data/org.example.x", urlencode(who));
    let bob_since = since(&s, &bob).await;
    let before = wakeups(&s).await;
    let waiting = poll(&s, &bob, &bob_since, QUIET_MS).await;
    assert_eq!(s.put(&data(&alice.user_id), alice.token(), json!({ "a": 1 })).await.status, 200);
    assert_quiet(&s, before, waiting).await;

    let laptop = Session::from(&s.login("bob", "password1").await.body);
    let bob_since = since(&s, &bob).await;
    let before = wakeups(&s).await;
    let waiting = poll(&s, &bob, &bob_since, 10_000).await;
    assert_eq!(s.put(&data(&bob.user_id), laptop.token(), json!({ "b": 2 })).await.status, 200);
    let body = prompt(waiting).await;
    let events = body["account_data"]["events"].as_array().unwrap();
    assert!(events.iter().any(|e| e["type"] == "org.example.x" && e["content"]["b"] == 2), "{body}");
    assert!(wakeups(&s).await > before);

    let carol_since = since(&s, &carol).await;
    let waiting = poll(&s, &carol, &carol_since, 10_000).await;
    let r = s.room_post(&alice.access_token, &room, "invite", json!({ "user_id": carol.user_id })).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let body = prompt(waiting).await;
    assert!(body["rooms"]["invite"].get(&room).is_some(), "{body}");

    // Joining from another session wakes the user's waiting sync too.
    let other = Session::from(&s.login("carol", "password1").await.body);
    let carol_since = body["next_batch"].as_str().unwrap();
    let carol_since = sync(&s, &carol, Some(carol_since), "").await["next_batch"].as_str().unwrap().to_owned();
    let waiting = poll(&s, &carol, &carol_since, 10_000).await;
    assert_eq!(s.join(&other.access_token, &room).await.status, 200);
    let body = prompt(waiting).await;
    assert!(body["rooms"]["join"].get(&room).is_some(), "{body}");
}
