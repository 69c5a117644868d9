//! `POST /keys/query` and `POST /keys/claim` for users of another server, between two real
//! Trellis servers: alice on A gets bob's (on B) self-signed device keys and his one-time keys,
//! each once; forged device keys are dropped; an unreachable server is listed in `failures`.

use ruma::CanonicalJsonObject;
use ruma::serde::Base64;
use ruma::signatures::{Ed25519KeyPair, sign_json};
use serde_json::{Value, json};

use super::join::Pair;
use super::verify_signature;

/// Device keys for `user`'s `device`, signed by a fresh ed25519 key of the device.
fn signed_device_keys(user: &str, device: &str) -> Value {
    let key = Ed25519KeyPair::from_der(&Ed25519KeyPair::generate(), device.to_owned()).unwrap();
    let ed = Base64::<ruma::serde::base64::Standard>::new(key.public_key().to_vec()).encode();
    let keys = json!({
        "user_id": user,
        "device_id": device,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": { format!("curve25519:{device}"): "Y3VydmUyNTUxOWtleWN1cnZlMjU1MTlrZXljdXJ2ZQ", format!("ed25519:{device}"): ed },
    });
    let mut object: CanonicalJsonObject = serde_json::from_value(keys).unwrap();
    sign_json(user, &key, &mut object).unwrap();
    serde_json::to_value(object).unwrap()
}

fn one_time_key(name: &str, user: &str, device: &str) -> Value {
    json!({ "key": format!("key-{name}"), "signatures": { user: { format!("ed25519:{device}"): "sig" } } })
}

#[tokio::test]
async fn remote_device_keys_are_queried_and_one_time_keys_claimed_once() {
    let p = Pair::start().await;
    let (bob, dev) = (p.bob.user_id.as_str(), p.bob.device_id.as_str());
    let keys = signed_device_keys(bob, dev);
    let body = json!({
        "device_keys": keys,
        "one_time_keys": {
            "signed_curve25519:K1": one_time_key("K1", bob, dev),
        },
    });
    let r = p.b.server.post("/_matrix/client/v3/keys/upload", Some(&p.bob.access_token), body).await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    let query = "/_matrix/client/v3/keys/query";
    let r = p.a.server.post(query, Some(&p.alice.access_token), json!({ "device_keys": { bob: [] } })).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["failures"], json!({}), "{:?}", r.body);
    let got = &r.body["device_keys"][bob];
    assert_eq!(got.as_object().unwrap().keys().collect::<Vec<_>>(), [dev], "{:?}", r.body);
    let mut expected = keys.clone();
    expected["unsigned"] = json!({});
    assert_eq!(got[dev], expected);
    let ed = json!({ format!("ed25519:{dev}"): { "key": keys["keys"][format!("ed25519:{dev}")] } });
    verify_signature(&got[dev], bob, &ed).unwrap();

    // A user on a server that is not there: listed in failures; B's answer still comes.
    let body = json!({ "device_keys": { bob: [dev], "@x:127.0.0.1:1": [] }, "timeout": 5000 });
    let r = p.a.server.post(query, Some(&p.alice.access_token), body).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["failures"].as_object().unwrap().keys().collect::<Vec<_>>(), ["127.0.0.1:1"], "{:?}", r.body);
    assert_eq!(r.body["device_keys"][bob][dev], expected);

    let claim = "/_matrix/client/v3/keys/claim";
    let body = json!({ "one_time_keys": { bob: { dev: "signed_curve25519" } } });
    let r = p.a.server.post(claim, Some(&p.alice.access_token), body.clone()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let expected = json!({ bob: { dev: { "signed_curve25519:K1": one_time_key("K1", bob, dev) } } });
    assert_eq!(r.body, json!({ "one_time_keys": expected, "failures": {} }));
    let r = p.a.server.post(claim, Some(&p.alice.access_token), body).await;
    assert_eq!(r.body, json!({ "one_time_keys": {}, "failures": {} }), "claimed once only");
    let body = json!({ "one_time_keys": { "@x:127.0.0.1:1": { "D": "signed_curve25519" } } });
    let r = p.a.server.post(claim, Some(&p.alice.access_token), body).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["failures"].as_object().unwrap().keys().collect::<Vec<_>>(), ["127.0.0.1:1"], "{:?}", r.body);
}

#[tokio::test]
async fn remote_device_keys_without_a_valid_self_signature_are_dropped() {
    let p = Pair::start().await;
    let (bob, dev) = (p.bob.user_id.as_str(), p.bob.device_id.as_str());
    let mut keys = signed_device_keys(bob, dev);
    keys["algorithms"] = json!(["m.megolm.v1.aes-sha2"]);
    let r =
        p.b.server
            .post("/_matrix/client/v3/keys/upload", Some(&p.bob.access_token), json!({ "device_keys": keys }))
            .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let body = json!({ "device_keys": { bob: [] } });
    let r = p.a.server.post("/_matrix/client/v3/keys/query", Some(&p.alice.access_token), body).await;
    assert_eq!(r.body, json!({ "device_keys": { bob: {} }, "failures": {} }), "altered after signing");
    let r =
        p.b.server
            .post("/_matrix/client/v3/keys/query", Some(&p.bob.access_token), json!({ "device_keys": { bob: [] } }))
            .await;
    assert_eq!(r.body["device_keys"][bob][dev]["algorithms"], json!(["m.megolm.v1.aes-sha2"]), "B itself serves it");
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_failure_after_the_timeout() {
    let p = Pair::start().await;
    // Accepts connections and never says a word (not even the TLS handshake).
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let name = format!("127.0.0.1:{}", silent.local_addr().unwrap().port());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            open.push(conn);
        }
    });
    let bob = p.bob.user_id.as_str();
    let body = json!({ "device_keys": { format!("@x:{name}"): [], bob: [] }, "timeout": 1000 });
    let started = std::time::Instant::now();
    let r = p.a.server.post("/_matrix/client/v3/keys/query", Some(&p.alice.access_token), body).await;
    let took = started.elapsed();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["failures"].as_object().unwrap().keys().collect::<Vec<_>>(), [&name], "{:?}", r.body);
    assert_eq!(r.body["device_keys"][bob], json!({}), "B answered (bob has no device keys)");
    assert!(took < std::time::Duration::from_secs(5), "bounded by the 1 s timeout, took {took:?}");
    held.abort();
}
