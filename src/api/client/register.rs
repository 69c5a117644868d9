//! `POST /_matrix/client/v3/register`, `GET /register/available`,
//! `GET /register/m.login.registration_token/validity`
//! (spec: "Account registration and management").

use ruma::api::client::account::register::{RegistrationKind, v3 as register};
use ruma::api::client::account::{check_registration_token_validity, get_username_availability};
use ruma::{OwnedUserId, UserId};

use crate::api::ruma::Ruma;
use crate::error::{Error, ErrorKind, Result};
use crate::services::State;
use crate::uiaa::{DUMMY, REGISTRATION_TOKEN};
use crate::users::accounts::{self, NewAccount};
use crate::users::{password, random_string, tokens, validate_localpart};

/// `POST /_matrix/client/v3/register`
pub async fn register(s: State, r: Ruma<register::Request>) -> Result<register::Response> {
    let body = r.body;
    let guest = body.kind == RegistrationKind::Guest;
    if guest && !s.config.registration.allow_guests {
        return Err(Error::new(ErrorKind::GuestAccessForbidden, "Guest access is disabled"));
    }
    if !guest && !s.config.registration.enabled {
        return Err(Error::forbidden("Registration has been disabled"));
    }

    let user_id = match (&body.username, guest) {
        (Some(name), false) => {
            let user_id = checked_user_id(&s, name)?;
            ensure_available(&s, &user_id).await?;
            user_id
        }
        _ => fresh_user_id(&s, guest).await?,
    };
    if let Some(pw) = &body.password {
        password::check_policy(pw, &s.config.password_policy)?;
    }
    if !guest {
        let flows: &[&[&str]] =
            if s.config.registration.token.is_some() { &[&[REGISTRATION_TOKEN]] } else { &[&[DUMMY]] };
        s.uiaa.check(&s, body.auth.as_ref(), flows, None).await?;
    }

    let password_hash = match body.password.filter(|_| !guest) {
        Some(pw) => Some(password::hash(pw).await?),
        None => None,
    };
    let new = NewAccount { password_hash, is_guest: guest, ..Default::default() };
    accounts::create(&s.db, &user_id, new)?;
    tracing::info!(%user_id, guest, "registered");

    let mut response = register::Response::new(user_id.clone());
    if body.inhibit_login {
        return Ok(response);
    }
    let (device_id, display_name, refresh) = (body.device_id, body.initial_device_display_name, body.refresh_token);
    let (lifetimes, ip) = (s.token_lifetimes(), r.client_ip.map(|i| i.to_string()));
    let session = tokens::create_session(&s.db, &user_id, device_id.as_deref(), display_name, refresh, lifetimes, ip)?;
    response.access_token = Some(session.access_token);
    response.device_id = Some(session.device_id);
    response.refresh_token = session.refresh_token;
    response.expires_in = session.expires_in_ms.map(std::time::Duration::from_millis);
    Ok(response)
}

/// A user ID for a requested localpart that passes the registration rules.
pub fn checked_user_id(s: &State, localpart: &str) -> Result<OwnedUserId> {
    validate_localpart(localpart, s.server_name.as_str(), &s.config.registration.reserved_prefixes)?;
    UserId::parse_with_server_name(localpart, &s.server_name)
        .map_err(|_| Error::new(ErrorKind::InvalidUsername, "Invalid user ID"))
}

async fn ensure_available(s: &State, user_id: &UserId) -> Result<()> {
    if accounts::get(&s.db, user_id)?.is_some() {
        return Err(Error::new(ErrorKind::UserInUse, "User ID already taken."));
    }
    Ok(())
}

/// A free generated localpart: numeric for guests (as Synapse), lettered otherwise.
async fn fresh_user_id(s: &State, guest: bool) -> Result<OwnedUserId> {
    for _ in 0..16 {
        let localpart = if guest {
            format!("{}", rand::random_range(1_000_000_000u64..10_000_000_000))
        } else {
            format!("u{}", random_string(12).to_lowercase())
        };
        let user_id = UserId::parse_with_server_name(localpart, &s.server_name).map_err(Error::internal)?;
        if ensure_available(s, &user_id).await.is_ok() {
            return Ok(user_id);
        }
    }
    Err(Error::internal("could not generate a free user ID"))
}

/// `GET /_matrix/client/v3/register/available`
pub async fn available(
    s: State,
    r: Ruma<get_username_availability::v3::Request>,
) -> Result<get_username_availability::v3::Response> {
    let user_id = checked_user_id(&s, &r.body.username)?;
    ensure_available(&s, &user_id).await?;
    Ok(get_username_availability::v3::Response::new(true))
}

/// `GET /_matrix/client/v1/register/m.login.registration_token/validity`
pub async fn token_validity(
    s: State,
    r: Ruma<check_registration_token_validity::v1::Request>,
) -> Result<check_registration_token_validity::v1::Response> {
    let Some(token) = &s.config.registration.token else {
        return Err(Error::forbidden("Registration tokens are not enabled"));
    };
    Ok(check_registration_token_validity::v1::Response::new(*token == r.body.token))
}
