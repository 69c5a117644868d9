//! Device management.

use serde_json::json;

use crate::server::{Session, TestServer};

#[tokio::test]
async fn list_rename_and_delete_devices() {
    let s = TestServer::start();
    let a = s.register("alice", "password1").await;
    let r = s
        .post(
            "/_matrix/client/v3/login",
            None,
            json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "alice" }, "password": "password1",
                    "device_id": "PHONE", "initial_device_display_name": "Alice's phone" }),
        )
        .await;
    let phone = Session::from(&r.body);
    assert_eq!(phone.device_id, "PHONE");

    let r = s.get("/_matrix/client/v3/devices", a.token()).await;
    assert_eq!(r.status, 200);
    let devices = r.body["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2);
    for d in devices {
        let obj = d.as_object().unwrap();
        assert!(obj.contains_key("last_seen_ip") && obj.contains_key("last_seen_ts"), "{d}");
        assert_eq!(d["last_seen_ip"], "127.0.0.1");
        assert!(d["last_seen_ts"].as_u64().unwrap() > 1_600_000_000_000);
    }
    let phone_entry = devices.iter().find(|d| d["device_id"] == "PHONE").unwrap();
    assert_eq!(phone_entry["display_name"], "Alice's phone");

    let r = s.put("/_matrix/client/v3/devices/PHONE", a.token(), json!({ "display_name": "Old phone" })).await;
    assert_eq!(r.status, 200);
    let r = s.get("/_matrix/client/v3/devices/PHONE", a.token()).await;
    assert_eq!(r.body["display_name"], "Old phone");
    assert_eq!(r.body["device_id"], "PHONE");
    let r = s.get("/_matrix/client/v3/devices/NOPE", a.token()).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));
    let r = s.put("/_matrix/client/v3/devices/NOPE", a.token(), json!({ "display_name": "x" })).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));

    let r = s.delete("/_matrix/client/v3/devices/PHONE", a.token(), json!({})).await;
    assert_eq!(r.status, 401);
    let auth = json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "alice" }, "password": "password1", "session": r.body["session"] });
    let r = s.delete("/_matrix/client/v3/devices/PHONE", a.token(), json!({ "auth": auth })).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(s.get("/_matrix/client/v3/account/whoami", phone.token()).await.errcode(), "M_UNKNOWN_TOKEN");
    assert_eq!(s.get("/_matrix/client/v3/devices", a.token()).await.body["devices"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn delete_several_devices() {
    let s = TestServer::start();
    let a = s.register("alice", "password1").await;
    let b = Session::from(&s.login("alice", "password1").await.body);
    let c = Session::from(&s.login("alice", "password1").await.body);
    let auth = json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "@alice:localhost" }, "password": "password1" });
    let r = s
        .post(
            "/_matrix/client/v3/delete_devices",
            a.token(),
            json!({ "devices": [b.device_id, c.device_id, "UNKNOWN"], "auth": auth }),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = s.get("/_matrix/client/v3/devices", a.token()).await;
    let ids: Vec<&str> =
        r.body["devices"].as_array().unwrap().iter().map(|d| d["device_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [a.device_id.as_str()]);

    let mallory = s.register("mallory", "password1").await;
    let auth = json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "alice" }, "password": "password1" });
    let r = s
        .post("/_matrix/client/v3/delete_devices", mallory.token(), json!({ "devices": [a.device_id], "auth": auth }))
        .await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "UIA must name the requester");
}
