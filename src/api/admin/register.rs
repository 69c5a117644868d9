//! `GET/POST /_synapse/admin/v1/register`: shared-secret registration, as Synapse documents it
//! (a nonce, then an HMAC-SHA1 over `nonce\0username\0password\0admin|notadmin`).

use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State as AxState};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::json;
use sha1::Sha1;

use crate::api::client::register::checked_user_id;
use crate::error::{Error, ErrorKind, Result};
use crate::services::State;
use crate::users::accounts::{self, NewAccount};
use crate::users::{password, random_string, tokens};

const NONCE_LIFETIME: Duration = Duration::from_secs(60);

/// `GET /_synapse/admin/v1/register`: a one-time nonce.
pub async fn nonce(AxState(s): AxState<State>) -> Response {
    match enabled(&s) {
        Ok(_) => {
            let nonce = random_string(32);
            let mut nonces = s.registration_nonces.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            nonces.retain(|_, at| at.elapsed() < NONCE_LIFETIME);
            nonces.insert(nonce.clone(), Instant::now());
            axum::Json(json!({ "nonce": nonce })).into_response()
        }
        Err(e) => e.into_response(),
    }
}

fn enabled(s: &State) -> Result<&str> {
    s.config.registration.shared_secret.as_deref().ok_or_else(|| {
        Error::new(ErrorKind::Unknown, "Shared secret registration is not enabled")
            .with_status(axum::http::StatusCode::BAD_REQUEST)
    })
}

#[derive(Deserialize)]
struct Body {
    nonce: String,
    username: String,
    password: String,
    mac: String,
    #[serde(default)]
    admin: bool,
    displayname: Option<String>,
    user_type: Option<String>,
}

/// `POST /_synapse/admin/v1/register`
pub async fn register(AxState(s): AxState<State>, req: Request) -> Response {
    let ip = req.extensions().get::<ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip().to_string());
    let (limit, timeout) =
        (s.config.server.max_request_bytes, Duration::from_millis(s.config.server.request_body_timeout_ms));
    let (parts, body) = req.into_parts();
    let body = match crate::api::body::read(&parts.headers, body, limit, timeout).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    match register_inner(&s, &body, ip).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn register_inner(s: &State, body: &[u8], ip: Option<String>) -> Result<serde_json::Value> {
    let secret = enabled(s)?.to_owned();
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| Error::new(ErrorKind::NotJson, "Content not JSON."))?;
    let body: Body = serde_json::from_value(value).map_err(|e| {
        let m = e.to_string();
        if m.contains("missing field") { Error::new(ErrorKind::MissingParam, m) } else { Error::bad_json(m) }
    })?;
    let fresh = {
        let mut nonces = s.registration_nonces.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        nonces.remove(&body.nonce).is_some_and(|at| at.elapsed() < NONCE_LIFETIME)
    };
    if !fresh {
        return Err(
            Error::new(ErrorKind::Unknown, "unrecognised nonce").with_status(axum::http::StatusCode::BAD_REQUEST)
        );
    }
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).map_err(Error::internal)?;
    mac.update(body.nonce.as_bytes());
    mac.update(b"\0");
    mac.update(body.username.as_bytes());
    mac.update(b"\0");
    mac.update(body.password.as_bytes());
    mac.update(b"\0");
    mac.update(if body.admin { b"admin".as_slice() } else { b"notadmin".as_slice() });
    if let Some(t) = &body.user_type {
        mac.update(b"\0");
        mac.update(t.as_bytes());
    }
    let given = hex::decode(body.mac.trim()).map_err(|_| Error::forbidden("HMAC incorrect"))?;
    mac.verify_slice(&given).map_err(|_| Error::forbidden("HMAC incorrect"))?;

    let user_id = checked_user_id(s, &body.username.to_lowercase())?;
    let hash = password::hash(body.password).await?;
    let new = NewAccount {
        password_hash: Some(hash),
        admin: body.admin,
        displayname: body.displayname,
        ..Default::default()
    };
    accounts::create(&s.db, &user_id, new)?;
    let session = tokens::create_session(&s.db, &user_id, None, None, false, s.token_lifetimes(), ip)?;
    tracing::info!(%user_id, admin = body.admin, "registered with the shared secret");
    Ok(json!({
        "access_token": session.access_token,
        "user_id": user_id,
        "home_server": s.server_name,
        "device_id": session.device_id,
    }))
}
