//! Routes from ruma's request metadata: each endpoint is registered on every path its ruma
//! request type declares, with the method, authentication and rate limiting it declares.
//!
//! [`route`] wraps a handler `async fn(State, Ruma<Req>) -> Result<Req::OutgoingResponse>`:
//! it reads the body (capped), authenticates, rate-limits, parses with ruma, and turns the
//! result or the [`Error`] into the HTTP response. The same mechanism serves the Server-Server
//! API: endpoints whose ruma authentication is `ServerSignatures` get their `X-Matrix`
//! signature checked, and the handler sees the verified `origin`.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, RawPathParams, Request, State as AxState};
use axum::http::{Method, request::Parts};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use ruma::api::auth_scheme::{
    AccessToken, AccessTokenOptional, AppserviceToken, AppserviceTokenOptional, NoAccessToken, NoAuthentication,
};
use ruma::api::error::{DeserializationError, FromHttpRequestError};
use ruma::api::federation::authentication::ServerSignatures;
use ruma::api::path_builder::PathBuilder;
use ruma::api::{IncomingRequest, IncomingRequestExt, OutgoingResponse, OutgoingResponseExt};
use ruma::{OwnedServerName, ServerName};

use crate::error::{Error, ErrorKind, Result};
use crate::ratelimit::Class;
use crate::services::State;
use crate::users::tokens::{self, Auth};

/// A parsed request with who sent it.
pub struct Ruma<T> {
    pub body: T,
    /// The authenticated requester, when the endpoint takes an access token and one was given.
    pub auth: Option<Auth>,
    /// The requesting server, verified by its `X-Matrix` signature (Server-Server API
    /// endpoints with `ServerSignatures` authentication).
    pub origin: Option<OwnedServerName>,
    pub client_ip: Option<IpAddr>,
}

impl<T> Ruma<T> {
    /// The requester of an endpoint that requires authentication.
    pub fn auth(&self) -> Result<&Auth> {
        self.auth.as_ref().ok_or_else(|| Error::new(ErrorKind::MissingToken, "Missing access token"))
    }

    /// The requesting server of a federation endpoint that requires a signature.
    pub fn origin(&self) -> Result<&ServerName> {
        self.origin.as_deref().ok_or_else(|| Error::new(ErrorKind::Unauthorized, "Missing X-Matrix signature"))
    }
}

/// How an endpoint authenticates, from its ruma `Authentication` type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Required,
    Optional,
    None,
    /// Server-Server API: an `X-Matrix` signature (spec: "Request Authentication").
    ServerSignatures,
}

pub trait AuthPolicy {
    const POLICY: Policy;
}

macro_rules! policy {
    ($($t:ty => $p:ident),* $(,)?) => { $(impl AuthPolicy for $t { const POLICY: Policy = Policy::$p; })* };
}
policy!(
    AccessToken => Required,
    AccessTokenOptional => Optional,
    AppserviceToken => Required,
    AppserviceTokenOptional => Optional,
    NoAuthentication => None,
    NoAccessToken => None,
    ServerSignatures => ServerSignatures,
);

/// Register `handler` for every path of request type `T`.
pub fn route<T, F, Fut, R>(mut router: Router<State>, handler: F) -> Router<State>
where
    T: IncomingRequest + Send + 'static,
    T::Authentication: AuthPolicy,
    F: Fn(State, Ruma<T>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<R>> + Send + 'static,
    R: Reply,
{
    if MethodFilter::try_from(T::METHOD).is_err() {
        tracing::error!(method = %T::METHOD, "ruma method has no axum filter; route skipped");
        return router;
    }
    for path in T::PATH_BUILDER.all_paths() {
        // Clients omit an empty state key (`/state/m.room.name` or `/state/m.room.name/`).
        let mut variants = vec![(path.to_owned(), false)];
        if let Some(base) = path.strip_suffix("/{state_key}") {
            variants.push((base.to_owned(), true));
            variants.push((format!("{base}/"), true));
        }
        for (path, empty_state_key) in variants {
            router = add_route::<T, F, Fut, R>(router, &path, handler.clone(), empty_state_key);
        }
    }
    router
}

fn add_route<T, F, Fut, R>(router: Router<State>, path: &str, handler: F, empty_state_key: bool) -> Router<State>
where
    T: IncomingRequest + Send + 'static,
    T::Authentication: AuthPolicy,
    F: Fn(State, Ruma<T>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<R>> + Send + 'static,
    R: Reply,
{
    let Ok(filter) = MethodFilter::try_from(T::METHOD) else { return router };
    let class = T::RATE_LIMITED.then(|| rate_class(path));
    let endpoint = move |AxState(s): AxState<State>, req: Request| {
        let handler = handler.clone();
        async move {
            let prepared = prepare::<T>(&s, req, T::Authentication::POLICY, class, empty_state_key).await;
            match prepared {
                Ok(r) => match handler(s, r).await {
                    Ok(response) => response.into_reply(),
                    Err(e) => e.into_response(),
                },
                Err(e) => e.into_response(),
            }
        }
    };
    router.route(path, on(filter, endpoint))
}

fn rate_class(path: &str) -> Class {
    if path.contains("/login") {
        Class::Login
    } else if path.contains("/register") {
        Class::Register
    } else {
        Class::Client
    }
}

/// What a handler may answer: a ruma response type, or [`RawJson`] where ruma's type cannot say
/// what the spec requires (e.g. `null` values it would omit).
pub trait Reply {
    fn into_reply(self) -> Response;
}

impl<T: OutgoingResponse> Reply for T {
    fn into_reply(self) -> Response {
        match self.try_into_http_response::<Vec<u8>>() {
            Ok(r) => r.map(Body::from).into_response(),
            Err(e) => Error::internal(format!("serialising response: {e}")).into_response(),
        }
    }
}

/// A 200 response with this JSON body.
pub struct RawJson(pub serde_json::Value);

impl Reply for RawJson {
    fn into_reply(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// The access token from `Authorization: Bearer` or the deprecated `access_token` query parameter.
fn access_token(parts: &Parts) -> Result<Option<String>> {
    if let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION) {
        let value = value.to_str().unwrap_or_default();
        return match value.strip_prefix("Bearer ") {
            Some(token) => Ok(Some(token.trim().to_owned())),
            None => Err(Error::new(ErrorKind::MissingToken, "Invalid Authorization header")),
        };
    }
    let query = parts.uri.query().unwrap_or_default();
    Ok(form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "access_token").map(|(_, v)| v.into_owned()))
}

async fn prepare<T: IncomingRequest>(
    s: &State,
    req: Request,
    policy: Policy,
    rate: Option<Class>,
    empty_state_key: bool,
) -> Result<Ruma<T>> {
    let (mut parts, body) = req.into_parts();
    // The federation listener serves exactly these paths, with its own limit.
    let path = parts.uri.path();
    let limit = if path.starts_with("/_matrix/federation/") || path.starts_with("/_matrix/key/") {
        s.config.federation.max_request_bytes
    } else {
        s.config.server.max_request_bytes
    };
    // A body announced too large is refused before anything else is done for it.
    let timeout = std::time::Duration::from_millis(s.config.server.request_body_timeout_ms);
    let body = super::body::check_length(&parts.headers, body, limit, timeout)?;
    let params = RawPathParams::from_request_parts(&mut parts, s)
        .await
        .map_err(|e| Error::invalid_param(format!("Invalid path parameter: {}", e.body_text())))?;
    let mut path_args: Vec<String> = params.iter().map(|(_, v)| v.to_owned()).collect();
    if empty_state_key {
        path_args.push(String::new());
    }
    let client_ip = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());

    let token = if matches!(policy, Policy::None | Policy::ServerSignatures) { None } else { access_token(&parts)? };
    let auth = match (policy, token) {
        (Policy::Required, None) => return Err(Error::new(ErrorKind::MissingToken, "Missing access token")),
        (_, Some(token)) => Some(tokens::authenticate(s, &token)?),
        (_, None) => None,
    };
    // A locked account may only log out (spec: "Account locking").
    if auth.as_ref().is_some_and(|a| a.locked) && !is_logout(parts.uri.path()) {
        return Err(Error::new(ErrorKind::UserLocked, "Your account is locked"));
    }
    if let Some(class) = rate {
        let key = match (&auth, client_ip) {
            (Some(a), _) if class == Class::Client => a.user_id.to_string(),
            (_, Some(ip)) => ip.to_string(),
            _ => String::new(),
        };
        s.rate_limiter.check(class, &key)?;
    }

    let mut bytes = super::body::read(&parts.headers, body, limit, timeout).await?;
    // The signature covers the body as sent, before an empty body becomes `{}`.
    let origin = match policy {
        Policy::ServerSignatures => Some(s.federation.authenticate(&parts, &bytes).await?),
        _ => None,
    };
    if bytes.is_empty() && matches!(parts.method, Method::POST | Method::PUT) {
        bytes = bytes::Bytes::from_static(b"{}");
    }
    // JSON text is UTF-8 (RFC 8259 §8.1), and serde skips the strings it ignores unchecked.
    let is_json =
        |b: &[u8]| std::str::from_utf8(b).is_ok_and(|t| serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok());
    if !bytes.is_empty() && parts.method != Method::GET && !is_json(&bytes) {
        return Err(Error::new(ErrorKind::NotJson, "Content not JSON."));
    }
    // Every Client-Server JSON body is an object; serde would accept `[]` as a struct.
    if parts.method != Method::GET && bytes.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|&b| b != b'{') {
        return Err(Error::bad_json("Request body must be a JSON object"));
    }

    let args: Vec<&str> = path_args.iter().map(String::as_str).collect();
    let http_request = axum::http::Request::from_parts(parts, bytes.as_ref());
    // Some ruma deserialisers index JSON maps and panic on malformed input: that is bad JSON.
    let parsed = std::panic::catch_unwind(AssertUnwindSafe(|| T::try_from_http_request(http_request, &args)));
    let body = match parsed {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => return Err(parse_error(e)),
        Err(_) => return Err(Error::bad_json("Malformed request body")),
    };

    if let Some(a) = &auth {
        s.device_seen(&a.user_id, &a.device_id, client_ip).await?;
    }
    Ok(Ruma { body, auth, origin, client_ip })
}

/// Map ruma's parse failures to the spec's codes.
fn parse_error(e: FromHttpRequestError) -> Error {
    let missing = |m: &str| m.contains("missing field");
    match e {
        FromHttpRequestError::Deserialization(DeserializationError::Json(e)) => {
            let m = e.to_string();
            if missing(&m) { Error::new(ErrorKind::MissingParam, m) } else { Error::bad_json(m) }
        }
        FromHttpRequestError::Deserialization(DeserializationError::Query(e)) => {
            let m = e.to_string();
            if missing(&m) { Error::new(ErrorKind::MissingParam, m) } else { Error::invalid_param(m) }
        }
        FromHttpRequestError::Deserialization(e) => Error::invalid_param(e.to_string()),
        other => Error::bad_json(other.to_string()),
    }
}

/// `POST /logout` and `/logout/all` under any version prefix.
fn is_logout(path: &str) -> bool {
    path.starts_with("/_matrix/client/") && (path.ends_with("/logout") || path.ends_with("/logout/all"))
}
