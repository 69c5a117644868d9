//! Profiles, including extended fields.

use serde_json::json;

use crate::server::TestServer;

#[tokio::test]
async fn displayname_avatar_and_extended_fields() {
    let s = TestServer::start();
    let a = s.register("alice", "password1").await;
    let r = s.get("/_matrix/client/v3/profile/@alice:localhost", None).await;
    assert_eq!(r.body, json!({ "displayname": "alice" }), "defaults to the localpart");

    let base = "/_matrix/client/v3/profile/@alice:localhost";
    assert_eq!(s.put(&format!("{base}/displayname"), a.token(), json!({ "displayname": "Alice" })).await.status, 200);
    assert_eq!(
        s.put(&format!("{base}/avatar_url"), a.token(), json!({ "avatar_url": "mxc://localhost/abc" })).await.status,
        200
    );
    assert_eq!(s.put(&format!("{base}/m.tz"), a.token(), json!({ "m.tz": "Europe/Berlin" })).await.status, 200);
    let r = s.get(&format!("{base}/displayname"), None).await;
    assert_eq!(r.body, json!({ "displayname": "Alice" }));
    let r = s.get(base, None).await;
    assert_eq!(r.body, json!({ "displayname": "Alice", "avatar_url": "mxc://localhost/abc", "m.tz": "Europe/Berlin" }));

    assert_eq!(s.delete(&format!("{base}/m.tz"), a.token(), json!({})).await.status, 200);
    let r = s.get(&format!("{base}/m.tz"), None).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));

    let long_key = "k".repeat(256);
    let r = s.put(&format!("{base}/{long_key}"), a.token(), json!({ long_key.clone(): 1 })).await;
    assert_eq!((r.status, r.errcode()), (400, "M_KEY_TOO_LARGE"));
    let r =
        s.put(&format!("{base}/org.example.bio"), a.token(), json!({ "org.example.bio": "x".repeat(70_000) })).await;
    assert_eq!((r.status, r.errcode()), (400, "M_PROFILE_TOO_LARGE"));

    let b = s.register("bob", "password1").await;
    let r = s.put(&format!("{base}/displayname"), b.token(), json!({ "displayname": "Not Alice" })).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"));
    let r = s.put(&format!("{base}/displayname"), None, json!({ "displayname": "Anon" })).await;
    assert_eq!((r.status, r.errcode()), (401, "M_MISSING_TOKEN"));

    let r = s.get("/_matrix/client/v3/profile/@nobody:localhost", None).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));
    let r = s.get("/_matrix/client/v3/profile/@nobody:localhost/displayname", None).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));
}
