//! End-to-end encryption keys and send-to-device messages (spec: "End-to-End Encryption",
//! "Send-to-Device messaging"). Until `/sync` serves them, delivered to-device messages are read
//! back through the library on the stopped server's database.

use serde_json::{Value, json};
use trellis::config::Config;
use trellis::services::Services;

use crate::server::{Session, TestServer};

const PW: &str = "password1";

/// A device-keys upload body with fake keys and signature (the server stores, not checks, them).
pub(crate) fn device_keys(user: &str, device: &str) -> Value {
    json!({
        "user_id": user,
        "device_id": device,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": { format!("curve25519:{device}"): format!("curve-{device}"), format!("ed25519:{device}"): format!("ed-{device}") },
        "signatures": { user: { format!("ed25519:{device}"): format!("sig-{device}") } },
    })
}

fn key(name: &str) -> Value {
    json!({ "key": format!("key-{name}"), "signatures": { "@alice:localhost": { "ed25519:A": "sig" } } })
}

async fn login_as(s: &TestServer, user: &str, device: &str, name: Option<&str>) -> Session {
    let mut body = json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": user },
                           "password": PW, "device_id": device });
    if let Some(n) = name {
        body["initial_device_display_name"] = json!(n);
    }
    let r = s.post("/_matrix/client/v3/login", None, body).await;
    assert_eq!(r.status, 200, "login: {:?}", r.body);
    Session::from(&r.body)
}

async fn claim(s: &TestServer, by: &Session, user: &str, device: &str) -> Value {
    let body = json!({ "one_time_keys": { user: { device: "signed_curve25519" } } });
    let r = s.post("/_matrix/client/v3/keys/claim", by.token(), body).await;
    assert_eq!(r.status, 200, "claim: {:?}", r.body);
    assert_eq!(r.body["failures"], json!({}));
    r.body["one_time_keys"].clone()
}

#[tokio::test]
async fn uploaded_keys_are_queried_and_claimed_once() {
    let s = TestServer::start();
    s.register("alice", PW).await;
    let phone = login_as(&s, "alice", "PHONE", Some("Alice's phone")).await;
    let laptop = login_as(&s, "alice", "LAPTOP", None).await;
    let bob = s.register("bob", PW).await;
    let upload = "/_matrix/client/v3/keys/upload";

    let body = json!({
        "device_keys": device_keys("@alice:localhost", "PHONE"),
        "one_time_keys": { "signed_curve25519:K1": key("K1"), "signed_curve25519:K2": key("K2") },
        "fallback_keys": { "signed_curve25519:F1": key("F1") },
    });
    let r = s.post(upload, phone.token(), body).await;
    assert_eq!((r.status, r.body.clone()), (200, json!({ "one_time_key_counts": { "signed_curve25519": 2 } })));
    let r = s.post(upload, laptop.token(), json!({ "device_keys": device_keys("@alice:localhost", "LAPTOP") })).await;
    assert_eq!((r.status, r.body.clone()), (200, json!({ "one_time_key_counts": { "signed_curve25519": 0 } })));

    let query = "/_matrix/client/v3/keys/query";
    let r = s.post(query, bob.token(), json!({ "device_keys": { "@alice:localhost": [] } })).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let mut phone_keys = device_keys("@alice:localhost", "PHONE");
    phone_keys["unsigned"] = json!({ "device_display_name": "Alice's phone" });
    let mut laptop_keys = device_keys("@alice:localhost", "LAPTOP");
    laptop_keys["unsigned"] = json!({});
    let expected = json!({ "@alice:localhost": { "PHONE": phone_keys, "LAPTOP": laptop_keys } });
    assert_eq!(r.body, json!({ "device_keys": expected, "failures": {} }));
    let r = s
        .post(query, bob.token(), json!({ "device_keys": { "@alice:localhost": ["LAPTOP", "NOPE"], "@nobody:localhost": [], "@x:elsewhere": [] } }))
        .await;
    let expected = json!({ "@alice:localhost": { "LAPTOP": laptop_keys }, "@nobody:localhost": {} });
    assert_eq!(r.body["device_keys"], expected);
    let failures: Vec<_> = r.body["failures"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(failures, ["elsewhere"], "a server that cannot be reached: {:?}", r.body);

    // One-time keys go once each, then the fallback key, again and again.
    let mut got = Vec::new();
    for _ in 0..2 {
        let keys = claim(&s, &bob, "@alice:localhost", "PHONE").await;
        let (name, value) = keys["@alice:localhost"]["PHONE"].as_object().unwrap().iter().next().unwrap();
        assert_eq!(value, &key(&name["signed_curve25519:".len()..]));
        got.push(name.clone());
    }
    got.sort();
    assert_eq!(got, ["signed_curve25519:K1", "signed_curve25519:K2"]);
    let r = s.post(upload, phone.token(), json!({})).await;
    assert_eq!(r.body, json!({ "one_time_key_counts": { "signed_curve25519": 0 } }), "counts went down");
    for _ in 0..2 {
        let keys = claim(&s, &bob, "@alice:localhost", "PHONE").await;
        assert_eq!(keys, json!({ "@alice:localhost": { "PHONE": { "signed_curve25519:F1": key("F1") } } }));
    }
    assert_eq!(claim(&s, &bob, "@alice:localhost", "LAPTOP").await, json!({}));
    assert_eq!(claim(&s, &bob, "@nobody:localhost", "X").await, json!({}));
}

#[tokio::test]
async fn bad_uploads_get_the_spec_errors() {
    let s = TestServer::start();
    let alice = s.register("alice", PW).await;
    s.register("bob", PW).await;
    let upload = "/_matrix/client/v3/keys/upload";
    let dev = alice.device_id.as_str();
    for (keys, why) in [
        (device_keys("@bob:localhost", dev), "another user"),
        (device_keys("@alice:localhost", "OTHER"), "another device"),
    ] {
        let r = s.post(upload, alice.token(), json!({ "device_keys": keys })).await;
        assert_eq!((r.status, r.errcode()), (400, "M_INVALID_PARAM"), "{why}: {:?}", r.body);
    }
    let r = s.post(upload, alice.token(), json!({ "device_keys": { "user_id": "@alice:localhost" } })).await;
    assert_eq!((r.status, r.errcode()), (400, "M_BAD_JSON"), "{:?}", r.body);
    let r = s.post(upload, alice.token(), json!({ "one_time_keys": { "signed_curve25519:K1": 42 } })).await;
    assert_eq!((r.status, r.errcode()), (400, "M_BAD_JSON"), "{:?}", r.body);
    let r = s.post(upload, alice.token(), json!({ "one_time_keys": { "signed_curve25519:K1": key("K1") } })).await;
    assert_eq!(r.status, 200);
    let r = s.post(upload, alice.token(), json!({ "one_time_keys": { "signed_curve25519:K1": key("other") } })).await;
    assert_eq!((r.status, r.errcode()), (400, "M_INVALID_PARAM"), "a different key under a used ID: {:?}", r.body);
    let two = json!({ "fallback_keys": { "signed_curve25519:F1": key("F1"), "signed_curve25519:F2": key("F2") } });
    let r = s.post(upload, alice.token(), two).await;
    assert_eq!((r.status, r.errcode()), (400, "M_INVALID_PARAM"), "two fallback keys: {:?}", r.body);
    let r = s.post(upload, None, json!({})).await;
    assert_eq!((r.status, r.errcode()), (401, "M_MISSING_TOKEN"));
    let r = s.post("/_matrix/client/v3/keys/claim", alice.token(), json!({})).await;
    assert_eq!((r.status, r.errcode()), (400, "M_MISSING_PARAM"), "{:?}", r.body);
    let r = s.get("/_matrix/client/v3/keys/changes?from=s0&to=nonsense", alice.token()).await;
    assert_eq!((r.status, r.errcode()), (400, "M_INVALID_PARAM"), "{:?}", r.body);
    let r = s.get("/_matrix/client/v3/keys/changes?from=s0", alice.token()).await;
    assert_eq!((r.status, r.errcode()), (400, "M_MISSING_PARAM"), "{:?}", r.body);
}

/// The stream position of the room's latest event, from a `/messages` token `t<depth>_<pos>`.
async fn position(s: &TestServer, token: &str, room: &str) -> u64 {
    s.send_text(token, room, "marker").await;
    let r = s.get(&format!("/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=1"), Some(token)).await;
    let start = r.body["start"].as_str().unwrap();
    start.rsplit('_').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn key_changes_report_new_devices_and_departures() {
    let s = TestServer::start();
    let alice = s.register("alice", PW).await;
    let bob = s.register("bob", PW).await;
    let room = s.create_room(&alice.access_token, json!({ "preset": "public_chat" })).await;
    assert_eq!(s.join(&bob.access_token, &room).await.status, 200);
    let changes = |from: u64| format!("/_matrix/client/v3/keys/changes?from=s{from}&to=s{}", u64::MAX);

    let before = position(&s, &alice.access_token, &room).await;
    let r = s.get(&changes(before), alice.token()).await;
    assert_eq!((r.status, r.body.clone()), (200, json!({ "changed": [], "left": [] })));
    login_as(&s, "bob", "TABLET", None).await;
    let r = s.get(&changes(before), alice.token()).await;
    assert_eq!(r.body, json!({ "changed": ["@bob:localhost"], "left": [] }), "bob added a device");
    let r = s.get(&format!("/_matrix/client/v3/keys/changes?from={before}&to=s{before}"), alice.token()).await;
    assert_eq!(r.body, json!({ "changed": [], "left": [] }), "an empty window (bare numbers are tokens too)");

    let after = position(&s, &alice.access_token, &room).await;
    let r = s.get(&changes(after), alice.token()).await;
    assert_eq!(r.body, json!({ "changed": [], "left": [] }));
    assert_eq!(s.room_post(&bob.access_token, &room, "leave", json!({})).await.status, 200);
    let r = s.get(&changes(after), alice.token()).await;
    assert_eq!(r.body, json!({ "changed": [], "left": ["@bob:localhost"] }), "bob left the only shared room");
}

#[tokio::test]
async fn to_device_messages_reach_one_or_all_devices_once() {
    let mut s = TestServer::start();
    let alice = s.register("alice", PW).await;
    s.register("bob", PW).await;
    login_as(&s, "bob", "B1", None).await;
    login_as(&s, "bob", "B2", None).await;
    let send = |txn: &str| format!("/_matrix/client/v3/sendToDevice/m.room_key_request/{txn}");
    let one = json!({ "messages": { "@bob:localhost": { "B1": { "n": 1 } } } });
    assert_eq!(s.put(&send("t1"), alice.token(), one).await.status, 200);
    let all = json!({ "messages": { "@bob:localhost": { "*": { "n": 2 } }, "@carol:elsewhere": { "*": { "n": 9 } } } });
    assert_eq!(s.put(&send("t2"), alice.token(), all).await.status, 200);
    let retry = json!({ "messages": { "@bob:localhost": { "B1": { "n": 3 } } } });
    assert_eq!(s.put(&send("t1"), alice.token(), retry).await.status, 200, "a retried transaction");
    let r = s.put(&send("t4"), alice.token(), json!({ "messages": { "@bob:localhost": { "B1": "text" } } })).await;
    assert_eq!((r.status, r.errcode()), (400, "M_BAD_JSON"), "{:?}", r.body);
    let r = s.put(&send("t5"), alice.token(), json!({})).await;
    assert_eq!((r.status, r.errcode()), (400, "M_MISSING_PARAM"), "{:?}", r.body);
    s.stop();

    let mut config = Config::default();
    config.database.path = s.data_dir().join("db");
    let services = Services::new(config).map_err(|e| e.to_string()).unwrap();
    let bob = ruma::UserId::parse("@bob:localhost").unwrap();
    let upto = services.db.stream().committed();
    let inbox = |device: &str| trellis::keys::to_device_since(&services, &bob, device.into(), 0, upto).unwrap();
    let message = |n: u64| json!({ "type": "m.room_key_request", "sender": alice.user_id, "content": { "n": n } });
    assert_eq!(inbox("B1"), [message(1), message(2)]);
    assert_eq!(inbox("B2"), [message(2)]);
    trellis::keys::ack_to_device(&services, &bob, "B1".into(), upto).unwrap();
    assert!(inbox("B1").is_empty());
}

/// `device_lists.changed` of an incremental `/sync` by `who` since `since`, and its `next_batch`.
async fn synced_changes(s: &TestServer, who: &Session, since: &str) -> (Value, String) {
    let r = s.get(&format!("/_matrix/client/v3/sync?since={since}&timeout=0"), who.token()).await;
    assert_eq!(r.status, 200, "sync: {:?}", r.body);
    (r.body["device_lists"]["changed"].clone(), r.body["next_batch"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn device_renames_are_device_list_changes() {
    let s = TestServer::start();
    let alice = s.register("alice", PW).await;
    s.register("bob", PW).await;
    let bob = login_as(&s, "bob", "PHONE", Some("Phone")).await;
    let room = s.create_room(&alice.access_token, json!({ "preset": "public_chat" })).await;
    assert_eq!(s.join(&bob.access_token, &room).await.status, 200);
    let changes = |from: &str| format!("/_matrix/client/v3/keys/changes?from={from}&to=s{}", u64::MAX);
    let r = s.get("/_matrix/client/v3/sync?timeout=0", alice.token()).await;
    let mut since = r.body["next_batch"].as_str().unwrap().to_owned();

    // A rename through `PUT /devices/{deviceId}` changes what `/keys/query` says...
    let r = s.put("/_matrix/client/v3/devices/PHONE", bob.token(), json!({ "display_name": "Old phone" })).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // ...so alice is told bob's device list changed, in /sync and /keys/changes.
    let (changed, next) = synced_changes(&s, &alice, &since).await;
    assert_eq!(changed, json!(["@bob:localhost"]), "the rename is in device_lists.changed");
    let r = s.get(&changes(&since), alice.token()).await;
    assert_eq!(r.body, json!({ "changed": ["@bob:localhost"], "left": [] }));
    since = next;

    // The same name again changes nothing.
    let r = s.put("/_matrix/client/v3/devices/PHONE", bob.token(), json!({ "display_name": "Old phone" })).await;
    assert_eq!(r.status, 200);
    let (changed, next) = synced_changes(&s, &alice, &since).await;
    assert_eq!(changed, json!([]), "no change, no entry");
    since = next;

    // Logging in again on the same device with another name renames it too.
    let bob = login_as(&s, "bob", "PHONE", Some("New phone")).await;
    let r = s.get("/_matrix/client/v3/devices/PHONE", bob.token()).await;
    assert_eq!(r.body["display_name"], "New phone");
    let (changed, next) = synced_changes(&s, &alice, &since).await;
    assert_eq!(changed, json!(["@bob:localhost"]), "a login renaming its device");
    since = next;

    // A new device and a deleted one are changes as well.
    login_as(&s, "bob", "LAPTOP", None).await;
    let (changed, next) = synced_changes(&s, &alice, &since).await;
    assert_eq!(changed, json!(["@bob:localhost"]), "the new device");
    since = next;
    let auth =
        json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "bob" }, "password": PW });
    let r =
        s.post("/_matrix/client/v3/delete_devices", bob.token(), json!({ "devices": ["LAPTOP"], "auth": auth })).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let (changed, _) = synced_changes(&s, &alice, &since).await;
    assert_eq!(changed, json!(["@bob:localhost"]), "the deletion");
}
