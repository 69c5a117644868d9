//! Unread counts by the default push rules: messages, mentions (intentional and legacy),
//! `@room` and its power level, suppressed kinds, receipts (private and threaded), a DM.

use ruma::events::StateEventType;
use serde_json::json;

use super::receipts::{self, Thread};
use super::tests::{counts, room_with, say, user};
use crate::rooms::append::send;
use crate::rooms::build::NewEvent;

#[tokio::test(flavor = "multi_thread")]
async fn counts_follow_rules_mentions_and_receipts() {
    let (s, _dir) = super::tests::services();
    let room = room_with(&s, &["alice", "bob", "carol"]).await;
    let bob = user("bob");
    let renamed = json!({ "membership": "join", "displayname": "Robert" });
    send(&s, &room, &bob, NewEvent::state(StateEventType::RoomMember, bob.as_str(), renamed), None).await.unwrap();
    assert_eq!(counts(&s, &room, "bob").0, (0, 0));

    let hello = say(&s, &room, "alice", json!({ "msgtype": "m.text", "body": "hello" })).await;
    assert_eq!(counts(&s, &room, "bob").0, (1, 0));
    say(&s, &room, "alice", json!({ "body": "hey", "m.mentions": { "user_ids": ["@bob:localhost"] } })).await;
    assert_eq!(counts(&s, &room, "bob").0, (2, 1), "m.mentions.user_ids");
    say(&s, &room, "alice", json!({ "body": "is bob around?" })).await;
    assert_eq!(counts(&s, &room, "bob").0, (3, 2), "legacy: localpart");
    say(&s, &room, "alice", json!({ "body": "ask Robert" })).await;
    assert_eq!(counts(&s, &room, "bob").0, (4, 3), "legacy: display name");
    say(&s, &room, "alice", json!({ "body": "Robert", "m.mentions": {} })).await;
    assert_eq!(counts(&s, &room, "bob").0, (5, 3), "m.mentions turns the legacy rules off");
    say(&s, &room, "alice", json!({ "body": "@room look" })).await;
    assert_eq!(counts(&s, &room, "bob").0, (6, 4), "@room from the creator");
    say(&s, &room, "carol", json!({ "body": "@room me too" })).await;
    say(&s, &room, "carol", json!({ "body": "all", "m.mentions": { "room": true } })).await;
    assert_eq!(counts(&s, &room, "bob").0, (8, 4), "carol may not notify the room");

    say(&s, &room, "alice", json!({ "msgtype": "m.notice", "body": "bot says bob" })).await;
    say(&s, &room, "bob", json!({ "body": "my own" })).await;
    let reaction = json!({ "m.relates_to": { "rel_type": "m.annotation", "event_id": hello, "key": "👍" } });
    send(&s, &room, &user("alice"), NewEvent::message("m.reaction", reaction), None).await.unwrap();
    let edit = json!({
        "body": "* hello bob", "m.new_content": { "body": "hello bob" },
        "m.relates_to": { "rel_type": "m.replace", "event_id": hello },
    });
    let last = say(&s, &room, "alice", edit).await;
    assert_eq!(counts(&s, &room, "bob"), ((8, 4), json!({})), "notices, own, reactions, edits do not count");
    assert_eq!(counts(&s, &room, "alice").0, (3, 0), "carol's two messages and bob's");

    let post = |event, thread| receipts::post(&s, &room, &bob, "m.read.private".into(), event, thread).unwrap();
    post(&last, Thread::Unthreaded);
    assert_eq!(counts(&s, &room, "bob").0, (0, 0), "a private receipt reads too");
    say(&s, &room, "alice", json!({ "body": "after" })).await;
    assert_eq!(counts(&s, &room, "bob").0, (1, 0));

    let root = say(&s, &room, "alice", json!({ "body": "thread root" })).await;
    let in_thread = |body: &str, mention: bool| {
        let mut c = json!({ "body": body, "m.relates_to": { "rel_type": "m.thread", "event_id": root } });
        if mention {
            c["m.mentions"] = json!({ "user_ids": ["@bob:localhost"] });
        }
        c
    };
    let reply1 = say(&s, &room, "alice", in_thread("first", true)).await;
    let reply2 = say(&s, &room, "carol", in_thread("second", false)).await;
    let thread = |n: u64, h: u64| json!({ root.as_str(): { "notification_count": n, "highlight_count": h } });
    assert_eq!(counts(&s, &room, "bob"), ((2, 0), thread(2, 1)), "replies count in their thread");

    post(&reply1, Thread::Root(root.clone()));
    assert_eq!(counts(&s, &room, "bob"), ((2, 0), thread(1, 0)), "the thread's receipt");
    post(&root, Thread::Main);
    assert_eq!(counts(&s, &room, "bob"), ((0, 0), thread(1, 0)), "the main receipt leaves threads");
    receipts::post(&s, &room, &bob, "m.read".into(), &reply2, Thread::Unthreaded).unwrap();
    assert_eq!(counts(&s, &room, "bob"), ((0, 0), json!({})), "an unthreaded receipt reads everything");
}

#[tokio::test(flavor = "multi_thread")]
async fn direct_chat_counts_messages_encrypted_events_and_calls() {
    let (s, _dir) = super::tests::services();
    let room = room_with(&s, &["alice", "bob"]).await;
    let alice = user("alice");
    say(&s, &room, "alice", json!({ "msgtype": "m.text", "body": "hi" })).await;
    let encrypted = json!({
        "algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEn", "sender_key": "k", "session_id": "s",
        "device_id": "DEV",
    });
    send(&s, &room, &alice, NewEvent::message("m.room.encrypted", encrypted), None).await.unwrap();
    let invite =
        json!({ "call_id": "c1", "lifetime": 60000, "version": "1", "offer": { "type": "offer", "sdp": "v=0" } });
    send(&s, &room, &alice, NewEvent::message("m.call.invite", invite), None).await.unwrap();
    send(&s, &room, &alice, NewEvent::message("m.custom.event", json!({ "x": 1 })), None).await.unwrap();
    assert_eq!(counts(&s, &room, "bob"), ((3, 0), json!({})));
    assert_eq!(counts(&s, &room, "alice").0, (0, 0), "own events");
    assert_eq!(counts(&s, &room, "carol").0, (0, 0), "not joined");
}
