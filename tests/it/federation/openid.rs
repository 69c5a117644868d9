//! OpenID: a token from the client API, exchanged on the federation listener for its user.

use serde_json::json;

use super::{Fed, Pki};

#[tokio::test]
async fn a_token_names_its_user_over_federation() {
    let pki = Pki::new();
    let fed = Fed::start(&pki);
    let alice = fed.server.register("alice", "password1").await;
    let user = format!("@alice:{}", fed.name);
    let r = fed
        .server
        .post(&format!("/_matrix/client/v3/user/{user}/openid/request_token"), alice.token(), json!({}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["matrix_server_name"], fed.name.as_str());
    assert_eq!(r.body["expires_in"], 3600);
    let token = r.body["access_token"].as_str().unwrap().to_owned();

    let r = fed.get(&format!("/_matrix/federation/v1/openid/userinfo?access_token={token}")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body, json!({ "sub": user }));
    let r = fed.get("/_matrix/federation/v1/openid/userinfo?access_token=nope").await;
    assert_eq!((r.status, r.errcode()), (401, "M_UNKNOWN_TOKEN"));
    let r = fed.get("/_matrix/federation/v1/openid/userinfo").await;
    assert_eq!(r.status, 400, "no token: {:?}", r.body);
    // The token is no access token.
    let r = fed.server.get("/_matrix/client/v3/account/whoami", Some(&token)).await;
    assert_eq!((r.status, r.errcode()), (401, "M_UNKNOWN_TOKEN"));
    // Only for oneself.
    let bob = fed.server.register("bob", "password1").await;
    let r =
        fed.server.post(&format!("/_matrix/client/v3/user/{user}/openid/request_token"), bob.token(), json!({})).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"));
}
