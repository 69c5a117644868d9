//! Refresh tokens, expiry with soft logout, login tokens.

use std::time::Duration;

use serde_json::json;

use crate::server::TestServer;

#[tokio::test]
async fn refresh_rotates_and_invalidates_the_old_pair() {
    let s = TestServer::start();
    s.register("alice", "password1").await;
    let r = s
        .post(
            "/_matrix/client/v3/login",
            None,
            json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "alice" }, "password": "password1", "refresh_token": true }),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["expires_in_ms"], json!(300_000));
    let (access1, refresh1) =
        (r.body["access_token"].as_str().unwrap().to_owned(), r.body["refresh_token"].as_str().unwrap().to_owned());
    let device = r.body["device_id"].as_str().unwrap().to_owned();

    let r = s.post("/_matrix/client/v3/refresh", None, json!({ "refresh_token": refresh1 })).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let (access2, refresh2) =
        (r.body["access_token"].as_str().unwrap().to_owned(), r.body["refresh_token"].as_str().unwrap().to_owned());
    assert_ne!(access1, access2);
    assert_ne!(refresh1, refresh2);
    assert_eq!(r.body["expires_in_ms"], json!(300_000));

    assert_eq!(s.get("/_matrix/client/v3/account/whoami", Some(&access1)).await.errcode(), "M_UNKNOWN_TOKEN");
    let r = s.get("/_matrix/client/v3/account/whoami", Some(&access2)).await;
    assert_eq!(r.body["device_id"], json!(device), "same device after refresh");
    let r = s.post("/_matrix/client/v3/refresh", None, json!({ "refresh_token": refresh1 })).await;
    assert_eq!((r.status, r.errcode()), (401, "M_UNKNOWN_TOKEN"), "an old refresh token is dead");
}

#[tokio::test]
async fn expired_tokens_are_soft_logged_out() {
    let s = TestServer::start_with(&[("TRELLIS_LOGIN__ACCESS_TOKEN_LIFETIME_MS", "300")]);
    let a = s.register("alice", "password1").await;
    assert_eq!(s.get("/_matrix/client/v3/account/whoami", a.token()).await.status, 200);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let r = s.get("/_matrix/client/v3/account/whoami", a.token()).await;
    assert_eq!((r.status, r.errcode()), (401, "M_UNKNOWN_TOKEN"));
    assert_eq!(r.body["soft_logout"], json!(true));
}

#[tokio::test]
async fn login_tokens_work_once() {
    let s = TestServer::start();
    let a = s.register("alice", "password1").await;
    let r = s.post("/_matrix/client/v1/login/get_token", a.token(), json!({})).await;
    assert_eq!(r.status, 401, "re-authentication first");
    let auth = json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "alice" }, "password": "password1", "session": r.body["session"] });
    let r = s.post("/_matrix/client/v1/login/get_token", a.token(), json!({ "auth": auth })).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["expires_in_ms"], json!(120_000));
    let token = r.body["login_token"].as_str().unwrap().to_owned();

    let r = s.post("/_matrix/client/v3/login", None, json!({ "type": "m.login.token", "token": token })).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["user_id"], "@alice:localhost");
    let r = s.post("/_matrix/client/v3/login", None, json!({ "type": "m.login.token", "token": token })).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"));
}
