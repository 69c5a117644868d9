//! The E2EE services against a real (temporary) database: to-device delivery, paging and
//! acknowledgement, claim order and fallback keys, device-list changes as rooms are joined and
//! left and devices come and go.

use std::collections::BTreeMap;

use ruma::to_device::DeviceIdOrAllDevices;
use ruma::{DeviceId, OwnedDeviceId, OwnedUserId, UserId};
use serde_json::{Value, json};

use super::device_keys::{Upload, upload};
use super::one_time_keys::claim;
use super::to_device::{Messages, PAGE, send, to_device_page};
use super::*;
use crate::config::Config;
use crate::error::ErrorKind;
use crate::rooms::create::{CreateRoom, create};
use crate::rooms::membership;
use crate::services::{Services, State};
use crate::users::{accounts, devices, tokens};

fn services() -> (State, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.database.path = dir.path().join("db");
    (Services::new(config).map_err(|e| e.to_string()).unwrap(), dir)
}

/// A local account with the given devices.
fn account(s: &Services, name: &str, devices: &[&str]) -> OwnedUserId {
    let user = UserId::parse(format!("@{name}:localhost")).unwrap();
    accounts::create(&s.db, &user, Default::default()).unwrap();
    for d in devices {
        add_device(s, &user, d);
    }
    user
}

fn add_device(s: &Services, user: &UserId, device: &str) {
    let id: OwnedDeviceId = device.into();
    tokens::create_session(&s.db, user, Some(&id), None, false, s.token_lifetimes(), None).unwrap();
}

fn dev(id: &str) -> &DeviceId {
    id.into()
}

fn to(user: &UserId, target: &str, content: Value) -> Messages {
    let target = DeviceIdOrAllDevices::try_from(target).unwrap();
    BTreeMap::from([(user.to_owned(), BTreeMap::from([(target, content)]))])
}

fn now(s: &Services) -> u64 {
    s.db.stream().committed()
}

fn contents(messages: &[Value]) -> Vec<Value> {
    messages.iter().map(|m| m["content"].clone()).collect()
}

#[test]
fn to_device_is_delivered_once_per_transaction_and_deleted_when_acknowledged() {
    let (s, _dir) = services();
    let alice = account(&s, "alice", &["A1"]);
    let bob = account(&s, "bob", &["B1", "B2"]);
    let from = (alice.as_ref(), dev("A1"));
    let before = now(&s);
    send(&s, from, "m.test", "t1".into(), &to(&bob, "B1", json!({ "n": 1 }))).unwrap();
    send(&s, from, "m.test", "t2".into(), &to(&bob, "*", json!({ "n": 2 }))).unwrap();
    send(&s, from, "m.test", "t1".into(), &to(&bob, "B1", json!({ "n": 3 }))).unwrap(); // a retry
    send(&s, from, "m.test", "t3".into(), &to(&bob, "NOPE", json!({ "n": 4 }))).unwrap();
    let remote = UserId::parse("@carol:elsewhere").unwrap();
    send(&s, from, "m.test", "t4".into(), &to(&remote, "*", json!({ "n": 5 }))).unwrap();
    let upto = now(&s);

    let b1 = to_device_since(&s, &bob, dev("B1"), before, upto).unwrap();
    assert_eq!(b1[0], json!({ "type": "m.test", "sender": "@alice:localhost", "content": { "n": 1 } }));
    assert_eq!(contents(&b1), [json!({ "n": 1 }), json!({ "n": 2 })]);
    assert_eq!(contents(&to_device_since(&s, &bob, dev("B2"), before, upto).unwrap()), [json!({ "n": 2 })]);
    assert!(to_device_since(&s, &alice, dev("A1"), before, upto).unwrap().is_empty());
    assert!(to_device_since(&s, &bob, dev("B1"), upto, upto).unwrap().is_empty());
    assert_eq!(contents(&to_device_since(&s, &bob, dev("B1"), before, before + 1).unwrap()), [json!({ "n": 1 })]);

    ack_to_device(&s, &bob, dev("B1"), upto).unwrap();
    assert!(to_device_since(&s, &bob, dev("B1"), 0, now(&s)).unwrap().is_empty());
    assert_eq!(to_device_since(&s, &bob, dev("B2"), 0, now(&s)).unwrap().len(), 1, "B2 has not acknowledged");

    // Addressed twice in one request (by ID and by `*`): both messages arrive.
    let mut both = to(&bob, "*", json!({ "n": 6 }));
    both.get_mut(&bob).unwrap().insert(DeviceIdOrAllDevices::try_from("B1").unwrap(), json!({ "n": 7 }));
    send(&s, from, "m.test", "t5".into(), &both).unwrap();
    assert_eq!(to_device_since(&s, &bob, dev("B1"), upto, now(&s)).unwrap().len(), 2);

    // Deleting the device drops its inbox.
    devices::delete(&s.db, &bob, &[dev("B2")]).unwrap();
    assert!(to_device_since(&s, &bob, dev("B2"), 0, now(&s)).unwrap().is_empty());
}

#[test]
fn to_device_pages_hold_at_most_100_messages() {
    let (s, _dir) = services();
    let alice = account(&s, "alice", &["A1"]);
    let bob = account(&s, "bob", &["B1"]);
    let before = now(&s);
    for i in 0..150 {
        send(&s, (&alice, dev("A1")), "m.test", format!("p{i}").as_str().into(), &to(&bob, "B1", json!({ "i": i })))
            .unwrap();
    }
    let upto = now(&s);
    let (first, reached) = to_device_page(&s, &bob, dev("B1"), before, upto).unwrap();
    assert_eq!(first.len(), PAGE);
    assert_eq!((first[0]["content"]["i"].clone(), first[99]["content"]["i"].clone()), (json!(0), json!(99)));
    assert!(reached < upto);
    ack_to_device(&s, &bob, dev("B1"), reached).unwrap();
    let (rest, reached) = to_device_page(&s, &bob, dev("B1"), reached, upto).unwrap();
    assert_eq!((rest.len(), rest[0]["content"]["i"].clone(), reached), (50, json!(100), upto));
}

fn device_keys(user: &UserId, device: &str) -> Value {
    json!({
        "user_id": user, "device_id": device,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": { format!("curve25519:{device}"): "curve", format!("ed25519:{device}"): "ed" },
        "signatures": { user.as_str(): { format!("ed25519:{device}"): "sig" } },
    })
}

fn signed(key: &str) -> Value {
    json!({ "key": key, "signatures": { "@alice:localhost": { "ed25519:A1": "sig" } } })
}

fn keys(names: &[&str]) -> Vec<(String, Value)> {
    names.iter().map(|n| (format!("signed_curve25519:{n}"), signed(n))).collect()
}

fn claim_one(s: &Services, user: &UserId, device: &str) -> Option<String> {
    let request = BTreeMap::from([(user.to_owned(), BTreeMap::from([(device.into(), "signed_curve25519".into())]))]);
    let out = claim(s, &request).unwrap();
    let keys = out[user.as_str()][device].as_object()?;
    keys.keys().next().cloned()
}

#[test]
fn claims_hand_out_each_one_time_key_once_then_the_fallback_key() {
    let (s, _dir) = services();
    let alice = account(&s, "alice", &["A1"]);
    let up = |otks: &[&str], fallback: &[&str]| {
        let up = Upload { one_time_keys: keys(otks), fallback_keys: keys(fallback), ..Default::default() };
        upload(&s, &alice, dev("A1"), up)
    };
    assert_eq!(up(&["K1", "K2"], &["F1"]).unwrap()["signed_curve25519"], 2);
    assert_eq!(up(&["K3"], &[]).unwrap()["signed_curve25519"], 3);
    assert_eq!(up(&["K3"], &[]).unwrap()["signed_curve25519"], 3, "identical re-upload is a no-op");
    let clash = Upload { one_time_keys: vec![("signed_curve25519:K3".into(), signed("other"))], ..Default::default() };
    assert_eq!(upload(&s, &alice, dev("A1"), clash).unwrap_err().kind(), ErrorKind::InvalidParam);
    assert_eq!(unused_fallback_key_types(&s, &alice, dev("A1")).unwrap(), ["signed_curve25519"]);

    let mut first_two = vec![claim_one(&s, &alice, "A1").unwrap(), claim_one(&s, &alice, "A1").unwrap()];
    first_two.sort();
    assert_eq!(first_two, ["signed_curve25519:K1", "signed_curve25519:K2"], "the older upload goes first");
    assert_eq!(claim_one(&s, &alice, "A1").as_deref(), Some("signed_curve25519:K3"));
    assert_eq!(one_time_key_counts(&s, &alice, dev("A1")).unwrap(), BTreeMap::from([("signed_curve25519".into(), 0)]));
    assert_eq!(claim_one(&s, &alice, "A1").as_deref(), Some("signed_curve25519:F1"));
    assert!(unused_fallback_key_types(&s, &alice, dev("A1")).unwrap().is_empty());
    assert_eq!(claim_one(&s, &alice, "A1").as_deref(), Some("signed_curve25519:F1"), "fallback keys are reused");
    assert_eq!(claim_one(&s, &alice, "NOPE"), None);

    up(&[], &["F1"]).unwrap();
    assert!(unused_fallback_key_types(&s, &alice, dev("A1")).unwrap().is_empty(), "same key: still used");
    up(&[], &["F2"]).unwrap();
    assert_eq!(unused_fallback_key_types(&s, &alice, dev("A1")).unwrap(), ["signed_curve25519"]);
    let two = Upload { fallback_keys: keys(&["F3", "F4"]), ..Default::default() };
    assert_eq!(upload(&s, &alice, dev("A1"), two).unwrap_err().kind(), ErrorKind::InvalidParam);
}

fn ids(users: &[&OwnedUserId]) -> Vec<OwnedUserId> {
    let mut v: Vec<OwnedUserId> = users.iter().map(|u| (*u).clone()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn device_list_changes_follow_devices_and_shared_rooms() {
    let (s, _dir) = services();
    let alice = account(&s, "alice", &["A1"]);
    let bob = account(&s, "bob", &["B1"]);
    let carol = account(&s, "carol", &["C1"]);
    let room =
        create(&s, &alice, CreateRoom { preset: Some("public_chat".into()), ..Default::default() }).await.unwrap();
    let p0 = now(&s);
    membership::join(&s, &room, &bob, None).await.unwrap();
    let p1 = now(&s);
    assert_eq!(device_list_changes(&s, &alice, p0, p1).unwrap(), (ids(&[&bob]), vec![]), "bob now shares a room");
    assert_eq!(device_list_changes(&s, &bob, p0, p1).unwrap(), (ids(&[&alice]), vec![]));

    let with_keys = |u: &UserId, d: &str| Upload { device_keys: Some(device_keys(u, d)), ..Default::default() };
    upload(&s, &bob, dev("B1"), with_keys(&bob, "B1")).unwrap();
    upload(&s, &carol, dev("C1"), with_keys(&carol, "C1")).unwrap();
    let p2 = now(&s);
    assert_eq!(device_list_changes(&s, &alice, p1, p2).unwrap(), (ids(&[&bob]), vec![]), "carol shares no room");
    assert_eq!(device_list_changes(&s, &carol, p1, p2).unwrap(), (ids(&[&carol]), vec![]), "own devices");
    upload(&s, &bob, dev("B1"), with_keys(&bob, "B1")).unwrap();
    assert_eq!(device_list_changes(&s, &alice, p2, now(&s)).unwrap(), (vec![], vec![]), "same keys: no change");

    let bad = Upload { device_keys: Some(device_keys(&bob, "B1")), ..Default::default() };
    assert_eq!(upload(&s, &alice, dev("A1"), bad).unwrap_err().kind(), ErrorKind::InvalidParam);
    let other_device = Upload { device_keys: Some(device_keys(&alice, "A2")), ..Default::default() };
    assert_eq!(upload(&s, &alice, dev("A1"), other_device).unwrap_err().kind(), ErrorKind::InvalidParam);

    let p3 = now(&s);
    add_device(&s, &bob, "B2");
    assert_eq!(device_list_changes(&s, &alice, p3, now(&s)).unwrap(), (ids(&[&bob]), vec![]), "a new device");
    let p4 = now(&s);
    add_device(&s, &bob, "B2");
    assert_eq!(device_list_changes(&s, &alice, p4, now(&s)).unwrap(), (vec![], vec![]), "a new login, same device");
    devices::delete(&s.db, &bob, &[dev("B2")]).unwrap();
    assert_eq!(device_list_changes(&s, &alice, p4, now(&s)).unwrap(), (ids(&[&bob]), vec![]), "a deleted device");

    let p5 = now(&s);
    membership::leave(&s, &room, &bob, None).await.unwrap();
    let p6 = now(&s);
    assert_eq!(device_list_changes(&s, &alice, p5, p6).unwrap(), (vec![], ids(&[&bob])));
    assert_eq!(device_list_changes(&s, &bob, p5, p6).unwrap(), (vec![], ids(&[&alice])));
    let empty = Upload { device_keys: Some(json!({})), ..Default::default() };
    assert_eq!(upload(&s, &bob, dev("B1"), empty).unwrap_err().kind(), ErrorKind::BadJson);
    let mut changed = device_keys(&bob, "B1");
    changed["keys"]["curve25519:B1"] = json!("new");
    upload(&s, &bob, dev("B1"), Upload { device_keys: Some(changed), ..Default::default() }).unwrap();
    assert_eq!(device_list_changes(&s, &alice, p6, now(&s)).unwrap(), (vec![], vec![]), "bob shares no room now");
    assert_eq!(device_list_changes(&s, &alice, p6, p6).unwrap(), (vec![], vec![]));
}
