//! The key notary and the remote key store: server A answers for server B with B's own
//! response signed by both; caches it (in memory and on disk); refuses denied IP ranges.

use reqwest::Method;
use serde_json::{Value, json};

use super::{Fed, Pki, now_ms, verify_signature};
use crate::server::urlencode;

fn only_response(body: &Value) -> &Value {
    let keys = body["server_keys"].as_array().unwrap_or_else(|| panic!("server_keys: {body}"));
    assert_eq!(keys.len(), 1, "{body}");
    &keys[0]
}

/// `GET /_matrix/key/v2/query/{B}` on A: B's response, B's signature kept, A's added; the same
/// through `POST /_matrix/key/v2/query` (with A's own keys); then from A's cache while B is
/// down, also after A restarts.
#[tokio::test]
async fn notary_returns_another_servers_keys_signed_by_both() {
    let pki = Pki::new();
    let mut a = Fed::start(&pki);
    let mut b = Fed::start(&pki);
    let (a_name, b_name) = (a.name.to_string(), b.name.to_string());
    let r = a.get(&format!("/_matrix/key/v2/query/{}", urlencode(&b_name))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(b.server.log().contains("/_matrix/key/v2/server"), "A fetched from B itself");
    let a_keys = a.get("/_matrix/key/v2/server").await.body["verify_keys"].clone();
    let b_keys = b.get("/_matrix/key/v2/server").await.body["verify_keys"].clone();
    let resp = only_response(&r.body);
    assert_eq!(resp["server_name"], b_name.as_str());
    assert_eq!(resp["verify_keys"], b_keys);
    assert!(resp["valid_until_ts"].as_u64().unwrap() > now_ms());
    verify_signature(resp, &b_name, &b_keys).expect("B's own signature is kept");
    verify_signature(resp, &a_name, &a_keys).expect("A signed as notary");
    assert_eq!(resp["signatures"].as_object().unwrap().len(), 2);

    let body = json!({ "server_keys": { &b_name: {}, &a_name: { "ed25519:whatever": { "minimum_valid_until_ts": now_ms() } } } });
    let r = a.request(Method::POST, "/_matrix/key/v2/query", None, Some(&body)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let all = r.body["server_keys"].as_array().unwrap();
    assert_eq!(all.len(), 2, "{:?}", r.body);
    for resp in all {
        let name = resp["server_name"].as_str().unwrap();
        let own = if name == b_name { &b_keys } else { &a_keys };
        verify_signature(resp, name, own).expect("origin signature");
        verify_signature(resp, &a_name, &a_keys).expect("notary signature");
    }

    // B goes away: A still answers from what it verified, from memory and from disk.
    b.server.kill9();
    let r = a.get(&format!("/_matrix/key/v2/query/{}", urlencode(&b_name))).await;
    assert_eq!(only_response(&r.body)["verify_keys"], b_keys);
    a.server.restart();
    let r = a.get(&format!("/_matrix/key/v2/query/{}", urlencode(&b_name))).await;
    let resp = only_response(&r.body);
    assert_eq!(resp["verify_keys"], b_keys);
    verify_signature(resp, &b_name, &b_keys).expect("B's signature survives the disk round trip");
}

/// A server asked about itself answers with its own keys, and about an unreachable server
/// with an empty list.
#[tokio::test]
async fn notary_answers_for_itself_and_nothing_for_the_unreachable() {
    let pki = Pki::new();
    let a = Fed::start(&pki);
    let r = a.get(&format!("/_matrix/key/v2/query/{}", urlencode(a.name.as_str()))).await;
    let resp = only_response(&r.body);
    verify_signature(resp, a.name.as_str(), &resp["verify_keys"]).unwrap();

    let nobody = format!("127.0.0.1:{}", super::free_port());
    let r = a.get(&format!("/_matrix/key/v2/query/{}", urlencode(&nobody))).await;
    assert_eq!((r.status, r.body.clone()), (200, json!({ "server_keys": [] })));
}

/// Loopback is in the default `deny_ip_ranges`: without `allow_ip_ranges` A never connects to
/// B (B sees no request), answers the notary query with no keys, and a profile lookup of B's
/// user fails naming the setting.
#[tokio::test]
async fn denied_ip_ranges_stop_outbound_connections() {
    let pki = Pki::new();
    let a = Fed::start_with(&pki, &[]);
    let b = Fed::start(&pki);
    let r = a.get(&format!("/_matrix/key/v2/query/{}", urlencode(b.name.as_str()))).await;
    assert_eq!((r.status, r.body.clone()), (200, json!({ "server_keys": [] })));

    let alice = a.server.register("alice", "password-alice").await;
    let bob = b.server.register("bob", "password-bob").await;
    let r = a.server.get(&format!("/_matrix/client/v3/profile/{}", urlencode(&bob.user_id)), alice.token()).await;
    assert_ne!(r.status, 200);
    assert!(r.body["error"].as_str().unwrap_or_default().contains("deny_ip_ranges"), "{:?}", r.body);

    let b_log = b.server.log();
    assert!(!b_log.contains("/_matrix/key/v2/server") && !b_log.contains("/_matrix/federation/"), "{b_log}");
    assert!(a.server.log().contains("deny_ip_ranges"), "{}", a.server.log());
}

/// Concurrent lookups of a server's keys share one fetch: none of them gets an empty answer
/// because another one's fetch was still in flight.
#[tokio::test]
async fn concurrent_lookups_wait_for_the_fetch_in_flight() {
    let pki = Pki::new();
    let a = Fed::start(&pki);
    let b = Fed::start(&pki);
    let b_name = b.name.to_string();
    let path = format!("/_matrix/key/v2/query/{}", urlencode(&b_name));
    let answers = futures_util::future::join_all((0..8).map(|_| a.get(&path))).await;
    let b_keys = b.get("/_matrix/key/v2/server").await.body["verify_keys"].clone();
    for r in answers {
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(only_response(&r.body)["verify_keys"], b_keys);
    }
}
