//! The Trellis WebSocket API (our addition; protocol in `docs/websocket.md`):
//! `GET /_matrix/client/unstable/org.trellis.ws/v1/connect`.
//!
//! One socket carries what `/sync` would return, pushed as soon as it exists, and the client's
//! requests, each dispatched through the server's own router (same auth, validation, rate limits
//! and errors as over HTTP). One task per socket selects over the client's frames, the notifier
//! (changes its user would see) and a heartbeat; a new sync frame is computed only after the
//! previous one was sent, so a slow reader gets one coalesced catch-up rather than a growing
//! queue.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{Query, State as AxState};
use axum::http::{HeaderMap, Method, Request, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::error::{Error, ErrorKind};
use crate::services::State;
use crate::storage::notifier::Waiter;
use crate::sync::filter::SyncFilter;
use crate::sync::wake::waiter_keys;
use crate::sync::{SyncRequest, compute, parse_token};
use crate::users::tokens::{self, Auth};

pub const PATH: &str = "/_matrix/client/unstable/org.trellis.ws/v1/connect";
/// The client must authenticate within this time when no token came with the upgrade.
const AUTH_TIMEOUT: Duration = Duration::from_secs(5);
/// Server pings this often; a socket silent for `IDLE_TIMEOUT` is closed.
const PING_EVERY: Duration = Duration::from_secs(30);
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Close code for authentication failures (4000–4999 are for applications).
const CLOSE_AUTH: u16 = 4401;

/// The client router the sockets' requests run through (built beside the router serving
/// [`PATH`], in `api::client_router`).
#[derive(Clone)]
pub struct Dispatch(pub axum::Router);

/// `GET /_matrix/client/unstable/org.trellis.ws/v1/connect`
pub async fn connect(
    AxState(s): AxState<State>,
    axum::Extension(Dispatch(router)): axum::Extension<Dispatch>,
    headers: HeaderMap,
    Query(query): Query<std::collections::HashMap<String, String>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Ok(ws) = ws else {
        return Error::new(ErrorKind::Unrecognized { method_not_allowed: false }, "WebSocket upgrade required")
            .with_status(axum::http::StatusCode::BAD_REQUEST)
            .into_response();
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let token = bearer.or_else(|| query.get("access_token").cloned());
    // A token given with the upgrade is checked before the upgrade: a bad one is a plain 401.
    let auth = match token {
        Some(t) => match authenticate(&s, t.clone()).await {
            Ok(a) => Some((a, t)),
            Err(e) => return e.into_response(),
        },
        None => None,
    };
    ws.on_upgrade(move |socket| Session::run(s, router, socket, auth))
}

async fn authenticate(s: &State, token: String) -> Result<Auth, Error> {
    let auth = tokens::authenticate(s, &token)?;
    if auth.locked {
        return Err(Error::new(ErrorKind::UserLocked, "Your account is locked"));
    }
    Ok(auth)
}

struct Session {
    s: State,
    router: axum::Router,
    socket: WebSocket,
    auth: Auth,
    token: String,
    /// Set by a `sync` frame: what to push and from where.
    sync: Option<Arc<SyncRequest>>,
    /// A `sync` frame is answered at once, even when nothing is new.
    answer_due: bool,
    /// Wakes for changes this socket's user would see (keys set before each computation).
    waiter: Waiter,
}

fn frame(v: Value) -> Message {
    // `to_string` writes straight into a buffer (`Display` goes through a formatter per token).
    Message::Text(serde_json::to_string(&v).unwrap_or_default().into())
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: reason.to_owned().into() }))
}

impl Session {
    async fn run(s: State, router: axum::Router, mut socket: WebSocket, auth: Option<(Auth, String)>) {
        let (auth, token) = match auth {
            Some(a) => a,
            None => match Self::first_frame_auth(&s, &mut socket).await {
                Some(a) => a,
                None => return,
            },
        };
        let _ =
            socket.send(frame(json!({ "type": "ready", "user_id": auth.user_id, "device_id": auth.device_id }))).await;
        let waiter = s.db.stream().waiter();
        let mut session = Session { s, router, socket, auth, token, sync: None, answer_due: false, waiter };
        session.serve().await;
    }

    /// Wait for `{"type":"auth","access_token":...}`; on failure send the Matrix error and close.
    async fn first_frame_auth(s: &State, socket: &mut WebSocket) -> Option<(Auth, String)> {
        let first = tokio::time::timeout(AUTH_TIMEOUT, socket.recv()).await;
        let token = match first {
            Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str::<Value>(&t)
                .ok()
                .filter(|v| v["type"] == "auth")
                .and_then(|v| v["access_token"].as_str().map(str::to_owned)),
            _ => None,
        };
        let result = match token {
            Some(t) => authenticate(s, t.clone()).await.map(|a| (a, t)),
            None => {
                Err(Error::new(ErrorKind::MissingToken, "Authenticate first: {\"type\":\"auth\",\"access_token\":...}"))
            }
        };
        match result {
            Ok(a) => Some(a),
            Err(e) => {
                let (_, body) = e.to_parts(false);
                let _ = socket.send(frame(json!({ "type": "error", "error": body }))).await;
                let _ = socket.send(close(CLOSE_AUTH, body["errcode"].as_str().unwrap_or("M_UNKNOWN_TOKEN"))).await;
                None
            }
        }
    }

    async fn serve(&mut self) {
        let Ok(_presence) = crate::sync::hooks::activity(&self.s, &self.auth.user_id, None).await else { return };
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        let mut last_heard = tokio::time::Instant::now();
        let mut dirty = false;
        loop {
            if dirty && self.sync.is_some() {
                dirty = false;
                // As `/sync` does: ready tasks first, so concurrent writes share one frame.
                tokio::task::yield_now().await;
                if !self.push().await {
                    return;
                }
            }
            tokio::select! {
                msg = self.socket.recv() => {
                    last_heard = tokio::time::Instant::now();
                    match msg {
                        Some(Ok(Message::Text(t))) => match self.on_frame(&t).await {
                            Some(push_now) => dirty |= push_now,
                            None => return,
                        },
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                        Some(Ok(_)) => {}
                    }
                }
                () = self.waiter.notified(), if self.sync.is_some() => {
                    metrics::counter!(crate::sync::WAKEUPS).increment(1);
                    dirty = true;
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > IDLE_TIMEOUT || !self.still_authorized().await {
                        return;
                    }
                    if self.socket.send(Message::Ping(Vec::new().into())).await.is_err() { return; }
                }
            }
        }
    }

    /// Logged out or revoked: send the error and close. Returns whether the token still works.
    async fn still_authorized(&mut self) -> bool {
        match authenticate(&self.s, self.token.clone()).await {
            Ok(_) => true,
            Err(e) => {
                let (_, body) = e.to_parts(false);
                let _ = self.socket.send(frame(json!({ "type": "error", "error": body }))).await;
                let _ =
                    self.socket.send(close(CLOSE_AUTH, body["errcode"].as_str().unwrap_or("M_UNKNOWN_TOKEN"))).await;
                false
            }
        }
    }

    /// Compute and send one sync frame if there is anything new (always the first time).
    async fn push(&mut self) -> bool {
        if !self.still_authorized().await {
            return false;
        }
        let Some(req) = self.sync.clone() else { return true };
        // Keys before the position, as `/sync` does (the user's rooms may have changed).
        if let Ok(keys) = waiter_keys(&self.s.db, &self.auth.user_id, self.auth.device_id.as_str()) {
            self.waiter.watch(keys);
        }
        let upto = self.s.db.stream().committed();
        let computed = compute(&self.s, &self.auth.user_id, self.auth.device_id.as_str(), &req, upto);
        match computed {
            Ok((response, has_data)) => {
                let first = std::mem::take(&mut self.answer_due);
                let next = response["next_batch"].as_str().and_then(|t| parse_token(&self.s, t).ok());
                self.sync = Some(Arc::new(SyncRequest {
                    since: next.or(req.since),
                    full_state: false,
                    filter: req.filter.clone(),
                    timeout: Duration::ZERO,
                    set_presence: None,
                }));
                if has_data || first {
                    return self
                        .socket
                        .send(frame(crate::sync::object([("type", json!("sync")), ("data", response)])))
                        .await
                        .is_ok();
                }
                true
            }
            Err(e) => {
                let (_, body) = e.to_parts(false);
                self.socket.send(frame(json!({ "type": "error", "error": body }))).await.is_ok()
            }
        }
    }

    /// Handle a client frame. `Some(true)`: a sync frame is due; `None`: close.
    async fn on_frame(&mut self, text: &str) -> Option<bool> {
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            let err = json!({ "errcode": "M_NOT_JSON", "error": "Frames are JSON objects" });
            return self.socket.send(frame(json!({ "type": "error", "error": err }))).await.ok().map(|_| false);
        };
        let id = v.get("id").cloned().unwrap_or(Value::Null);
        let reply = match v["type"].as_str() {
            Some("ping") => json!({ "type": "pong", "id": id }),
            Some("sync") => match self.start_sync(&v).await {
                Ok(()) => return Some(true),
                Err(e) => json!({ "type": "response", "id": id, "error": e.to_parts(false).1 }),
            },
            Some("request") => self.request(&v, id).await,
            _ => {
                json!({ "type": "response", "id": id, "error": { "errcode": "M_UNRECOGNIZED", "error": "Unknown frame type" } })
            }
        };
        self.socket.send(frame(reply)).await.ok().map(|_| false)
    }

    /// `{"type":"sync","since":?,"filter":?,"full_state":?}`: (re)start pushing from `since`.
    async fn start_sync(&mut self, v: &Value) -> Result<(), Error> {
        let since = match v.get("since").and_then(Value::as_str) {
            Some(t) => Some(parse_token(&self.s, t)?),
            None => None,
        };
        let filter = match v.get("filter") {
            Some(Value::Object(_)) => SyncFilter::from_json(&v["filter"]),
            Some(Value::String(id)) => {
                let stored = crate::users::account_data::get_filter(&self.s.db, &self.auth.user_id, id)?;
                SyncFilter::from_json(&stored)
            }
            _ => SyncFilter::default(),
        };
        if let Some(since) = since {
            crate::sync::hooks::ack_to_device(&self.s, &self.auth.user_id, &self.auth.device_id, since.to_device)?;
        }
        let full_state = v.get("full_state").and_then(Value::as_bool).unwrap_or(false);
        self.sync =
            Some(Arc::new(SyncRequest { since, full_state, filter, timeout: Duration::ZERO, set_presence: None }));
        self.answer_due = true;
        Ok(())
    }

    /// `{"type":"request","id":..,"method":"PUT","path":"/_matrix/client/v3/...","body":{..}}`:
    /// run it through the router as this socket's user.
    async fn request(&mut self, v: &Value, id: Value) -> Value {
        let method = v["method"].as_str().and_then(|m| Method::from_bytes(m.as_bytes()).ok()).unwrap_or(Method::GET);
        let path = v["path"].as_str().unwrap_or_default();
        if !path.starts_with("/_matrix/client/") || path.contains("/sync") || path.starts_with(PATH) {
            let err = json!({ "errcode": "M_UNRECOGNIZED", "error": "Not available over the WebSocket" });
            return json!({ "type": "response", "id": id, "status": 404, "error": err });
        }
        let body = v.get("body").map(|b| b.to_string()).unwrap_or_default();
        let router = self.router.clone();
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body));
        let Ok(req) = req else {
            return json!({ "type": "response", "id": id, "status": 400, "error": { "errcode": "M_INVALID_PARAM", "error": "Invalid path" } });
        };
        let response = match router.oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024).await.unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status < 400 {
            json!({ "type": "response", "id": id, "status": status, "result": body })
        } else {
            json!({ "type": "response", "id": id, "status": status, "error": body })
        }
    }
}
