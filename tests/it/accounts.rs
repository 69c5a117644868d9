//! Registration, login, logout, password change, deactivation, shared-secret registration.

use std::process::Command;

use hmac::{Hmac, Mac};
use serde_json::json;
use sha1::Sha1;

use crate::server::{BIN, Session, TestServer};

const REGISTER: &str = "/_matrix/client/v3/register";

#[tokio::test]
async fn register_login_whoami_logout() {
    let s = TestServer::start();
    let reg = s.register("alice", "password1").await;
    assert_eq!(reg.user_id, "@alice:localhost");

    let r = s.login("alice", "password1").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let login = Session::from(&r.body);
    assert_ne!(login.device_id, reg.device_id, "each login is a new device");

    let r = s.get("/_matrix/client/v3/account/whoami", login.token()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["user_id"], "@alice:localhost");
    assert_eq!(r.body["device_id"], json!(login.device_id));
    assert_eq!(r.body.get("is_guest").cloned().unwrap_or(json!(false)), json!(false));

    let r = s.post("/_matrix/client/v3/logout", login.token(), json!({})).await;
    assert_eq!(r.status, 200);
    let r = s.get("/_matrix/client/v3/account/whoami", login.token()).await;
    assert_eq!((r.status, r.errcode()), (401, "M_UNKNOWN_TOKEN"));
    assert_eq!(r.body["soft_logout"], json!(null), "a logged-out token is a hard logout");
    // The registration session is untouched.
    assert_eq!(s.get("/_matrix/client/v3/account/whoami", reg.token()).await.status, 200);

    let r = s.get("/_matrix/client/v3/account/whoami", None).await;
    assert_eq!((r.status, r.errcode()), (401, "M_MISSING_TOKEN"));
    let r = s.get("/_matrix/client/v3/account/whoami", Some("trl_nonsense")).await;
    assert_eq!((r.status, r.errcode()), (401, "M_UNKNOWN_TOKEN"));
    let r = s.get("/_matrix/client/v3/account/whoami?access_token=trl_nonsense", None).await;
    assert_eq!((r.status, r.errcode()), (401, "M_UNKNOWN_TOKEN"), "query-parameter tokens are checked too");
    let r = s.get(&format!("/_matrix/client/v3/account/whoami?access_token={}", reg.access_token), None).await;
    assert_eq!(r.status, 200);

    let r = s.login("alice", "wrong-password").await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"));
    let r = s.login("nobody", "password1").await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"));
    let r = s
        .post(
            "/_matrix/client/v3/login",
            None,
            json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "@alice:localhost" }, "password": "password1" }),
        )
        .await;
    assert_eq!(r.status, 200, "full user IDs log in too");
    let r = s.post("/_matrix/client/v3/login", None, json!({ "type": "m.login.magic" })).await;
    assert_eq!((r.status, r.errcode()), (400, "M_UNKNOWN"));

    let r = s.post("/_matrix/client/v3/logout/all", reg.token(), json!({})).await;
    assert_eq!(r.status, 200);
    let r = s.get("/_matrix/client/v3/account/whoami", reg.token()).await;
    assert_eq!(r.errcode(), "M_UNKNOWN_TOKEN");
}

#[tokio::test]
async fn login_flows_list_what_is_enabled() {
    let s = TestServer::start_with(&[("TRELLIS_LOGIN__TOKEN", "false")]);
    let r = s.get("/_matrix/client/v3/login", None).await;
    let types: Vec<&str> = r.body["flows"].as_array().unwrap().iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["m.login.password"]);
}

#[tokio::test]
async fn registration_goes_through_user_interactive_auth() {
    let s = TestServer::start();
    let r = s.post(REGISTER, None, json!({ "username": "bob", "password": "password1" })).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body["flows"], json!([{ "stages": ["m.login.dummy"] }]));
    let session = r.body["session"].as_str().unwrap().to_owned();
    let r = s
        .post(REGISTER, None, json!({ "username": "bob", "password": "password1", "auth": { "type": "m.login.dummy", "session": session } }))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["user_id"], "@bob:localhost");
    assert!(r.body["access_token"].as_str().unwrap().len() > 20);

    let r = s
        .post(REGISTER, None, json!({ "username": "carol", "password": "password1", "inhibit_login": true, "auth": { "type": "m.login.dummy" } }))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["user_id"], "@carol:localhost");
    assert!(r.body.get("access_token").is_none(), "inhibit_login: {:?}", r.body);
}

#[tokio::test]
async fn registration_errors() {
    let s = TestServer::start_with(&[("TRELLIS_REGISTRATION__RESERVED_PREFIXES", "[\"irc_\"]")]);
    s.register("alice", "password1").await;
    let attempt = |name: &'static str, pw: &'static str| {
        s.post(REGISTER, None, json!({ "username": name, "password": pw, "auth": { "type": "m.login.dummy" } }))
    };
    let r = attempt("alice", "password1").await;
    assert_eq!((r.status, r.errcode()), (400, "M_USER_IN_USE"));
    let r = attempt("Alice Smith", "password1").await;
    assert_eq!((r.status, r.errcode()), (400, "M_INVALID_USERNAME"));
    let r = attempt("irc_bob", "password1").await;
    assert_eq!((r.status, r.errcode()), (400, "M_EXCLUSIVE"));
    let r = attempt("dave", "short").await;
    assert_eq!((r.status, r.errcode()), (400, "M_WEAK_PASSWORD"));

    let r = s.get("/_matrix/client/v3/register/available?username=alice", None).await;
    assert_eq!((r.status, r.errcode()), (400, "M_USER_IN_USE"));
    let r = s.get("/_matrix/client/v3/register/available?username=zed", None).await;
    assert_eq!((r.status, r.body["available"].clone()), (200, json!(true)));
    let r = s.get("/_matrix/client/v3/register/available?username=B%20B", None).await;
    assert_eq!(r.errcode(), "M_INVALID_USERNAME");
    let r = s.get("/_matrix/client/v3/register/available", None).await;
    assert_eq!((r.status, r.errcode()), (400, "M_MISSING_PARAM"));

    let r = s.post("/_matrix/client/v3/register?kind=guest", None, json!({})).await;
    assert_eq!((r.status, r.errcode()), (403, "M_GUEST_ACCESS_FORBIDDEN"));
}

#[tokio::test]
async fn password_policy_is_configurable() {
    let s = TestServer::start_with(&[
        ("TRELLIS_PASSWORD_POLICY__REQUIRE_DIGIT", "true"),
        ("TRELLIS_PASSWORD_POLICY__REQUIRE_UPPERCASE", "true"),
    ]);
    let r = s
        .post(
            REGISTER,
            None,
            json!({ "username": "eve", "password": "longbutweak", "auth": { "type": "m.login.dummy" } }),
        )
        .await;
    assert_eq!((r.status, r.errcode()), (400, "M_WEAK_PASSWORD"));
    s.register("eve", "Longer1pass").await;
}

#[tokio::test]
async fn closed_registration_and_registration_tokens() {
    let s = TestServer::start_with(&[("TRELLIS_REGISTRATION__ENABLED", "false")]);
    let r = s
        .post(REGISTER, None, json!({ "username": "x1", "password": "password1", "auth": { "type": "m.login.dummy" } }))
        .await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"));
    drop(s);

    let s = TestServer::start_with(&[("TRELLIS_REGISTRATION__TOKEN", "12345678")]);
    let r = s
        .post(REGISTER, None, json!({ "username": "x1", "password": "password1", "auth": { "type": "m.login.dummy" } }))
        .await;
    assert_eq!(r.status, 401, "dummy is not enough with a token configured");
    assert_eq!(r.body["flows"], json!([{ "stages": ["m.login.registration_token"] }]));
    let session = r.body["session"].as_str().unwrap().to_owned();
    let wrong = json!({ "type": "m.login.registration_token", "token": "nope", "session": session });
    let r = s.post(REGISTER, None, json!({ "username": "x1", "password": "password1", "auth": wrong })).await;
    assert_eq!((r.status, r.errcode()), (401, "M_FORBIDDEN"));
    let right = json!({ "type": "m.login.registration_token", "token": "12345678", "session": session });
    let r = s.post(REGISTER, None, json!({ "username": "x1", "password": "password1", "auth": right })).await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    let r = s.get("/_matrix/client/v1/register/m.login.registration_token/validity?token=12345678", None).await;
    assert_eq!(r.body["valid"], json!(true));
    let r = s.get("/_matrix/client/v1/register/m.login.registration_token/validity?token=x", None).await;
    assert_eq!(r.body["valid"], json!(false));
}

#[tokio::test]
async fn guests_when_enabled() {
    let s = TestServer::start_with(&[("TRELLIS_REGISTRATION__ALLOW_GUESTS", "true")]);
    let r = s.post("/_matrix/client/v3/register?kind=guest", None, json!({})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let guest = Session::from(&r.body);
    assert!(guest.user_id.trim_start_matches('@').split(':').next().unwrap().chars().all(|c| c.is_ascii_digit()));
    let r = s.get("/_matrix/client/v3/account/whoami", guest.token()).await;
    assert_eq!(r.body["is_guest"], json!(true));
}

#[tokio::test]
async fn change_password_with_uia_logs_out_other_devices() {
    let s = TestServer::start();
    let a = s.register("alice", "password1").await;
    let other = Session::from(&s.login("alice", "password1").await.body);

    let r = s.post("/_matrix/client/v3/account/password", a.token(), json!({ "new_password": "password2" })).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body["flows"], json!([{ "stages": ["m.login.password"] }]));
    let session = r.body["session"].as_str().unwrap().to_owned();
    let auth = |pw: &str| json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "alice" }, "password": pw, "session": session });
    let r = s
        .post(
            "/_matrix/client/v3/account/password",
            a.token(),
            json!({ "new_password": "password2", "auth": auth("bad") }),
        )
        .await;
    assert_eq!((r.status, r.errcode()), (401, "M_FORBIDDEN"));
    let r = s
        .post(
            "/_matrix/client/v3/account/password",
            a.token(),
            json!({ "new_password": "x", "auth": auth("password1") }),
        )
        .await;
    assert_eq!(r.errcode(), "M_WEAK_PASSWORD");
    let r = s
        .post(
            "/_matrix/client/v3/account/password",
            a.token(),
            json!({ "new_password": "password2", "auth": auth("password1") }),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    assert_eq!(s.get("/_matrix/client/v3/account/whoami", a.token()).await.status, 200, "this device stays");
    assert_eq!(s.get("/_matrix/client/v3/account/whoami", other.token()).await.errcode(), "M_UNKNOWN_TOKEN");
    assert_eq!(s.login("alice", "password1").await.errcode(), "M_FORBIDDEN");
    assert_eq!(s.login("alice", "password2").await.status, 200);
}

#[tokio::test]
async fn deactivation() {
    let s = TestServer::start();
    let a = s.register("alice", "password1").await;
    let auth = json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "alice" }, "password": "password1" });
    let r = s.post("/_matrix/client/v3/account/deactivate", a.token(), json!({ "auth": auth, "erase": true })).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["id_server_unbind_result"], "no-support");
    assert_eq!(s.get("/_matrix/client/v3/account/whoami", a.token()).await.errcode(), "M_UNKNOWN_TOKEN");
    let r = s.login("alice", "password1").await;
    assert_eq!((r.status, r.errcode()), (403, "M_USER_DEACTIVATED"));
    let r = s
        .post(
            REGISTER,
            None,
            json!({ "username": "alice", "password": "password1", "auth": { "type": "m.login.dummy" } }),
        )
        .await;
    assert_eq!(r.errcode(), "M_USER_IN_USE", "deactivated IDs are never reused");
    let r = s.get("/_matrix/client/v3/profile/@alice:localhost", None).await;
    assert_eq!(r.body, json!({}), "erase dropped the profile");
}

#[tokio::test]
async fn login_by_email_for_an_account_created_with_the_cli() {
    let mut s = TestServer::start();
    s.stop();
    let out = Command::new(BIN)
        .args(["user", "create", "frank", "--password", "password1", "--email", "Frank@Example.org"])
        .env_clear()
        .env("TRELLIS_DATABASE__PATH", s.data_dir().join("db"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "created @frank:localhost");
    s.restart();
    let r = s
        .post(
            "/_matrix/client/v3/login",
            None,
            json!({ "type": "m.login.password", "identifier": { "type": "m.id.thirdparty", "medium": "email", "address": "frank@example.org" }, "password": "password1" }),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["user_id"], "@frank:localhost");
    let token = r.body["access_token"].as_str().unwrap().to_owned();
    let r = s.get("/_matrix/client/v3/account/3pid", Some(&token)).await;
    assert_eq!(r.body["threepids"][0]["address"], "frank@example.org");
    assert_eq!(r.body["threepids"][0]["medium"], "email");

    s.stop();
    for args in [&["user", "reset-password", "frank", "password9"][..], &["user", "deactivate", "@frank:localhost"][..]]
    {
        let out = Command::new(BIN)
            .args(args)
            .env_clear()
            .env("TRELLIS_DATABASE__PATH", s.data_dir().join("db"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    s.restart();
    assert_eq!(s.login("frank", "password9").await.errcode(), "M_USER_DEACTIVATED");
}

pub fn mac(secret: &str, nonce: &str, user: &str, password: &str, admin: bool) -> String {
    let mut m = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(format!("{nonce}\0{user}\0{password}\0{}", if admin { "admin" } else { "notadmin" }).as_bytes());
    hex::encode(m.finalize().into_bytes())
}

#[tokio::test]
async fn shared_secret_registration() {
    let s = TestServer::start_with(&[
        ("TRELLIS_REGISTRATION__SHARED_SECRET", "s3cret"),
        ("TRELLIS_REGISTRATION__ENABLED", "false"),
    ]);
    let nonce = s.get("/_synapse/admin/v1/register", None).await.body["nonce"].as_str().unwrap().to_owned();
    let body = json!({ "nonce": nonce, "username": "admin1", "password": "pw", "admin": true, "mac": mac("s3cret", &nonce, "admin1", "pw", true) });
    let r = s.post("/_synapse/admin/v1/register", None, body.clone()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["user_id"], "@admin1:localhost");
    assert_eq!(r.body["home_server"], "localhost");
    let token = r.body["access_token"].as_str().unwrap();
    assert_eq!(s.get("/_matrix/client/v3/account/whoami", Some(token)).await.body["user_id"], "@admin1:localhost");

    let r = s.post("/_synapse/admin/v1/register", None, body).await;
    assert_eq!((r.status, r.errcode()), (400, "M_UNKNOWN"), "a nonce works once");

    let nonce = s.get("/_synapse/admin/v1/register", None).await.body["nonce"].as_str().unwrap().to_owned();
    let bad = json!({ "nonce": nonce, "username": "mallory", "password": "pw", "mac": mac("wrong", &nonce, "mallory", "pw", false) });
    let r = s.post("/_synapse/admin/v1/register", None, bad).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"));
    assert_eq!(s.login("mallory", "pw").await.errcode(), "M_FORBIDDEN");
    let r = s.raw(reqwest::Method::POST, "/_synapse/admin/v1/register", None, b"not json").await;
    assert_eq!(r.errcode(), "M_NOT_JSON");

    let off = TestServer::start();
    let r = off.get("/_synapse/admin/v1/register", None).await;
    assert_eq!((r.status, r.errcode()), (400, "M_UNKNOWN"));
}
