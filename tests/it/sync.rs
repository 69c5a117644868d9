//! `/sync`: initial and incremental, long-polling, gaps, invites and leaves, filters, tokens.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::server::{Session, TestServer, urlencode};

/// One sync; returns the body.
pub async fn sync(s: &TestServer, who: &Session, since: Option<&str>, extra: &str) -> Value {
    let mut path = format!("/_matrix/client/v3/sync?timeout=0{extra}");
    if let Some(t) = since {
        path.push_str(&format!("&since={t}"));
    }
    let r = s.get(&path, who.token()).await;
    assert_eq!(r.status, 200, "sync: {:?}", r.body);
    r.body
}

pub fn timeline_bodies(body: &Value, room: &str) -> Vec<String> {
    body["rooms"]["join"][room]["timeline"]["events"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["content"]["body"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn initial_and_incremental_sync() {
    let s = TestServer::start();
    let alice = s.register("alice", "password1").await;
    let bob = s.register("bob", "password1").await;
    let room = s.create_room(&alice.access_token, json!({ "preset": "public_chat", "name": "Sync" })).await;
    s.join(&bob.access_token, &room).await;
    s.send_text(&alice.access_token, &room, "one").await;

    let first = sync(&s, &bob, None, "").await;
    let joined = &first["rooms"]["join"][&room];
    assert_eq!(timeline_bodies(&first, &room), ["one"]);
    // State before the timeline plus the timeline's own state events: the whole room state.
    let all: Vec<&Value> = joined["state"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .chain(joined["timeline"]["events"].as_array().unwrap())
        .collect();
    let state_types: HashSet<&str> =
        all.iter().filter(|e| e.get("state_key").is_some()).map(|e| e["type"].as_str().unwrap()).collect();
    assert!(state_types.contains("m.room.create") && state_types.contains("m.room.name"), "{state_types:?}");
    let limited = sync(&s, &bob, None, "&filter=%7B%22room%22%3A%7B%22timeline%22%3A%7B%22limit%22%3A1%7D%7D%7D").await;
    let st: HashSet<&str> = limited["rooms"]["join"][&room]["state"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(
        st.contains("m.room.create") && st.contains("m.room.name") && st.contains("m.room.member"),
        "state before a 1-event timeline: {st:?}"
    );
    assert_eq!(limited["rooms"]["join"][&room]["timeline"]["limited"], json!(true));
    assert_eq!(joined["summary"]["m.joined_member_count"], json!(2));
    assert_eq!(joined["summary"]["m.heroes"], json!(["@alice:localhost"]));
    let next = first["next_batch"].as_str().unwrap().to_owned();
    assert!(next.starts_with('s'));

    let quiet = sync(&s, &bob, Some(&next), "").await;
    assert!(quiet["rooms"]["join"].as_object().unwrap().is_empty(), "nothing new: {quiet}");

    s.send_text(&alice.access_token, &room, "two").await;
    s.set_state(&alice.access_token, &room, "m.room.topic", "", json!({ "topic": "new topic" })).await;
    let inc = sync(&s, &bob, Some(&next), "").await;
    let events = inc["rooms"]["join"][&room]["timeline"]["events"].as_array().unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["m.room.message", "m.room.topic"]);
    assert_eq!(inc["rooms"]["join"][&room]["timeline"]["limited"], json!(false));
    assert_eq!(inc["rooms"]["join"][&room]["state"]["events"], json!([]), "state is in the timeline");

    for bad in ["garbage", "s99999999"] {
        let r = s.get(&format!("/_matrix/client/v3/sync?since={bad}"), bob.token()).await;
        assert_eq!((r.status, r.errcode()), (400, "M_INVALID_PARAM"), "{bad}");
    }
}

#[tokio::test]
async fn a_limited_timeline_and_messages_fill_the_gap_exactly() {
    let s = TestServer::start();
    let alice = s.register("alice", "password1").await;
    let bob = s.register("bob", "password1").await;
    let room = s.create_room(&alice.access_token, json!({ "preset": "public_chat" })).await;
    s.join(&bob.access_token, &room).await;
    let start = sync(&s, &bob, None, "").await["next_batch"].as_str().unwrap().to_owned();
    for i in 0..25 {
        s.send_text(&alice.access_token, &room, &format!("m{i}")).await;
    }
    let filter = urlencode(&json!({ "room": { "timeline": { "limit": 5 } } }).to_string());
    let inc = sync(&s, &bob, Some(&start), &format!("&filter={filter}")).await;
    let tl = &inc["rooms"]["join"][&room]["timeline"];
    assert_eq!(tl["limited"], json!(true));
    assert_eq!(timeline_bodies(&inc, &room), ["m20", "m21", "m22", "m23", "m24"]);
    let prev = tl["prev_batch"].as_str().unwrap();
    let r = s
        .get(&format!("/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=100&from={prev}&to={start}"), bob.token())
        .await;
    let gap: Vec<String> = r.body["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
        .collect();
    let expected: Vec<String> = (0..20).rev().map(|i| format!("m{i}")).collect();
    assert_eq!(gap, expected, "the gap, nothing more, nothing less");
}

#[tokio::test]
async fn long_polls_wake_for_new_events_but_not_for_rooms_left() {
    let s = TestServer::start();
    let alice = s.register("alice", "password1").await;
    let bob = s.register("bob", "password1").await;
    let room = s.create_room(&alice.access_token, json!({ "preset": "public_chat" })).await;
    let other = s.create_room(&alice.access_token, json!({ "preset": "public_chat" })).await;
    s.join(&bob.access_token, &room).await;
    s.join(&bob.access_token, &other).await;
    let next = sync(&s, &bob, None, "").await["next_batch"].as_str().unwrap().to_owned();

    let url = format!("{}/_matrix/client/v3/sync?timeout=30000&since={next}", s.url);
    let waiting = tokio::spawn(crate::server::send(crate::server::client().get(url).bearer_auth(&bob.access_token)));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    s.send_text(&alice.access_token, &room, "wake up").await;
    let woke = waiting.await.unwrap();
    assert_eq!(timeline_bodies(&woke.body, &room), ["wake up"], "returned with the new event, long before 30 s");

    s.room_post(&bob.access_token, &other, "leave", json!({})).await;
    let after_leave = sync(&s, &bob, Some(woke.body["next_batch"].as_str().unwrap()), "").await;
    assert!(after_leave["rooms"]["leave"].get(&other).is_some(), "the leave is reported once");
    let next = after_leave["next_batch"].as_str().unwrap().to_owned();
    let url = format!("{}/_matrix/client/v3/sync?timeout=1500&since={next}", s.url);
    let waiting = tokio::spawn(crate::server::send(crate::server::client().get(url).bearer_auth(&bob.access_token)));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    s.send_text(&alice.access_token, &other, "bob left, he should not hear this").await;
    let r = waiting.await.unwrap();
    assert!(r.body["rooms"]["join"].as_object().unwrap().is_empty(), "{}", r.body);
    assert!(r.body["rooms"]["leave"].as_object().unwrap().is_empty());
    assert!(!r.body.to_string().contains("should not hear"));
}

#[tokio::test]
async fn three_devices_and_two_friends_see_everything() {
    let s = TestServer::start();
    let alice = s.register("alice", "password1").await;
    let phone = Session::from(&s.login("alice", "password1").await.body);
    let tablet = Session::from(&s.login("alice", "password1").await.body);
    let bob = s.register("bob", "password1").await;
    let carol = s.register("carol", "password1").await;
    let room = s.create_room(&alice.access_token, json!({ "preset": "public_chat" })).await;
    s.join(&bob.access_token, &room).await;
    s.join(&carol.access_token, &room).await;
    let everyone = [&alice, &phone, &tablet, &bob, &carol];
    let mut tokens = Vec::new();
    for who in everyone {
        tokens.push(sync(&s, who, None, "").await["next_batch"].as_str().unwrap().to_owned());
    }

    let r = s
        .put(
            &format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/from-phone"),
            phone.token(),
            json!({ "msgtype": "m.text", "body": "from the phone" }),
        )
        .await;
    let phone_msg = r.body["event_id"].as_str().unwrap().to_owned();
    s.send_text(&bob.access_token, &room, "hi from bob").await;
    let edit = json!({ "msgtype": "m.text", "body": "* edited", "m.new_content": { "msgtype": "m.text", "body": "edited" }, "m.relates_to": { "rel_type": "m.replace", "event_id": phone_msg } });
    s.put(&format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/edit"), tablet.token(), edit).await;
    let carol_msg = s.send_text(&carol.access_token, &room, "oops").await;
    s.put(&format!("/_matrix/client/v3/rooms/{room}/redact/{carol_msg}/rd"), carol.token(), json!({})).await;
    s.set_state(&alice.access_token, &room, "m.room.name", "", json!({ "name": "Named" })).await;

    for (who, since) in everyone.iter().zip(&tokens) {
        let inc = sync(&s, who, Some(since), "").await;
        let events = inc["rooms"]["join"][&room]["timeline"]["events"].as_array().unwrap().clone();
        let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            ["m.room.message", "m.room.message", "m.room.message", "m.room.message", "m.room.redaction", "m.room.name"],
            "{}",
            who.device_id
        );
        assert_eq!(events[0]["content"]["body"], "from the phone");
        assert_eq!(events[2]["content"]["m.new_content"]["body"], "edited");
        assert_eq!(events[3]["content"], json!({}), "redacted for everyone");
        let txn = events[0]["unsigned"].get("transaction_id");
        assert_eq!(txn.is_some(), who.device_id == phone.device_id, "transaction_id only for the sending device");
    }
}

#[tokio::test]
async fn invites_leaves_and_account_data() {
    let s = TestServer::start();
    let alice = s.register("alice", "password1").await;
    let bob = s.register("bob", "password1").await;
    let next = sync(&s, &bob, None, "").await["next_batch"].as_str().unwrap().to_owned();
    let room = s.create_room(&alice.access_token, json!({ "name": "Private", "invite": ["@bob:localhost"] })).await;
    s.put("/_matrix/client/v3/user/@bob:localhost/account_data/org.example.x", bob.token(), json!({ "n": 1 })).await;
    let inc = sync(&s, &bob, Some(&next), "").await;
    let invite = &inc["rooms"]["invite"][&room]["invite_state"]["events"];
    let types: Vec<&str> = invite.as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(types.contains(&"m.room.name") && types.contains(&"m.room.member"), "{types:?}");
    assert_eq!(inc["account_data"]["events"], json!([{ "type": "org.example.x", "content": { "n": 1 } }]));

    let next = inc["next_batch"].as_str().unwrap().to_owned();
    s.join(&bob.access_token, &room).await;
    let inc = sync(&s, &bob, Some(&next), "").await;
    assert!(inc["rooms"]["join"].get(&room).is_some(), "newly joined rooms come in full");
    let joined = &inc["rooms"]["join"][&room];
    let whole: Vec<&str> = joined["state"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .chain(joined["timeline"]["events"].as_array().unwrap())
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(whole.contains(&"m.room.create") && whole.contains(&"m.room.name"), "{whole:?}");
    s.room_post(&alice.access_token, &room, "kick", json!({ "user_id": "@bob:localhost" })).await;
    let next = inc["next_batch"].as_str().unwrap().to_owned();
    let inc = sync(&s, &bob, Some(&next), "").await;
    let leave = &inc["rooms"]["leave"][&room]["timeline"]["events"];
    assert_eq!(leave.as_array().unwrap().last().unwrap()["content"]["membership"], "leave");
}

/// Many senders; every receiver sees every event exactly once, in the same order.
#[tokio::test]
async fn concurrent_senders_every_receiver_sees_everything_once() {
    let s = TestServer::start();
    let mut users = Vec::new();
    for i in 0..5 {
        users.push(s.register(&format!("u{i}"), "password1").await);
    }
    let room = s.create_room(&users[0].access_token, json!({ "preset": "public_chat" })).await;
    for u in &users[1..] {
        s.join(&u.access_token, &room).await;
    }
    let mut tokens = Vec::new();
    for u in &users {
        tokens.push(sync(&s, u, None, "").await["next_batch"].as_str().unwrap().to_owned());
    }
    let http = crate::server::client();
    let mut tasks = Vec::new();
    for (n, u) in users.iter().enumerate() {
        for i in 0..20 {
            let url = format!("{}/_matrix/client/v3/rooms/{room}/send/m.room.message/x{n}_{i}", s.url);
            tasks.push(tokio::spawn(crate::server::send(
                http.put(url).bearer_auth(&u.access_token).json(&json!({ "body": format!("{n}.{i}") })),
            )));
        }
    }
    // Receivers sync incrementally while the senders run.
    let mut seen: Vec<Vec<String>> = vec![Vec::new(); users.len()];
    for round in 0..200 {
        let done = tasks.iter().all(|t| t.is_finished());
        for (k, u) in users.iter().enumerate() {
            let filter = urlencode(&json!({ "room": { "timeline": { "limit": 1000 } } }).to_string());
            let inc = sync(&s, u, Some(&tokens[k]), &format!("&filter={filter}")).await;
            assert_ne!(inc["rooms"]["join"][&room]["timeline"]["limited"], json!(true));
            seen[k].extend(timeline_bodies(&inc, &room));
            tokens[k] = inc["next_batch"].as_str().unwrap().to_owned();
        }
        if done && round > 0 {
            break;
        }
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().status, 200);
    }
    for (k, u) in users.iter().enumerate() {
        let inc = sync(&s, u, Some(&tokens[k]), "").await;
        seen[k].extend(timeline_bodies(&inc, &room));
    }
    assert_eq!(seen[0].len(), 100, "every event");
    assert_eq!(seen[0].iter().collect::<HashSet<_>>().len(), 100, "exactly once");
    for other in &seen[1..] {
        assert_eq!(other, &seen[0], "same order for everyone");
    }
}

/// VoIP signalling (`m.call.*`) flows like any room event.
#[tokio::test]
async fn call_events_flow_through_sync() {
    let s = TestServer::start();
    let alice = s.register("alice", "password1").await;
    let bob = s.register("bob", "password1").await;
    let room = s
        .create_room(
            &alice.access_token,
            json!({ "preset": "trusted_private_chat", "is_direct": true, "invite": ["@bob:localhost"] }),
        )
        .await;
    s.join(&bob.access_token, &room).await;
    let since = sync(&s, &bob, None, "").await["next_batch"].as_str().unwrap().to_owned();
    let call = json!({ "call_id": "c1", "party_id": "p1", "version": "1" });
    let steps = [
        ("m.call.invite", json!({ "lifetime": 60000, "offer": { "type": "offer", "sdp": "v=0 offer" } })),
        (
            "m.call.candidates",
            json!({ "candidates": [{ "candidate": "candidate:1 1 UDP 1 127.0.0.1 5000 typ host", "sdpMid": "0", "sdpMLineIndex": 0 }] }),
        ),
        ("m.call.answer", json!({ "answer": { "type": "answer", "sdp": "v=0 answer" } })),
        ("m.call.select_answer", json!({ "selected_party_id": "p2" })),
        ("m.call.negotiate", json!({ "lifetime": 10000, "description": { "type": "offer", "sdp": "v=0 re" } })),
        ("m.call.reject", json!({})),
        ("m.call.hangup", json!({ "reason": "user_hangup" })),
    ];
    for (i, (kind, extra)) in steps.iter().enumerate() {
        let mut content = call.clone();
        for (k, v) in extra.as_object().unwrap() {
            content[k] = v.clone();
        }
        let r = s.put(&format!("/_matrix/client/v3/rooms/{room}/send/{kind}/call{i}"), alice.token(), content).await;
        assert_eq!(r.status, 200, "{kind}: {:?}", r.body);
    }
    let inc = sync(&s, &bob, Some(&since), "").await;
    let events = inc["rooms"]["join"][&room]["timeline"]["events"].as_array().unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, steps.iter().map(|(k, _)| *k).collect::<Vec<_>>());
    assert_eq!(events[0]["content"]["offer"]["sdp"], "v=0 offer");
    assert_eq!(events[6]["content"]["reason"], "user_hangup");
}

fn ephemeral_of<'a>(body: &'a Value, room: &str, kind: &str) -> Option<&'a Value> {
    body["rooms"]["join"][room]["ephemeral"]["events"].as_array()?.iter().find(|e| e["type"] == kind)
}

#[tokio::test]
async fn typing_receipts_unread_counts_and_presence_in_sync() {
    let s = TestServer::start_with(&[("TRELLIS_PRESENCE__IDLE_TIMEOUT_MS", "300")]);
    let alice = s.register("alice", "password1").await;
    let bob = s.register("bob", "password1").await;
    let room = s.create_room(&alice.access_token, json!({ "preset": "public_chat" })).await;
    s.join(&bob.access_token, &room).await;
    let mut a_since = sync(&s, &alice, None, "").await["next_batch"].as_str().unwrap().to_owned();
    let b_since = sync(&s, &bob, None, "").await["next_batch"].as_str().unwrap().to_owned();

    // Typing.
    let r = s
        .put(
            &format!("/_matrix/client/v3/rooms/{room}/typing/@alice:localhost"),
            alice.token(),
            json!({ "typing": true, "timeout": 20000 }),
        )
        .await;
    assert_eq!(r.status, 200);
    let inc = sync(&s, &bob, Some(&b_since), "").await;
    assert_eq!(ephemeral_of(&inc, &room, "m.typing").unwrap()["content"]["user_ids"], json!(["@alice:localhost"]));

    // Unread counts follow messages and mentions, and reset with a receipt.
    s.send_text(&alice.access_token, &room, "hello").await;
    let mention = json!({ "msgtype": "m.text", "body": "bob: look", "m.mentions": { "user_ids": ["@bob:localhost"] } });
    let r = s.put(&format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/m1"), alice.token(), mention).await;
    let last = r.body["event_id"].as_str().unwrap().to_owned();
    let inc = sync(&s, &bob, Some(&b_since), "").await;
    assert_eq!(
        inc["rooms"]["join"][&room]["unread_notifications"],
        json!({ "notification_count": 2, "highlight_count": 1 })
    );
    let b_next = inc["next_batch"].as_str().unwrap().to_owned();
    let r = s.post(&format!("/_matrix/client/v3/rooms/{room}/receipt/m.read/{last}"), bob.token(), json!({})).await;
    assert_eq!(r.status, 200);
    let inc = sync(&s, &bob, Some(&b_next), "").await;
    assert_eq!(
        inc["rooms"]["join"][&room]["unread_notifications"],
        json!({ "notification_count": 0, "highlight_count": 0 })
    );

    // Alice sees Bob's receipt.
    let inc = sync(&s, &alice, Some(&a_since), "").await;
    let receipt = ephemeral_of(&inc, &room, "m.receipt").expect("receipt");
    assert!(receipt["content"][&last]["m.read"]["@bob:localhost"]["ts"].as_u64().is_some());
    a_since = inc["next_batch"].as_str().unwrap().to_owned();

    // Presence: Bob is online while syncing, offline once his last sync is over and idle.
    let inc = sync(&s, &alice, Some(&a_since), "").await;
    let bob_presence: Vec<&Value> =
        inc["presence"]["events"].as_array().unwrap().iter().filter(|e| e["sender"] == "@bob:localhost").collect();
    let mut latest = bob_presence.last().map(|e| e["content"]["presence"].clone());
    let mut since = inc["next_batch"].as_str().unwrap().to_owned();
    if latest != Some(json!("online")) {
        // Bob's presence may already have been reported to Alice before `a_since`.
        let r = s.get("/_matrix/client/v3/presence/@bob:localhost/status", alice.token()).await;
        latest = Some(r.body["presence"].clone());
    }
    assert_eq!(latest, Some(json!("online")));
    let mut went_offline = false;
    for _ in 0..20 {
        let url = format!("/_matrix/client/v3/sync?timeout=2000&since={since}");
        let r = s.get(&url, alice.token()).await;
        since = r.body["next_batch"].as_str().unwrap().to_owned();
        if r.body["presence"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["sender"] == "@bob:localhost" && e["content"]["presence"] == "offline")
        {
            went_offline = true;
            break;
        }
    }
    assert!(went_offline, "Bob goes offline after his last sync ends");
}

#[tokio::test]
async fn to_device_and_device_lists_through_sync() {
    let s = TestServer::start();
    let alice = s.register("alice", "password1").await;
    let bob = s.register("bob", "password1").await;
    let room = s.create_room(&alice.access_token, json!({ "preset": "public_chat" })).await;
    s.join(&bob.access_token, &room).await;
    let mut bob_since = sync(&s, &bob, None, "").await["next_batch"].as_str().unwrap().to_owned();

    // 150 to-device messages: more than one page; none lost, none repeated.
    for i in 0..150 {
        let body = json!({ "messages": { "@bob:localhost": { bob.device_id.clone(): { "n": i } } } });
        let r = s.put(&format!("/_matrix/client/v3/sendToDevice/m.test/t{i}"), alice.token(), body).await;
        assert_eq!(r.status, 200);
    }
    let mut got = Vec::new();
    for _ in 0..10 {
        let inc = sync(&s, &bob, Some(&bob_since), "").await;
        let events = inc["to_device"]["events"].as_array().unwrap();
        got.extend(events.iter().map(|e| e["content"]["n"].as_u64().unwrap()));
        assert!(events.iter().all(|e| e["sender"] == "@alice:localhost" && e["type"] == "m.test"));
        bob_since = inc["next_batch"].as_str().unwrap().to_owned();
        if got.len() >= 150 {
            break;
        }
    }
    assert_eq!(got, (0..150).collect::<Vec<u64>>());
    let again = sync(&s, &bob, Some(&bob_since), "").await;
    assert_eq!(again["to_device"]["events"], json!([]), "acknowledged messages are gone");

    // Alice logs in on a new device: Bob is told her device list changed.
    s.login("alice", "password1").await;
    let inc = sync(&s, &bob, Some(&bob_since), "").await;
    assert!(
        inc["device_lists"]["changed"].as_array().unwrap().contains(&json!("@alice:localhost")),
        "{}",
        inc["device_lists"]
    );
    bob_since = inc["next_batch"].as_str().unwrap().to_owned();
    s.room_post(&alice.access_token, &room, "leave", json!({})).await;
    let inc = sync(&s, &bob, Some(&bob_since), "").await;
    assert!(
        inc["device_lists"]["left"].as_array().unwrap().contains(&json!("@alice:localhost")),
        "{}",
        inc["device_lists"]
    );

    // One-time key counts come with every sync.
    let keys = json!({ "one_time_keys": { "signed_curve25519:AAAA": { "key": "k1", "signatures": {} } } });
    s.post("/_matrix/client/v3/keys/upload", bob.token(), keys).await;
    let inc = sync(&s, &bob, Some(&bob_since), "").await;
    assert_eq!(inc["device_one_time_keys_count"]["signed_curve25519"], json!(1));
}
