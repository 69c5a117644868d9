//! `org.matrix.login.jwt`.

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use crate::server::TestServer;

const SECRET: &str = "jwt-test-secret";

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn token(claims: Value, secret: &str) -> String {
    encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

#[tokio::test]
async fn jwt_login() {
    let s = TestServer::start_with(&[
        ("TRELLIS_JWT__ENABLED", "true"),
        ("TRELLIS_JWT__SECRET", SECRET),
        ("TRELLIS_JWT__AUDIENCES", "[\"trellis-test\"]"),
        ("TRELLIS_JWT__ISSUER", "https://issuer.test"),
    ]);
    let types = s.get("/_matrix/client/v3/login", None).await.body;
    assert!(types["flows"].as_array().unwrap().iter().any(|f| f["type"] == "org.matrix.login.jwt"));

    let login =
        |t: String| s.post("/_matrix/client/v3/login", None, json!({ "type": "org.matrix.login.jwt", "token": t }));
    let good = json!({ "sub": "jwtuser", "aud": "trellis-test", "iss": "https://issuer.test", "exp": now() + 300 });

    let r = login(token(good.clone(), SECRET)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["user_id"], "@jwtuser:localhost", "created on first login");
    let r = login(token(good.clone(), SECRET)).await;
    assert_eq!(r.body["user_id"], "@jwtuser:localhost", "and logs in again");

    let r = login(token(good.clone(), "another-secret")).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "bad signature");
    let mut expired = good.clone();
    expired["exp"] = json!(now() - 3600);
    let r = login(token(expired, SECRET)).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "expired");
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("someone-else");
    let r = login(token(wrong_aud, SECRET)).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "wrong audience");
    let mut wrong_iss = good.clone();
    wrong_iss["iss"] = json!("https://evil.test");
    assert_eq!(login(token(wrong_iss, SECRET)).await.errcode(), "M_FORBIDDEN", "wrong issuer");
    assert_eq!(login("not.a.jwt".into()).await.errcode(), "M_FORBIDDEN");
    let r = s.post("/_matrix/client/v3/login", None, json!({ "type": "org.matrix.login.jwt" })).await;
    assert_eq!(r.errcode(), "M_FORBIDDEN", "missing token");
}

#[tokio::test]
async fn jwt_without_account_creation() {
    let s = TestServer::start_with(&[
        ("TRELLIS_JWT__ENABLED", "true"),
        ("TRELLIS_JWT__SECRET", SECRET),
        ("TRELLIS_JWT__CREATE_USERS", "false"),
    ]);
    let t = token(json!({ "sub": "ghost", "exp": now() + 60 }), SECRET);
    let r = s.post("/_matrix/client/v3/login", None, json!({ "type": "org.matrix.login.jwt", "token": t })).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"));
    s.register("ghost", "password1").await;
    let t = token(json!({ "sub": "ghost", "exp": now() + 60 }), SECRET);
    let r = s.post("/_matrix/client/v3/login", None, json!({ "type": "org.matrix.login.jwt", "token": t })).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn jwt_is_refused_when_disabled() {
    let s = TestServer::start();
    let t = token(json!({ "sub": "x", "exp": now() + 60 }), SECRET);
    let r = s.post("/_matrix/client/v3/login", None, json!({ "type": "org.matrix.login.jwt", "token": t })).await;
    assert_eq!((r.status, r.errcode()), (400, "M_UNKNOWN"));
}
