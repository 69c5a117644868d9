//! The services `/sync` reads, on a temporary `Services`: typing (with expiry), receipts,
//! presence guards, unread counts.

use std::time::{Duration, Instant};

use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde_json::{Value, json};

use super::receipts::{self, Thread};
use super::{presence, presence_since, receipts_since, sync_activity, typing, typing_since, unread_counts};
use crate::config::Config;
use crate::error::{ErrorKind, Result};
use crate::rooms::append::send;
use crate::rooms::build::NewEvent;
use crate::rooms::create::{CreateRoom, create};
use crate::rooms::membership;
use crate::services::{Services, State};

pub(super) fn services() -> (State, tempfile::TempDir) {
    services_with(|_| {})
}

fn services_with(f: impl FnOnce(&mut Config)) -> (State, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.database.path = dir.path().join("db");
    f(&mut config);
    (Services::new(config).map_err(|e| e.to_string()).unwrap(), dir)
}

pub(super) fn user(name: &str) -> OwnedUserId {
    UserId::parse(format!("@{name}:localhost")).unwrap()
}

/// A public room created by the first member, joined by the others.
pub(super) async fn room_with(s: &Services, members: &[&str]) -> OwnedRoomId {
    let req = CreateRoom { preset: Some("public_chat".into()), ..Default::default() };
    let room = create(s, &user(members[0]), req).await.unwrap();
    for m in &members[1..] {
        membership::join(s, &room, &user(m), None).await.unwrap();
    }
    room
}

pub(super) async fn say(s: &Services, room: &RoomId, who: &str, content: Value) -> OwnedEventId {
    send(s, room, &user(who), NewEvent::message("m.room.message", content), None).await.unwrap()
}

/// Accounts, so that presence knows the users.
fn accounts(s: &Services, names: &[&str]) {
    for n in names {
        crate::users::accounts::create(&s.db, &user(n), Default::default()).unwrap();
    }
}

fn kind<T: std::fmt::Debug>(r: Result<T>) -> ErrorKind {
    r.unwrap_err().kind()
}

/// Wait (at most 3 s) for `done`.
async fn eventually(mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(3), "timed out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn typing_moves_the_stream_and_expires_on_its_own_timer() {
    let (s, _dir) = services_with(|_| {});
    let room = room_with(&s, &["alice", "bob"]).await;
    let (alice, bob) = (user("alice"), user("bob"));
    let committed = || s.db.stream().committed();
    assert_eq!(typing_since(&s, &room, 0), None);

    let before = committed();
    typing::set(&s, &room, &alice, Some(Duration::from_millis(400))).unwrap();
    let started = committed();
    assert!(started > before, "a change moves the stream");
    let alice_typing = json!({ "type": "m.typing", "content": { "user_ids": ["@alice:localhost"] } });
    assert_eq!(typing_since(&s, &room, 0), Some(alice_typing.clone()));
    assert_eq!(typing_since(&s, &room, before), Some(alice_typing.clone()));
    assert_eq!(typing_since(&s, &room, started), None);
    typing::set(&s, &room, &alice, Some(Duration::from_millis(400))).unwrap();
    assert_eq!(committed(), started, "renewing changes nothing");

    typing::set(&s, &room, &bob, Some(Duration::from_secs(60))).unwrap();
    let both = committed();
    let r = typing_since(&s, &room, started).unwrap();
    assert_eq!(r["content"]["user_ids"], json!(["@alice:localhost", "@bob:localhost"]));
    typing::set(&s, &room, &bob, None).unwrap();
    assert_eq!(typing_since(&s, &room, both), Some(alice_typing));
    let stopped = committed();
    typing::set(&s, &room, &bob, None).unwrap();
    assert_eq!(committed(), stopped, "stopping twice changes nothing");

    eventually(|| typing_since(&s, &room, 0).is_none()).await;
    assert!(committed() > stopped, "the expiry moved the stream");
    let r = typing_since(&s, &room, stopped).unwrap();
    assert_eq!(r["content"]["user_ids"], json!([]), "everyone stopped");

    assert_eq!(kind(typing::set(&s, &room, &user("carol"), Some(Duration::from_secs(1)))), ErrorKind::Forbidden);
}

#[tokio::test(flavor = "multi_thread")]
async fn receipts_by_type_and_thread_with_private_ones_kept_private() {
    let (s, _dir) = services_with(|_| {});
    let room = room_with(&s, &["alice", "bob"]).await;
    let (alice, bob) = (user("alice"), user("bob"));
    let m1 = say(&s, &room, "alice", json!({ "body": "one" })).await;
    let root = say(&s, &room, "alice", json!({ "body": "root" })).await;
    let reply = say(
        &s,
        &room,
        "alice",
        json!({ "body": "in thread", "m.relates_to": { "rel_type": "m.thread", "event_id": root } }),
    )
    .await;
    let m2 = say(&s, &room, "alice", json!({ "body": "two" })).await;
    let p0 = s.db.stream().committed();

    receipts::post(&s, &room, &bob, "m.read".into(), &m2, Thread::Unthreaded).unwrap();
    receipts::post(&s, &room, &bob, "m.read.private".into(), &m2, Thread::Main).unwrap();
    receipts::post(&s, &room, &bob, "m.read".into(), &reply, Thread::Root(root.clone())).unwrap();
    let p1 = s.db.stream().committed();
    assert!(p1 > p0);

    let seen_by_alice = receipts_since(&s, &room, &alice, 0, p1).unwrap().unwrap();
    let c = &seen_by_alice["content"];
    assert_eq!(seen_by_alice["type"], "m.receipt");
    assert!(c[m2.as_str()]["m.read"]["@bob:localhost"]["ts"].is_u64());
    assert!(c[m2.as_str()]["m.read"]["@bob:localhost"].get("thread_id").is_none(), "unthreaded");
    assert!(c[m2.as_str()].get("m.read.private").is_none(), "others' private receipts stay private");
    assert_eq!(c[reply.as_str()]["m.read"]["@bob:localhost"]["thread_id"], json!(root));
    let seen_by_bob = receipts_since(&s, &room, &bob, p0, p1).unwrap().unwrap();
    assert_eq!(seen_by_bob["content"][m2.as_str()]["m.read.private"]["@bob:localhost"]["thread_id"], "main");
    assert_eq!(receipts_since(&s, &room, &alice, p1, p1).unwrap(), None, "nothing new");

    receipts::post(&s, &room, &bob, "m.read".into(), &m1, Thread::Unthreaded).unwrap();
    assert_eq!(s.db.stream().committed(), p1, "receipts never move backwards");
    receipts::post(&s, &room, &alice, "m.read".into(), &m2, Thread::Unthreaded).unwrap();
    let alice_only = receipts_since(&s, &room, &bob, p1, s.db.stream().committed()).unwrap().unwrap();
    assert_eq!(alice_only["content"][m2.as_str()]["m.read"].as_object().unwrap().len(), 1);
    assert!(alice_only["content"][m2.as_str()]["m.read"]["@alice:localhost"].is_object());

    let post = |kind: &str, event: &OwnedEventId, thread| receipts::post(&s, &room, &bob, kind.into(), event, thread);
    assert_eq!(kind(post("m.read", &reply, Thread::Main)), ErrorKind::InvalidParam, "reply is not in main");
    assert_eq!(kind(post("m.read", &m1, Thread::Root(root.clone()))), ErrorKind::InvalidParam);
    assert_eq!(kind(post("m.fully_read", &m1, Thread::Main)), ErrorKind::InvalidParam);
    assert_eq!(kind(post("m.custom", &m1, Thread::Unthreaded)), ErrorKind::InvalidParam);
    let missing = OwnedEventId::try_from("$missing").unwrap();
    assert_eq!(kind(post("m.read", &missing, Thread::Unthreaded)), ErrorKind::NotFound);
    let carol = user("carol");
    let r = receipts::post(&s, &room, &carol, "m.read".into(), &m1, Thread::Unthreaded);
    assert_eq!(kind(r), ErrorKind::Forbidden);

    post("m.fully_read", &m1, Thread::Unthreaded).unwrap();
    let marker = crate::users::account_data::get(&s.db, &bob, Some(&room), "m.fully_read").unwrap();
    assert_eq!(marker, json!({ "event_id": m1 }));
}

#[tokio::test(flavor = "multi_thread")]
async fn presence_follows_the_activity_guards() {
    let (s, _dir) = services_with(|c| c.presence.idle_timeout_ms = 300);
    accounts(&s, &["alice", "bob", "carol"]);
    room_with(&s, &["alice", "bob"]).await;
    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    let state = |u: &UserId| presence::get(&s, &bob, u).map(|v| v["presence"].clone()).unwrap_or_default();
    assert_eq!(state(&alice), "offline", "never seen");

    let g1 = sync_activity(&s, &alice, None);
    let online = presence::get(&s, &bob, &alice).unwrap();
    assert_eq!(online, json!({ "presence": "online", "last_active_ago": 0, "currently_active": true }));
    let p = s.db.stream().committed();
    let events = presence_since(&s, &bob, 0, p).unwrap();
    assert!(events.iter().any(|e| e["sender"] == "@alice:localhost" && e["content"]["presence"] == "online"));
    assert!(presence_since(&s, &carol, 0, p).unwrap().is_empty(), "carol shares no room with alice");

    let g2 = sync_activity(&s, &alice, None);
    assert_eq!(s.db.stream().committed(), p, "already online: nothing changes");
    drop(g1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(state(&alice), "online", "one guard is still alive");
    drop(g2);
    assert_eq!(state(&alice), "online", "idle, not yet offline");
    eventually(|| state(&alice) == "offline").await;
    let gone = presence_since(&s, &bob, p, s.db.stream().committed()).unwrap();
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0]["content"]["presence"], "offline");
    assert!(gone[0]["content"]["last_active_ago"].as_u64().unwrap() >= 300);

    drop(sync_activity(&s, &alice, Some("offline")));
    assert_eq!(state(&alice), "offline", "set_presence=offline does not bring anyone online");
    drop(sync_activity(&s, &alice, None));
    let again = sync_activity(&s, &alice, None);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(state(&alice), "online", "new activity cancelled the idle timer");
    drop(again);

    presence::set(&s, &alice, "unavailable".into(), Some("lunch".into())).unwrap();
    let g = sync_activity(&s, &alice, None);
    let away = presence::get(&s, &bob, &alice).unwrap();
    assert_eq!((away["presence"].clone(), away["status_msg"].clone()), (json!("unavailable"), json!("lunch")));
    drop(sync_activity(&s, &alice, Some("online")));
    assert_eq!(state(&alice), "online", "a sync that names a state wins");
    drop(g);
    eventually(|| state(&alice) == "offline").await;
    assert_eq!(presence::get(&s, &bob, &alice).unwrap()["status_msg"], "lunch", "kept while offline");

    assert_eq!(kind(presence::get(&s, &carol, &alice)), ErrorKind::Forbidden);
    assert_eq!(kind(presence::set(&s, &alice, "busy".into(), None)), ErrorKind::InvalidParam);
}

#[tokio::test(flavor = "multi_thread")]
async fn disabled_presence_delivers_nothing() {
    let (s, _dir) = services_with(|c| c.presence.enabled = false);
    accounts(&s, &["alice", "bob"]);
    room_with(&s, &["alice", "bob"]).await;
    let _guard = sync_activity(&s, &user("alice"), None);
    presence::set(&s, &user("alice"), "online".into(), Some("hi".into())).unwrap();
    assert_eq!(presence::get(&s, &user("bob"), &user("alice")).unwrap(), json!({ "presence": "offline" }));
    assert!(presence_since(&s, &user("bob"), 0, s.db.stream().committed()).unwrap().is_empty());
}

/// `(notification_count, highlight_count)` of the main timeline, and the threads object.
pub(super) fn counts(s: &Services, room: &RoomId, who: &str) -> ((u64, u64), Value) {
    let (main, threads) = unread_counts(s, room, &user(who)).unwrap();
    let n = |k: &str| main[k].as_u64().unwrap();
    ((n("notification_count"), n("highlight_count")), threads)
}
