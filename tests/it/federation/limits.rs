//! The federation listener's own body limit (`federation.max_request_bytes`, 4 MiB): a `/send`
//! transaction of 2 MiB (far above the client API's 1 MiB) is accepted, one of 5 MiB gets 413
//! `M_TOO_LARGE`.

use reqwest::Method;
use serde_json::{Value, json};

use super::{Fed, Pki, now_ms, x_matrix};

/// A transaction of `edus` unknown EDUs, each padded to `pad` bytes (unknown EDUs are ignored).
fn padded_txn(origin: &str, edus: usize, pad: usize) -> Value {
    let edu = json!({ "edu_type": "org.example.padding", "content": { "pad": "x".repeat(pad) } });
    json!({ "origin": origin, "origin_server_ts": now_ms(), "pdus": [], "edus": vec![edu; edus] })
}

#[tokio::test]
async fn federation_bodies_have_their_own_limit() {
    let pki = Pki::new();
    let mut a = Fed::start(&pki);
    let b = Fed::start(&pki);
    let key = a.signing_key();

    let body = padded_txn(a.name.as_str(), 100, 21 * 1024);
    let len = serde_json::to_vec(&body).unwrap().len();
    assert!(len > 2 * 1024 * 1024 && len < 3 * 1024 * 1024, "{len}");
    let path = "/_matrix/federation/v1/send/big";
    let auth = x_matrix(&key, &a.name, &b.name, "PUT", path, Some(&body));
    let r = b.request(Method::PUT, path, Some(&auth), Some(&body)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body, json!({ "pdus": {} }));

    let body = padded_txn(a.name.as_str(), 100, 53 * 1024);
    assert!(serde_json::to_vec(&body).unwrap().len() > 5 * 1024 * 1024);
    let path = "/_matrix/federation/v1/send/huge";
    let auth = x_matrix(&key, &a.name, &b.name, "PUT", path, Some(&body));
    let r = b.request(Method::PUT, path, Some(&auth), Some(&body)).await;
    assert_eq!((r.status, r.errcode()), (413, "M_TOO_LARGE"), "{:?}", r.body);
}
