//! Incoming EDUs at service level: a room with a local user and a user of `remote.test` (its
//! join authored locally, as joins over federation do not exist yet), EDUs handed to
//! [`handle`] as the `/send` handler would, and what local users' `/sync` reads afterwards.

use std::time::Duration;

use ruma::events::StateEventType;
use ruma::{OwnedRoomId, OwnedUserId, ServerName, UserId};
use serde_json::{Value, json};

use super::handle;
use crate::config::Config;
use crate::ephemeral::{presence_since, receipts_since, typing_since};
use crate::keys::{device_list_changes, to_device_since};
use crate::rooms::append::send;
use crate::rooms::build::NewEvent;
use crate::rooms::create::{CreateRoom, create};
use crate::rooms::membership;
use crate::services::{Services, State};
use crate::storage::catalog::REMOTE_DEVICE_LISTS_STALE;

struct Setup {
    s: State,
    _dir: tempfile::TempDir,
    room: OwnedRoomId,
    alice: OwnedUserId,
    bob: OwnedUserId,
}

fn user(id: &str) -> OwnedUserId {
    UserId::parse(id).unwrap()
}

/// Alice (local, with device `ADEV`) and `@bob:remote.test` in a public room.
async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.database.path = dir.path().join("db");
    let s = Services::new(config).map_err(|e| e.to_string()).unwrap();
    let (alice, bob) = (user("@alice:localhost"), user("@bob:remote.test"));
    crate::users::accounts::create(&s.db, &alice, Default::default()).unwrap();
    let device: ruma::OwnedDeviceId = "ADEV".into();
    crate::users::tokens::create_session(&s.db, &alice, Some(&device), None, false, s.token_lifetimes(), None).unwrap();
    let room =
        create(&s, &alice, CreateRoom { preset: Some("public_chat".into()), ..Default::default() }).await.unwrap();
    membership::join(&s, &room, &bob, None).await.unwrap();
    Setup { s, _dir: dir, room, alice, bob }
}

fn remote() -> &'static ServerName {
    <&ServerName>::try_from("remote.test").unwrap()
}

fn evil() -> &'static ServerName {
    <&ServerName>::try_from("evil.test").unwrap()
}

fn typing_users(t: &Setup) -> Value {
    typing_since(&t.s, &t.room, 0).map_or(json!([]), |e| e["content"]["user_ids"].clone())
}

fn committed(s: &Services) -> u64 {
    s.db.stream().committed()
}

#[tokio::test(flavor = "multi_thread")]
async fn typing_from_the_user_s_server_shows_locally_and_forged_typing_does_not() {
    let t = setup().await;
    let typing = |user: &str, typing: bool| json!({ "edu_type": "m.typing", "content": { "room_id": t.room, "user_id": user, "typing": typing } });
    handle(&t.s, evil(), typing(t.bob.as_str(), true)).await.unwrap();
    assert_eq!(typing_users(&t), json!([]), "evil.test cannot speak for bob");
    handle(&t.s, remote(), typing("@carol:remote.test", true)).await.unwrap();
    assert_eq!(typing_users(&t), json!([]), "carol is not in the room");
    handle(&t.s, remote(), typing(t.alice.as_str(), true)).await.unwrap();
    assert_eq!(typing_users(&t), json!([]), "remote.test cannot speak for a local user");

    handle(&t.s, remote(), typing(t.bob.as_str(), true)).await.unwrap();
    assert_eq!(typing_users(&t), json!([t.bob]));
    handle(&t.s, remote(), typing(t.bob.as_str(), false)).await.unwrap();
    assert_eq!(typing_users(&t), json!([]));
    assert_eq!(super::REMOTE_TYPING_TIMEOUT, Duration::from_secs(60));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remote_receipt_is_stored_like_a_local_one() {
    let t = setup().await;
    let event = send(&t.s, &t.room, &t.alice, NewEvent::message("m.room.message", json!({ "body": "hi" })), None)
        .await
        .unwrap();
    let before = committed(&t.s);
    let receipt = |origin_user: &OwnedUserId| {
        json!({ "edu_type": "m.receipt", "content": { t.room.as_str(): { "m.read": {
            origin_user.as_str(): { "event_ids": [event], "data": { "ts": 1234 } }
        } } } })
    };
    handle(&t.s, evil(), receipt(&t.bob)).await.unwrap();
    assert_eq!(receipts_since(&t.s, &t.room, &t.alice, before, committed(&t.s)).unwrap(), None, "forged");
    handle(&t.s, remote(), receipt(&t.bob)).await.unwrap();
    let seen = receipts_since(&t.s, &t.room, &t.alice, before, committed(&t.s)).unwrap().unwrap();
    assert_eq!(seen["type"], "m.receipt");
    assert!(seen["content"][event.as_str()]["m.read"][t.bob.as_str()]["ts"].is_u64(), "{seen}");
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_presence_is_visible_to_local_users_sharing_a_room() {
    let t = setup().await;
    let before = committed(&t.s);
    let presence = |user: &str| {
        json!({ "edu_type": "m.presence", "content": { "push": [
            { "user_id": user, "presence": "online", "last_active_ago": 5000, "currently_active": true, "status_msg": "away from keyboard" }
        ] } })
    };
    handle(&t.s, evil(), presence(t.bob.as_str())).await.unwrap();
    handle(&t.s, remote(), presence("@stranger:remote.test")).await.unwrap();
    assert_eq!(presence_since(&t.s, &t.alice, before, committed(&t.s)).unwrap(), Vec::<Value>::new());
    handle(&t.s, remote(), presence(t.bob.as_str())).await.unwrap();
    let events = presence_since(&t.s, &t.alice, before, committed(&t.s)).unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["sender"], t.bob.as_str());
    assert_eq!(events[0]["content"]["presence"], "online");
    assert_eq!(events[0]["content"]["status_msg"], "away from keyboard");
    assert!(events[0]["content"]["last_active_ago"].as_u64().unwrap() >= 5000);
}

#[tokio::test(flavor = "multi_thread")]
async fn to_device_is_delivered_once_per_message_id_and_only_from_the_sender_s_server() {
    let t = setup().await;
    let before = committed(&t.s);
    let message = |message_id: &str, device: &str| {
        json!({ "edu_type": "m.direct_to_device", "content": {
            "sender": t.bob, "type": "m.room_key_request", "message_id": message_id,
            "messages": { t.alice.as_str(): { device: { "n": message_id } }, "@x:elsewhere.test": { "*": {} } }
        } })
    };
    handle(&t.s, remote(), message("m1", "ADEV")).await.unwrap();
    handle(&t.s, remote(), message("m1", "ADEV")).await.unwrap();
    handle(&t.s, remote(), message("m2", "*")).await.unwrap();
    handle(&t.s, evil(), message("m3", "ADEV")).await.unwrap();
    let inbox = to_device_since(&t.s, &t.alice, "ADEV".into(), before, committed(&t.s)).unwrap();
    let ids: Vec<&Value> = inbox.iter().map(|m| &m["content"]["n"]).collect();
    assert_eq!(ids, [&json!("m1"), &json!("m2")], "once each, `*` reaches the device, evil.test is refused");
    assert_eq!(inbox[0]["sender"], t.bob.as_str());
    assert_eq!(inbox[0]["type"], "m.room_key_request");
}

#[tokio::test(flavor = "multi_thread")]
async fn device_list_and_signing_key_updates_mark_the_remote_list_changed() {
    let t = setup().await;
    let before = committed(&t.s);
    let update = json!({ "edu_type": "m.device_list_update", "content": {
        "user_id": t.bob, "device_id": "BDEV", "stream_id": 3, "prev_id": [2], "deleted": false
    } });
    let mut forged = update.clone();
    forged["content"]["user_id"] = json!("@mallory:evil.test");
    handle(&t.s, remote(), forged).await.unwrap();
    handle(&t.s, evil(), update.clone()).await.unwrap();
    assert_eq!(device_list_changes(&t.s, &t.alice, before, committed(&t.s)).unwrap().0, Vec::<OwnedUserId>::new());
    handle(&t.s, remote(), update).await.unwrap();
    let (changed, left) = device_list_changes(&t.s, &t.alice, before, committed(&t.s)).unwrap();
    assert_eq!((changed, left), (vec![t.bob.clone()], vec![]));
    assert_eq!(t.s.db.get(REMOTE_DEVICE_LISTS_STALE, &t.bob).unwrap(), Some(json!(true)));

    let middle = committed(&t.s);
    let signing = json!({ "edu_type": "m.signing_key_update", "content": { "user_id": t.bob } });
    handle(&t.s, remote(), signing).await.unwrap();
    assert_eq!(device_list_changes(&t.s, &t.alice, middle, committed(&t.s)).unwrap().0, vec![t.bob.clone()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_and_malformed_edus_are_ignored() {
    let t = setup().await;
    let before = committed(&t.s);
    handle(&t.s, remote(), json!({ "edu_type": "org.example.custom", "content": { "x": 1 } })).await.unwrap();
    handle(&t.s, remote(), json!({ "edu_type": "m.typing", "content": { "room_id": 5 } })).await.unwrap();
    handle(&t.s, remote(), json!("not an object")).await.unwrap();
    assert_eq!(committed(&t.s), before, "nothing changed");
}

#[tokio::test(flavor = "multi_thread")]
async fn typing_and_receipts_from_a_server_the_acl_denies_are_ignored() {
    let t = setup().await;
    let acl = json!({ "allow": ["*"], "deny": ["remote.test"], "allow_ip_literals": false });
    send(&t.s, &t.room, &t.alice, NewEvent::state(StateEventType::RoomServerAcl, "", acl), None).await.unwrap();
    let event = send(&t.s, &t.room, &t.alice, NewEvent::message("m.room.message", json!({ "body": "hi" })), None)
        .await
        .unwrap();
    let before = committed(&t.s);
    let typing = json!({ "edu_type": "m.typing", "content": { "room_id": t.room, "user_id": t.bob, "typing": true } });
    handle(&t.s, remote(), typing).await.unwrap();
    assert_eq!(typing_users(&t), json!([]), "typing from a denied server");
    let receipt = json!({ "edu_type": "m.receipt", "content": { t.room.as_str(): { "m.read": {
        t.bob.as_str(): { "event_ids": [event], "data": { "ts": 1234 } }
    } } } });
    handle(&t.s, remote(), receipt).await.unwrap();
    assert_eq!(
        receipts_since(&t.s, &t.room, &t.alice, before, committed(&t.s)).unwrap(),
        None,
        "receipt from a denied server"
    );
}
