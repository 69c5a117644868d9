//! `X-Matrix` request authentication, both ways: A's client API looks up a profile on B (A
//! signs, B fetches A's key and verifies); then the test signs requests as A with A's key and
//! B rejects every broken variant with 401 `M_UNAUTHORIZED`.

use reqwest::Method;
use ruma::ServerName;
use ruma::signatures::Ed25519KeyPair;
use serde_json::json;

use super::{Fed, Pki, free_port, x_matrix};
use crate::server::urlencode;

/// A user on A reads the profile of a user on B through A's client API: a real signed
/// federation request, verified by B with the key it fetched from A.
#[tokio::test]
async fn remote_profile_lookup_is_signed_and_verified() {
    let pki = Pki::new();
    let a = Fed::start(&pki);
    let b = Fed::start(&pki);
    let alice = a.server.register("alice", "password-alice").await;
    let bob = b.server.register("bob", "password-bob").await;
    let path = format!("/_matrix/client/v3/profile/{}/displayname", urlencode(&bob.user_id));
    assert_eq!(b.server.put(&path, bob.token(), json!({ "displayname": "Bob on B" })).await.status, 200);

    let r = a.server.get(&format!("/_matrix/client/v3/profile/{}", urlencode(&bob.user_id)), alice.token()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["displayname"], "Bob on B");
    let r = a.server.get(&path, alice.token()).await;
    assert_eq!((r.status, r.body.clone()), (200, json!({ "displayname": "Bob on B" })));

    let nobody = format!("@nobody:{}", b.name);
    let r = a.server.get(&format!("/_matrix/client/v3/profile/{}", urlencode(&nobody)), alice.token()).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"), "{:?}", r.body);

    assert!(b.server.log().contains("/_matrix/federation/v1/query/profile"));
    assert!(a.server.log().contains("/_matrix/key/v2/server"), "B fetched A's key from A");
}

/// The test signs as A (with A's key from its database): a correct signature over method, URI
/// with query, origin and destination passes; a missing header, garbage, a signature over
/// another URI, another key, another destination, an unknown key ID and an origin whose keys
/// cannot be fetched are 401 `M_UNAUTHORIZED`.
#[tokio::test]
async fn x_matrix_signatures_are_checked() {
    let pki = Pki::new();
    let mut a = Fed::start(&pki);
    let b = Fed::start(&pki);
    let key = a.signing_key();
    let bob = b.server.register("bob", "password-bob").await;
    let path = format!("/_matrix/client/v3/profile/{}/displayname", urlencode(&bob.user_id));
    assert_eq!(b.server.put(&path, bob.token(), json!({ "displayname": "Bob" })).await.status, 200);

    let uri = format!("/_matrix/federation/v1/query/profile?user_id={}&field=displayname", urlencode(&bob.user_id));
    let signed = |key: &Ed25519KeyPair, origin: &ServerName, destination: &ServerName, uri: &str| {
        x_matrix(key, origin, destination, "GET", uri, None)
    };
    let good = signed(&key, &a.name, &b.name, &uri);
    let r = b.request(Method::GET, &uri, Some(&good), None).await;
    assert_eq!((r.status, r.body.clone()), (200, json!({ "displayname": "Bob" })), "{:?}", r.body);

    let unauthorized = |r: crate::server::Resp, what: &str| {
        assert_eq!((r.status, r.errcode()), (401, "M_UNAUTHORIZED"), "{what}: {:?}", r.body);
    };
    unauthorized(b.request(Method::GET, &uri, None, None).await, "no Authorization");
    unauthorized(b.request(Method::GET, &uri, Some("X-Matrix garbage"), None).await, "garbage");
    unauthorized(b.request(Method::GET, &uri, Some("Bearer abc"), None).await, "another scheme");

    let other_uri = uri.replace("displayname", "avatar_url");
    let r = b.request(Method::GET, &other_uri, Some(&good), None).await;
    unauthorized(r, "signature over another query string");

    let other_key = Ed25519KeyPair::from_der(Ed25519KeyPair::generate().as_slice(), key.version().to_owned()).unwrap();
    let forged = signed(&other_key, &a.name, &b.name, &uri);
    unauthorized(b.request(Method::GET, &uri, Some(&forged), None).await, "signed by another key");

    let elsewhere = ServerName::parse("127.0.0.1:1").unwrap();
    let misdirected = signed(&key, &a.name, &elsewhere, &uri);
    unauthorized(b.request(Method::GET, &uri, Some(&misdirected), None).await, "destination mismatch");

    let unknown_id = Ed25519KeyPair::from_der(Ed25519KeyPair::generate().as_slice(), "nope".into()).unwrap();
    let unknown = signed(&unknown_id, &a.name, &b.name, &uri);
    unauthorized(b.request(Method::GET, &uri, Some(&unknown), None).await, "unknown key ID");

    let ghost = ServerName::parse(format!("127.0.0.1:{}", free_port())).unwrap();
    let from_ghost = signed(&key, &ghost, &b.name, &uri);
    unauthorized(b.request(Method::GET, &uri, Some(&from_ghost), None).await, "origin without a key server");

    // Correctly signed, but about a user of another server: a request error, not an auth one.
    let remote_user = format!("/_matrix/federation/v1/query/profile?user_id={}", urlencode(&format!("@x:{}", a.name)));
    let r = b.request(Method::GET, &remote_user, Some(&signed(&key, &a.name, &b.name, &remote_user)), None).await;
    assert_eq!((r.status, r.errcode()), (400, "M_INVALID_PARAM"), "{:?}", r.body);
}
