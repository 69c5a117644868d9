//! `GET /_matrix/federation/v1/openid/userinfo?access_token=` (spec: Server-Server "OpenID"):
//! whose OpenID token this is. No `X-Matrix`: the caller is any service the user gave it to.

use ruma::api::federation::openid::get_openid_userinfo::v1 as userinfo;

use crate::api::ruma::Ruma;
use crate::error::Result;
use crate::services::State;
use crate::users::openid;

/// `GET /_matrix/federation/v1/openid/userinfo`: 401 `M_UNKNOWN_TOKEN` for an unknown or
/// expired token.
pub async fn userinfo(s: State, r: Ruma<userinfo::Request>) -> Result<userinfo::Response> {
    Ok(userinfo::Response::new(openid::user_of(&s.db, &r.body.access_token)?))
}
