//! A minimal spec-following federation peer that is not Trellis (nor Synapse), driven by the test
//! itself: an HTTPS server on 127.0.0.1 (axum over tokio-rustls, the test CA's certificate for
//! 127.0.0.1), named `127.0.0.1:<port>`, with its own ed25519 key.
//!
//! It serves only what the spec requires of a server that joins a room and receives its events:
//! `GET /_matrix/key/v2/server` (its signed key response, without the optional
//! `old_verify_keys`) and `PUT /_matrix/federation/v1/send/{txnId}`, whose `X-Matrix` signature
//! it checks by hand (spec: "Request Authentication") with the origin's key fetched from the
//! origin's own `/_matrix/key/v2/server`. Everything else (`/version`, notary queries,
//! `/get_missing_events`, ...) gets 404 `M_UNRECOGNIZED` and is recorded in [`Log::unserved`], so
//! a test can assert that Trellis did not depend on it.
//!
//! As a client it signs its own requests to Trellis: `make_join` + `send_join` ([`Peer::join`])
//! and transactions of its own PDUs ([`Peer::send_message`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use reqwest::Method as ReqMethod;
use ruma::room_version_rules::RoomVersionRules;
use ruma::serde::Base64;
use ruma::signatures::{
    Ed25519KeyPair, PublicKeyMap, Verified, hash_and_sign_event, reference_hash, sign_json, verify_event,
};
use ruma::{CanonicalJsonObject, OwnedServerName, RoomVersionId, ServerName};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::{Fed, Pki, now_ms, verify_signature, x_matrix};
use crate::server::{Resp, urlencode};

/// The peer's one signing key.
pub const KEY_ID: &str = "ed25519:peer1";
/// How long the peer's key response says its key is valid, unless [`Peer::set_key_validity`].
const KEY_VALID_MS: u64 = 3600 * 1000;

/// One `/send` transaction as the peer received it (its `X-Matrix` verified).
#[derive(Debug, Clone)]
pub struct Txn {
    pub txn_id: String,
    /// The `origin` of the `X-Matrix` header (the body's `origin` must be the same).
    pub origin: String,
    /// The `destination` of the `X-Matrix` header, when it had one.
    pub destination: Option<String>,
    pub body: Value,
    pub at: Instant,
}

impl Txn {
    pub fn pdus(&self) -> &[Value] {
        self.body["pdus"].as_array().map_or(&[], Vec::as_slice)
    }

    pub fn edus(&self) -> &[Value] {
        self.body["edus"].as_array().map_or(&[], Vec::as_slice)
    }
}

/// Everything the peer saw, in order.
#[derive(Debug, Clone, Default)]
pub struct Log {
    /// `METHOD /path` of every request.
    pub requests: Vec<String>,
    /// `METHOD /path?query` of every request the peer does not serve (answered 404).
    pub unserved: Vec<String>,
    /// `/send` requests whose authentication failed, and why (answered 401).
    pub refused: Vec<String>,
    /// Verified `/send` transactions answered 500 on purpose ([`Peer::fail_sends`]).
    pub failed: Vec<Txn>,
    /// Verified `/send` transactions answered `{"pdus": {}}`.
    pub txns: Vec<Txn>,
}

struct Shared {
    name: OwnedServerName,
    key: Ed25519KeyPair,
    /// Trusts only the test CA.
    https: reqwest::Client,
    /// Other servers' verify keys (`key_id → {"key": base64}`), as fetched from themselves.
    keys: tokio::sync::Mutex<HashMap<String, Value>>,
    log: Mutex<Log>,
    /// `/send` requests still to answer with 500.
    fail_sends: AtomicU32,
    /// The body of the 200 answer to `/send` (`{"pdus": {}}` unless [`Peer::set_send_answer`]).
    send_answer: Mutex<Value>,
    /// `valid_until_ts` of the key response = now + this (ms).
    key_validity: AtomicU64,
    /// Bumped on every change of `log`.
    changed: watch::Sender<u64>,
}

impl Shared {
    fn record(&self, f: impl FnOnce(&mut Log)) {
        f(&mut self.log.lock().unwrap());
        self.changed.send_modify(|n| *n += 1);
    }

    /// `GET /_matrix/key/v2/server`: the current key only, valid for an hour, self-signed.
    fn key_response(&self) -> Value {
        let key: Base64 = Base64::new(self.key.public_key().to_vec());
        let object = json!({
            "server_name": self.name,
            "verify_keys": { KEY_ID: { "key": key.encode() } },
            "valid_until_ts": now_ms() + self.key_validity.load(Ordering::SeqCst),
        });
        let mut object: CanonicalJsonObject = serde_json::from_value(object).unwrap();
        sign_json(self.name.as_str(), &self.key, &mut object).unwrap();
        serde_json::to_value(object).unwrap()
    }

    /// The verify keys of `server`, fetched once from its own `/_matrix/key/v2/server` (an IP
    /// literal with a port needs no discovery) and checked: its `server_name`, an unexpired
    /// `valid_until_ts`, its own signature.
    async fn keys_of(&self, server: &str) -> Result<Value, String> {
        let mut keys = self.keys.lock().await;
        if let Some(k) = keys.get(server) {
            return Ok(k.clone());
        }
        let url = format!("https://{server}/_matrix/key/v2/server");
        let response = self.https.get(&url).send().await.map_err(|e| format!("GET {url}: {e}"))?;
        let body: Value = response.json().await.map_err(|e| format!("GET {url}: {e}"))?;
        if body["server_name"] != server {
            return Err(format!("key response of {server} names {}", body["server_name"]));
        }
        if body["valid_until_ts"].as_u64().is_none_or(|ts| ts < now_ms()) {
            return Err(format!("key response of {server} has expired: {body}"));
        }
        verify_signature(&body, server, &body["verify_keys"])?;
        keys.insert(server.to_owned(), body["verify_keys"].clone());
        Ok(body["verify_keys"].clone())
    }

    /// Check a request's `X-Matrix` header by the spec's recipe: the JSON object of method, URI
    /// (path and query as sent), origin, destination (ours when the header has none) and
    /// content, signed by the origin's key. Returns the origin and the header's destination.
    async fn authenticate(
        &self,
        method: &str,
        uri: &str,
        headers: &HeaderMap,
        content: Option<&Value>,
    ) -> Result<(String, Option<String>), String> {
        let header = headers.get(header::AUTHORIZATION).ok_or("no Authorization header")?;
        let params = parse_x_matrix(header.to_str().map_err(|e| e.to_string())?)?;
        let param = |name: &str| params.get(name).cloned().ok_or(format!("no {name} in X-Matrix"));
        let (origin, key_id, sig) = (param("origin")?, param("key")?, param("sig")?);
        let destination = params.get("destination").cloned();
        if destination.as_deref().is_some_and(|d| d != self.name.as_str()) {
            return Err(format!("destination {destination:?} is not {}", self.name));
        }
        let keys = self.keys_of(&origin).await?;
        let key = keys.get(&key_id).ok_or(format!("{origin} has no key {key_id}"))?;
        let mut signed = json!({
            "method": method,
            "uri": uri,
            "origin": origin,
            "destination": destination.clone().unwrap_or_else(|| self.name.to_string()),
            "signatures": { &origin: { &key_id: sig } },
        });
        if let Some(c) = content {
            signed["content"] = c.clone();
        }
        verify_signature(&signed, &origin, &json!({ &key_id: key }))?;
        Ok((origin, destination))
    }
}

/// The parameters of `X-Matrix origin=…,destination=…,key="…",sig="…"` (values quoted or not).
fn parse_x_matrix(header: &str) -> Result<HashMap<String, String>, String> {
    let (scheme, params) = header.split_once(' ').ok_or("not an X-Matrix header")?;
    if !scheme.eq_ignore_ascii_case("X-Matrix") {
        return Err(format!("scheme {scheme}"));
    }
    let mut out = HashMap::new();
    for param in params.split(',') {
        let (name, value) = param.trim().split_once('=').ok_or(format!("bad parameter {param:?}"))?;
        let value = value.trim();
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
        out.insert(name.trim().to_ascii_lowercase(), value.replace("\\\"", "\"").replace("\\\\", "\\"));
    }
    Ok(out)
}

fn error(status: StatusCode, errcode: &str, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "errcode": errcode, "error": message.into() }))).into_response()
}

async fn key_server(State(p): State<Arc<Shared>>) -> Response {
    axum::Json(p.key_response()).into_response()
}

async fn put_send(
    State(p): State<Arc<Shared>>,
    Path(txn_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map_or("/", |pq| pq.as_str()).to_owned();
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        p.record(|l| l.refused.push(format!("{path}: body is not JSON")));
        return error(StatusCode::BAD_REQUEST, "M_NOT_JSON", "Body is not JSON");
    };
    let (origin, destination) = match p.authenticate("PUT", &path, &headers, Some(&body)).await {
        Ok(ok) if body["origin"] == ok.0.as_str() => ok,
        Ok((origin, _)) => {
            p.record(|l| l.refused.push(format!("{path}: origin {origin} but the body says {}", body["origin"])));
            return error(StatusCode::BAD_REQUEST, "M_BAD_JSON", "origin mismatch");
        }
        Err(why) => {
            p.record(|l| l.refused.push(format!("{path}: {why}")));
            return error(StatusCode::UNAUTHORIZED, "M_UNAUTHORIZED", why);
        }
    };
    let txn = Txn { txn_id, origin, destination, body, at: Instant::now() };
    if p.fail_sends.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
        p.record(|l| l.failed.push(txn));
        return error(StatusCode::INTERNAL_SERVER_ERROR, "M_UNKNOWN", "Failing on purpose");
    }
    p.record(|l| l.txns.push(txn));
    axum::Json(p.send_answer.lock().unwrap().clone()).into_response()
}

async fn unserved(State(p): State<Arc<Shared>>, method: Method, uri: Uri) -> Response {
    let line = format!("{method} {}", uri.path_and_query().map_or("/", |pq| pq.as_str()));
    p.record(|l| l.unserved.push(line));
    error(StatusCode::NOT_FOUND, "M_UNRECOGNIZED", "Unrecognized request")
}

/// Every request is logged; every response closes its connection, so a stopped peer is really
/// unreachable (no kept-alive connection survives it).
async fn around(State(p): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let line = format!("{} {}", request.method(), request.uri().path());
    p.record(|l| l.requests.push(line));
    let mut response = next.run(request).await;
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// TLS connections for `axum::serve`, one handshake at a time (plenty for a test).
struct TestTls {
    tcp: TcpListener,
    tls: TlsAcceptor,
}

impl axum::serve::Listener for TestTls {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else { continue };
            if let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(5), self.tls.accept(tcp)).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// A room the peer joined, as it knows it.
#[derive(Debug, Clone)]
pub struct Joined {
    pub room_id: String,
    /// The peer's user that joined.
    pub user: String,
    pub version: RoomVersionId,
    pub rules: RoomVersionRules,
    /// The join event as the resident server returned it, and its ID.
    pub event: Value,
    pub event_id: String,
    /// The `send_join` response.
    pub response: Value,
    /// The event IDs of the room's state before the join, by `(type, state_key)`.
    pub state_ids: HashMap<(String, String), String>,
}

/// The peer.
pub struct Peer {
    pub name: OwnedServerName,
    shared: Arc<Shared>,
    addr: SocketAddr,
    tls: TlsAcceptor,
    task: Option<JoinHandle<()>>,
    txn_counter: AtomicU32,
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Peer {
    /// Listen on a free port of 127.0.0.1 with `pki`'s certificate, with a new key.
    pub async fn start(pki: &Pki) -> Peer {
        let mut config = trellis::federation::listener::server_config(&pki.cert, &pki.key).unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let name = ServerName::parse(addr.to_string()).unwrap();
        let key = Ed25519KeyPair::from_der(&Ed25519KeyPair::generate(), "peer1".into()).unwrap();
        let shared = Arc::new(Shared {
            name: name.clone(),
            key,
            https: pki.https(),
            keys: Default::default(),
            log: Default::default(),
            fail_sends: AtomicU32::new(0),
            key_validity: AtomicU64::new(KEY_VALID_MS),
            send_answer: Mutex::new(json!({ "pdus": {} })),
            changed: watch::channel(0).0,
        });
        let tls = TlsAcceptor::from(Arc::new(config));
        let mut peer = Peer { name, shared, addr, tls, task: None, txn_counter: AtomicU32::new(0) };
        peer.serve(tcp);
        peer
    }

    fn serve(&mut self, tcp: TcpListener) {
        let p = self.shared.clone();
        let router = axum::Router::new()
            .route("/_matrix/key/v2/server", axum::routing::get(key_server))
            .route("/_matrix/federation/v1/send/{txn_id}", axum::routing::put(put_send))
            .fallback(unserved)
            .method_not_allowed_fallback(unserved)
            .layer(axum::middleware::from_fn_with_state(p.clone(), around))
            .with_state(p);
        let listener = TestTls { tcp, tls: self.tls.clone() };
        self.task = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        }));
    }

    /// Stop listening: connections to the peer are refused.
    pub async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listen again on the same port.
    pub async fn restart(&mut self) {
        let tcp = TcpListener::bind(self.addr).await.unwrap();
        self.serve(tcp);
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Answer the next `n` `/send` requests with 500 (after verifying them).
    pub fn fail_sends(&self, n: u32) {
        self.shared.fail_sends.store(n, Ordering::SeqCst);
    }

    /// Answer verified `/send` requests 200 with `body`.
    pub fn set_send_answer(&self, body: Value) {
        *self.shared.send_answer.lock().unwrap() = body;
    }

    /// Publish keys valid for `ms` from each request on.
    pub fn set_key_validity(&self, ms: u64) {
        self.shared.key_validity.store(ms, Ordering::SeqCst);
    }

    /// How many times the peer served its key response.
    pub fn key_fetches(&self) -> usize {
        self.log().requests.iter().filter(|r| *r == "GET /_matrix/key/v2/server").count()
    }

    pub fn user(&self, local: &str) -> String {
        format!("@{local}:{}", self.name)
    }

    pub fn log(&self) -> Log {
        self.shared.log.lock().unwrap().clone()
    }

    /// Wait (at most `secs`) until `found` returns something for the log.
    pub async fn wait_for<T>(&self, what: &str, secs: u64, found: impl Fn(&Log) -> Option<T>) -> T {
        let mut changes = self.shared.changed.subscribe();
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(t) = found(&self.log()) {
                return t;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, changes.changed()).await.is_err() {
                panic!("timed out after {secs} s waiting for {what}; the peer saw {:#?}", self.log());
            }
        }
    }

    /// Wait for the transaction carrying the PDU `event_id` of `room`; returns it and the PDU.
    pub async fn wait_pdu(&self, room: &Joined, event_id: &str, secs: u64) -> (Txn, Value) {
        self.wait_for(&format!("PDU {event_id}"), secs, |log| {
            log.txns.iter().find_map(|t| {
                let pdu = t.pdus().iter().find(|p| room.event_id_of(p) == event_id)?;
                Some((t.clone(), pdu.clone()))
            })
        })
        .await
    }

    /// Wait for an EDU of `edu_type` whose content satisfies `pred`; returns its transaction and
    /// the EDU.
    pub async fn wait_edu(&self, edu_type: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> (Txn, Value) {
        self.wait_for(&format!("an {edu_type} EDU"), secs, |log| {
            log.txns.iter().find_map(|t| {
                let edu = t.edus().iter().find(|e| e["edu_type"] == edu_type && pred(&e["content"]))?;
                Some((t.clone(), edu.clone()))
            })
        })
        .await
    }

    /// The verify keys `server` publishes (fetched from it once, checked).
    pub async fn keys_of(&self, server: &ServerName) -> Value {
        self.shared.keys_of(server.as_str()).await.unwrap()
    }

    /// `server`'s keys as `ruma::signatures::verify_event` takes them.
    pub async fn key_map(&self, server: &ServerName) -> PublicKeyMap {
        super::public_key_map(server.as_str(), &self.keys_of(server).await)
    }

    /// A request to `to` signed with the peer's key.
    pub async fn request(&self, to: &Fed, method: ReqMethod, path: &str, body: Option<&Value>) -> Resp {
        let auth = x_matrix(&self.shared.key, &self.name, &to.name, method.as_str(), path, body);
        to.request(method, path, Some(&auth), body).await
    }

    /// Join `room_id` on `to` as `@local:<peer>`, the way the spec says: `make_join` (offering
    /// room versions 10, 11 and 12), the template completed (hashes, the peer's signature, the
    /// event ID per room version), `send_join` v2; then the response is checked: the event
    /// returned is ours, signed by `to` too; every state and auth chain event is signed by its
    /// server (`to`) with a matching content hash; the auth chain holds the join's auth events.
    pub async fn join(&self, to: &Fed, room_id: &str, local: &str) -> Joined {
        let user = self.user(local);
        let path = format!(
            "/_matrix/federation/v1/make_join/{}/{}?ver=10&ver=11&ver=12",
            urlencode(room_id),
            urlencode(&user)
        );
        let r = self.request(to, ReqMethod::GET, &path, None).await;
        assert_eq!(r.status, 200, "make_join: {:?}", r.body);
        let version = RoomVersionId::try_from(r.body["room_version"].as_str().unwrap()).unwrap();
        let rules = version.rules().unwrap();
        let template = &r.body["event"];
        assert_eq!(
            (&template["type"], &template["state_key"], &template["sender"], &template["content"]["membership"]),
            (&json!("m.room.member"), &json!(user), &json!(user), &json!("join")),
            "{template}"
        );
        assert_eq!(template["room_id"], room_id);
        let mut event: CanonicalJsonObject = serde_json::from_value(template.clone()).unwrap();
        hash_and_sign_event(self.name.as_str(), &self.shared.key, &mut event, &rules.redaction).unwrap();
        let event_id = format!("${}", reference_hash(&event, &rules).unwrap());

        let path = format!("/_matrix/federation/v2/send_join/{}/{}", urlencode(room_id), urlencode(&event_id));
        let r = self.request(to, ReqMethod::PUT, &path, Some(&serde_json::to_value(&event).unwrap())).await;
        assert_eq!(r.status, 200, "send_join: {:?}", r.body);
        assert_eq!(r.body["origin"], to.name.as_str());

        let mut joined = Joined {
            room_id: room_id.to_owned(),
            user,
            version,
            rules,
            event: r.body["event"].clone(),
            event_id,
            response: r.body.clone(),
            state_ids: HashMap::new(),
        };
        assert_eq!(joined.event_id_of(&joined.event), joined.event_id, "the join came back changed");
        let redacted = ruma::canonical_json::redact(
            serde_json::from_value(joined.event.clone()).unwrap(),
            &joined.rules.redaction,
            None,
        )
        .unwrap();
        let theirs = self.keys_of(&to.name).await;
        verify_signature(&serde_json::to_value(redacted).unwrap(), to.name.as_str(), &theirs)
            .expect("the join signed by the resident server");
        let map = self.key_map(&to.name).await;
        let mut known = std::collections::BTreeSet::new();
        for part in ["state", "auth_chain"] {
            let events = r.body[part].as_array().unwrap_or_else(|| panic!("no {part}: {:?}", r.body));
            assert!(!events.is_empty(), "empty {part}");
            for pdu in events {
                assert_signed(&map, pdu, &joined.rules, part);
                let id = joined.event_id_of(pdu);
                if part == "state" {
                    let key = (pdu["type"].as_str().unwrap().to_owned(), pdu["state_key"].as_str().unwrap().to_owned());
                    joined.state_ids.insert(key, id.clone());
                }
                known.insert(id);
            }
        }
        for kind in ["m.room.create", "m.room.power_levels", "m.room.join_rules"] {
            assert!(joined.state_ids.contains_key(&(kind.to_owned(), String::new())), "no {kind} in the state");
        }
        for auth in event["auth_events"].as_array().unwrap() {
            assert!(known.contains(auth.as_str().unwrap()), "auth event {auth} not in state or auth chain");
        }
        joined
    }

    /// The room's latest event the peer knows (its join, or a later PDU it received) and its
    /// depth.
    pub fn tip(&self, room: &Joined) -> (String, u64) {
        let mut tip = (room.event_id.clone(), room.event["depth"].as_u64().unwrap());
        for t in &self.log().txns {
            for pdu in t.pdus().iter().filter(|p| p["room_id"] == room.room_id.as_str()) {
                let depth = pdu["depth"].as_u64().unwrap_or(0);
                if depth > tip.1 {
                    tip = (room.event_id_of(pdu), depth);
                }
            }
        }
        tip
    }

    /// A text message of the peer's user on the room's latest event, in a transaction of the
    /// peer's own (`PUT /send/{txnId}`, signed). Returns the event ID and Trellis's answer.
    pub async fn send_message(&self, to: &Fed, room: &Joined, body: &str) -> (String, Resp) {
        let (prev, depth) = self.tip(room);
        self.send_message_after(to, room, body, &prev, depth).await
    }

    /// [`Peer::send_message`] with the given prev event and its depth.
    pub async fn send_message_after(
        &self,
        to: &Fed,
        room: &Joined,
        body: &str,
        prev: &str,
        depth: u64,
    ) -> (String, Resp) {
        let mut auth = Vec::new();
        if !room.rules.authorization.room_create_event_id_as_room_id {
            auth.push(room.state_ids[&("m.room.create".to_owned(), String::new())].clone());
        }
        auth.push(room.state_ids[&("m.room.power_levels".to_owned(), String::new())].clone());
        auth.push(room.event_id.clone());
        let pdu = json!({
            "room_id": room.room_id, "sender": room.user, "type": "m.room.message",
            "content": { "msgtype": "m.text", "body": body }, "depth": depth + 1,
            "origin_server_ts": now_ms(), "prev_events": [prev], "auth_events": auth,
        });
        let mut pdu: CanonicalJsonObject = serde_json::from_value(pdu).unwrap();
        hash_and_sign_event(self.name.as_str(), &self.shared.key, &mut pdu, &room.rules.redaction).unwrap();
        let event_id = format!("${}", reference_hash(&pdu, &room.rules).unwrap());
        let r = self.send_txn(to, &[serde_json::to_value(pdu).unwrap()], &[]).await;
        (event_id, r)
    }

    /// A transaction of the peer's own (`PUT /send/{txnId}`, a new `txnId`, signed); `edus`
    /// left out of the body when empty (it is optional).
    pub async fn send_txn(&self, to: &Fed, pdus: &[Value], edus: &[Value]) -> Resp {
        let n = self.txn_counter.fetch_add(1, Ordering::SeqCst);
        let mut body = json!({ "origin": self.name, "origin_server_ts": now_ms(), "pdus": pdus });
        if !edus.is_empty() {
            body["edus"] = json!(edus);
        }
        self.request(to, ReqMethod::PUT, &format!("/_matrix/federation/v1/send/peer{n}"), Some(&body)).await
    }
}

/// `pdu` carries valid signatures of the servers the room version requires (keys in `map`) and
/// a matching content hash.
pub fn assert_signed(map: &PublicKeyMap, pdu: &Value, rules: &RoomVersionRules, what: &str) {
    let obj: CanonicalJsonObject = serde_json::from_value(pdu.clone()).unwrap();
    match verify_event(map, &obj, rules) {
        Ok(Verified::All) => {}
        other => panic!("{what}: {other:?}: {pdu}"),
    }
}

impl Joined {
    /// The event ID of a PDU of this room (the reference hash: room versions 3+).
    pub fn event_id_of(&self, pdu: &Value) -> String {
        let obj: CanonicalJsonObject = serde_json::from_value(pdu.clone()).unwrap();
        format!("${}", reference_hash(&obj, &self.rules).unwrap())
    }
}
