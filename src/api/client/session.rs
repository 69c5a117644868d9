//! `POST /refresh`, `POST /logout`, `POST /logout/all`, `GET /account/whoami`
//! (spec: "Refreshing access tokens", "Logout", "Current account information").

use std::time::Duration;

use ruma::api::client::account::whoami;
use ruma::api::client::session::{logout, logout_all, refresh_token};

use crate::api::ruma::Ruma;
use crate::error::Result;
use crate::services::State;
use crate::users::{devices, tokens};

/// `POST /_matrix/client/v3/refresh`
pub async fn refresh(s: State, r: Ruma<refresh_token::v3::Request>) -> Result<refresh_token::v3::Response> {
    let lifetimes = s.token_lifetimes();
    let token = r.body.refresh_token;
    let session = tokens::refresh(&s.db, &token, lifetimes)?;
    let mut response = refresh_token::v3::Response::new(session.access_token);
    response.refresh_token = session.refresh_token;
    response.expires_in_ms = session.expires_in_ms.map(Duration::from_millis);
    Ok(response)
}

/// `POST /_matrix/client/v3/logout`: this device and its tokens are gone.
pub async fn logout(s: State, r: Ruma<logout::v3::Request>) -> Result<logout::v3::Response> {
    let auth = r.auth()?.clone();
    devices::delete(&s.db, &auth.user_id, &[&auth.device_id])?;
    Ok(logout::v3::Response::new())
}

/// `POST /_matrix/client/v3/logout/all`: every device of the user.
pub async fn logout_all(s: State, r: Ruma<logout_all::v3::Request>) -> Result<logout_all::v3::Response> {
    let auth = r.auth()?.clone();
    devices::delete_all(&s.db, &auth.user_id, None)?;
    Ok(logout_all::v3::Response::new())
}

/// `GET /_matrix/client/v3/account/whoami`
pub async fn whoami(_s: State, r: Ruma<whoami::v3::Request>) -> Result<whoami::v3::Response> {
    let auth = r.auth()?;
    let mut response = whoami::v3::Response::new(auth.user_id.clone(), auth.is_guest);
    response.device_id = Some(auth.device_id.clone());
    Ok(response)
}
