//! Device display names stay on their server unless `federation.allow_device_name_lookup` is on
//! (Synapse's default too): `/user/devices` and `/user/keys/query` answer without them, while the
//! owner's own `/keys/query` still shows them.

use reqwest::Method;
use serde_json::{Value, json};

use super::{Fed, Pki, x_matrix};
use crate::server::{Resp, urlencode};

/// `GET /user/devices` and `POST /user/keys/query` from `a` to `b` for `user`.
async fn ask(a: &mut Fed, b: &Fed, user: &str) -> (Resp, Resp) {
    let key = a.signing_key();
    let path = format!("/_matrix/federation/v1/user/devices/{}", urlencode(user));
    let auth = x_matrix(&key, &a.name, &b.name, "GET", &path, None);
    let devices = b.request(Method::GET, &path, Some(&auth), None).await;
    let path = "/_matrix/federation/v1/user/keys/query";
    let body = json!({ "device_keys": { user: [] } });
    let auth = x_matrix(&key, &a.name, &b.name, "POST", path, Some(&body));
    let keys = b.request(Method::POST, path, Some(&auth), Some(&body)).await;
    (devices, keys)
}

/// Bob on `b` with one device named "Bob's work laptop" and device keys; returns his user ID.
async fn bob_with_a_named_device(b: &Fed) -> (String, String, String) {
    let bob = b.server.register("bob", "password-bob").await;
    let dev = bob.device_id.clone();
    let r = b
        .server
        .put(&format!("/_matrix/client/v3/devices/{dev}"), bob.token(), json!({ "display_name": "Bob's work laptop" }))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let device_keys = json!({
        "user_id": bob.user_id, "device_id": dev,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": { format!("curve25519:{dev}"): "curve-key", format!("ed25519:{dev}"): "ed-key" },
        "signatures": { bob.user_id.as_str(): { format!("ed25519:{dev}"): "sig" } },
    });
    let r = b.server.post("/_matrix/client/v3/keys/upload", bob.token(), json!({ "device_keys": device_keys })).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    (bob.user_id.clone(), dev, bob.access_token.clone())
}

fn names(devices: &Resp, keys: &Resp, user: &str, dev: &str) -> (Value, Value) {
    assert_eq!((devices.status, keys.status), (200, 200), "{:?} {:?}", devices.body, keys.body);
    assert_eq!(devices.body["devices"][0]["device_id"], dev);
    assert_eq!(keys.body["device_keys"][user][dev]["device_id"], dev);
    (
        devices.body["devices"][0]["device_display_name"].clone(),
        keys.body["device_keys"][user][dev]["unsigned"]["device_display_name"].clone(),
    )
}

#[tokio::test]
async fn device_names_are_not_shown_to_other_servers_by_default() {
    let pki = Pki::new();
    let mut a = Fed::start(&pki);
    let b = Fed::start(&pki);
    let (bob, dev, token) = bob_with_a_named_device(&b).await;
    let (devices, keys) = ask(&mut a, &b, &bob).await;
    assert_eq!(names(&devices, &keys, &bob, &dev), (Value::Null, Value::Null));
    // Bob's own server still tells him (and its other local users) the name.
    let r = b.server.post("/_matrix/client/v3/keys/query", Some(&token), json!({ "device_keys": { &bob: [] } })).await;
    assert_eq!(r.body["device_keys"][&bob][&dev]["unsigned"]["device_display_name"], "Bob's work laptop");
}

#[tokio::test]
async fn device_names_are_shown_when_allowed() {
    let pki = Pki::new();
    let mut a = Fed::start(&pki);
    let b = Fed::start_with(
        &pki,
        &[
            ("TRELLIS_FEDERATION__ALLOW_IP_RANGES", r#"["127.0.0.0/8"]"#),
            ("TRELLIS_FEDERATION__ALLOW_DEVICE_NAME_LOOKUP", "true"),
        ],
    );
    let (bob, dev, _) = bob_with_a_named_device(&b).await;
    let (devices, keys) = ask(&mut a, &b, &bob).await;
    assert_eq!(names(&devices, &keys, &bob, &dev), (json!("Bob's work laptop"), json!("Bob's work laptop")));
}
