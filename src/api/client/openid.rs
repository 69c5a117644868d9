//! `POST /_matrix/client/v3/user/{userId}/openid/request_token` (spec: "OpenID"): a token
//! another service exchanges for the user's ID at `GET /_matrix/federation/v1/openid/userinfo`.

use std::time::Duration;

use ruma::api::client::account::request_openid_token;
use ruma::authentication::TokenType;

use super::account::ensure_self;
use crate::api::ruma::Ruma;
use crate::error::Result;
use crate::services::State;
use crate::users::openid;

/// `POST /_matrix/client/v3/user/{userId}/openid/request_token`
pub async fn request_token(
    s: State,
    r: Ruma<request_openid_token::v3::Request>,
) -> Result<request_openid_token::v3::Response> {
    ensure_self(&r.auth()?.user_id, &r.body.user_id, "OpenID tokens")?;
    let token = openid::issue(&s.db, &r.body.user_id)?;
    Ok(request_openid_token::v3::Response::new(
        token,
        TokenType::Bearer,
        s.server_name.clone(),
        Duration::from_millis(openid::LIFETIME_MS),
    ))
}
