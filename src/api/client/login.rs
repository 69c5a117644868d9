//! `GET/POST /_matrix/client/v3/login`, `POST /_matrix/client/v1/login/get_token`
//! (spec: "Login", "Login tokens"), plus `org.matrix.login.jwt`.

use std::time::Duration;

use ruma::api::client::session::login::v3::{LoginInfo, Request as LoginRequest, Response as LoginResponse};
use ruma::api::client::session::{get_login_token, get_login_types};
use ruma::api::client::uiaa::UserIdentifier;
use ruma::{OwnedUserId, UserId};
use serde_json::json;

use crate::api::ruma::Ruma;
use crate::error::{Error, ErrorKind, Result};
use crate::services::State;
use crate::uiaa::{DUMMY, PASSWORD};
use crate::users::accounts::{self, NewAccount};
use crate::users::{jwt, password, tokens};

/// `GET /_matrix/client/v3/login`: the login types actually enabled.
pub async fn login_types(s: State, _r: Ruma<get_login_types::v3::Request>) -> Result<get_login_types::v3::Response> {
    let mut flows = Vec::new();
    if s.config.login.password {
        flows.push(json!({ "type": "m.login.password" }));
    }
    if s.config.login.token {
        flows.push(json!({ "type": "m.login.token", "get_login_token": true }));
    }
    if s.jwt.is_some() {
        flows.push(json!({ "type": jwt::LOGIN_TYPE }));
    }
    let flows = serde_json::from_value(json!(flows)).map_err(Error::internal)?;
    Ok(get_login_types::v3::Response::new(flows))
}

fn bad_credentials() -> Error {
    Error::forbidden("Invalid username or password")
}

/// `POST /_matrix/client/v3/login`
pub async fn login(s: State, r: Ruma<LoginRequest>) -> Result<LoginResponse> {
    let body = r.body;
    let user_id = match &body.login_info {
        LoginInfo::Password(p) if s.config.login.password => {
            #[allow(deprecated)]
            let user_id = match (&p.identifier, &p.user) {
                (Some(UserIdentifier::Matrix(m)), _) => s.resolve_user(&m.user).map_err(|_| bad_credentials())?,
                (Some(UserIdentifier::Email(e)), _) => {
                    let owner = accounts::find_by_threepid(&s.db, "email", &e.address)?;
                    owner.ok_or_else(bad_credentials)?
                }
                (None, Some(user)) => s.resolve_user(user).map_err(|_| bad_credentials())?,
                (Some(_), _) => return Err(Error::bad_json("Unsupported identifier type")),
                (None, None) => return Err(Error::new(ErrorKind::MissingParam, "Missing identifier")),
            };
            check_password(&s, &user_id, p.password.clone()).await?;
            user_id
        }
        LoginInfo::Token(t) if s.config.login.token => {
            let user_id = tokens::consume_login_token(&s.db, &t.token)?;
            accounts::get_active(&s.db, &user_id)?;
            user_id
        }
        LoginInfo::_Custom(_) if body.login_info.login_type() == jwt::LOGIN_TYPE && s.jwt.is_some() => {
            jwt_user(&s, &body.login_info).await?
        }
        other => {
            return Err(Error::new(ErrorKind::Unknown, format!("Unknown login type {}", other.login_type()))
                .with_status(axum::http::StatusCode::BAD_REQUEST));
        }
    };

    let (device_id, display_name, refresh) = (body.device_id, body.initial_device_display_name, body.refresh_token);
    let (lifetimes, ip) = (s.token_lifetimes(), r.client_ip.map(|i| i.to_string()));
    let session = tokens::create_session(&s.db, &user_id, device_id.as_deref(), display_name, refresh, lifetimes, ip)?;
    tracing::info!(%user_id, device_id = %session.device_id, "logged in");
    let mut response = LoginResponse::new(user_id, session.access_token, session.device_id);
    response.refresh_token = session.refresh_token;
    response.expires_in = session.expires_in_ms.map(Duration::from_millis);
    Ok(response)
}

/// Password check for a local, active account; every failure looks the same to the client
/// except deactivation (spec: `M_USER_DEACTIVATED`).
async fn check_password(s: &State, user_id: &UserId, password: String) -> Result<()> {
    if !s.is_local(user_id) {
        return Err(bad_credentials());
    }
    let record = accounts::get(&s.db, user_id)?.ok_or_else(bad_credentials)?;
    if record.deactivated {
        return Err(Error::new(ErrorKind::UserDeactivated, "This account has been deactivated"));
    }
    let hash = record.password_hash.ok_or_else(bad_credentials)?;
    if password::verify(password, hash).await { Ok(()) } else { Err(bad_credentials()) }
}

/// The user a valid JWT names, created on first login if `jwt.create_users`.
async fn jwt_user(s: &State, info: &LoginInfo) -> Result<OwnedUserId> {
    let verifier = s.jwt.as_ref().ok_or_else(|| Error::forbidden("JWT login is disabled"))?;
    let data = info.data();
    let token =
        data.get("token").and_then(|t| t.as_str()).ok_or_else(|| Error::forbidden("Token field for JWT is missing"))?;
    let localpart = verifier.verify(token)?;
    let user_id = s.resolve_user(&localpart).map_err(|_| Error::forbidden("Invalid JWT subject"))?;
    if !s.is_local(&user_id) {
        return Err(Error::forbidden("Invalid JWT subject"));
    }
    let create = verifier.create_users;
    // Logging in matches a localpart case-insensitively; creating an account takes the name as
    // given, upper case refused (M_INVALID_USERNAME) as at `/register` and in Synapse.
    let requested = if localpart.starts_with('@') { user_id.localpart().to_owned() } else { localpart };
    match accounts::get(&s.db, &user_id)? {
        Some(u) if u.deactivated => {
            return Err(Error::new(ErrorKind::UserDeactivated, "This account has been deactivated"));
        }
        Some(_) => {}
        None if create => {
            let reserved = &s.config.registration.reserved_prefixes;
            crate::users::validate_localpart(&requested, s.server_name.as_str(), reserved)?;
            accounts::create(&s.db, &user_id, NewAccount::default())?;
        }
        None => return Err(Error::forbidden("User does not exist")),
    }
    Ok(user_id)
}

/// `POST /_matrix/client/v1/login/get_token`: a short-lived `m.login.token` after re-authentication.
pub async fn get_token(s: State, r: Ruma<get_login_token::v1::Request>) -> Result<get_login_token::v1::Response> {
    if !s.config.login.token {
        return Err(Error::new(ErrorKind::Unrecognized { method_not_allowed: false }, "Login tokens are disabled"));
    }
    let auth = r.auth()?.clone();
    uia_reauth(&s, r.body.auth.as_ref(), &auth.user_id).await?;
    let lifetime = s.config.login.login_token_lifetime_ms;
    let token = tokens::create_login_token(&s.db, &auth.user_id, lifetime)?;
    Ok(get_login_token::v1::Response::new(Duration::from_millis(lifetime), token))
}

/// Re-authentication for sensitive actions: the password, or `m.login.dummy` for accounts that
/// have none (JWT and guest accounts have nothing else to prove).
pub async fn uia_reauth(s: &State, auth: Option<&ruma::api::client::uiaa::AuthData>, user_id: &UserId) -> Result<()> {
    let has_password = accounts::get_active(&s.db, user_id)?.password_hash.is_some();
    let flows: &[&[&str]] = if has_password { &[&[PASSWORD]] } else { &[&[DUMMY]] };
    s.uiaa.check(s, auth, flows, Some(user_id)).await
}
