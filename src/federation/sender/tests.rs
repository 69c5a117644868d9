//! The sending queue against a fake peer: a real HTTPS server inside the test (axum over
//! tokio-rustls, a certificate for 127.0.0.1 from a test CA the services trust through
//! `federation.extra_ca_file`) that records every `PUT /send/{txnId}` it gets.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use ruma::{OwnedServerName, OwnedUserId, ServerName, UserId};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::queue;
use crate::config::Config;
use crate::rooms::append::send;
use crate::rooms::build::NewEvent;
use crate::rooms::create::{CreateRoom, create};
use crate::services::{Services, State};

/// One transaction as the peer received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub txn_id: String,
    pub authorization: String,
    pub body: Value,
}

#[derive(Default)]
struct PeerState {
    received: Mutex<Vec<Received>>,
    /// The status to answer with (200 unless set).
    status: AtomicU16,
}

/// The fake peer. `gate`: requests are answered only while it is `true`.
pub struct Peer {
    pub name: OwnedServerName,
    addr: SocketAddr,
    state: Arc<PeerState>,
    count: watch::Sender<usize>,
    gate: watch::Sender<bool>,
    tls: TlsAcceptor,
    task: Option<JoinHandle<()>>,
    dir: tempfile::TempDir,
}

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

type PeerCtx = (Arc<PeerState>, watch::Sender<usize>, watch::Receiver<bool>);

async fn put_send(
    AxState(ctx): AxState<PeerCtx>,
    Path(txn_id): Path<String>,
    headers: HeaderMap,
    body: String,
) -> impl IntoResponse {
    let (state, count, mut gate) = ctx;
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let n = {
        let mut received = state.received.lock().unwrap();
        received.push(Received { txn_id, authorization, body });
        received.len()
    };
    count.send_replace(n);
    let _ = gate.wait_for(|open| *open).await;
    let status = StatusCode::from_u16(state.status.load(Ordering::SeqCst)).unwrap_or(StatusCode::OK);
    // One request per connection, so a stopped peer is really unreachable.
    (status, [(header::CONNECTION, "close")], axum::Json(json!({ "pdus": {} })))
}

impl Peer {
    pub async fn start() -> Peer {
        let dir = tempfile::tempdir().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "Sender test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().signed_by(&leaf_key, &ca).unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(&cert, leaf.pem()).unwrap();
        std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
        let mut config = crate::federation::listener::server_config(&cert, &key).unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let state = Arc::new(PeerState { status: AtomicU16::new(200), ..Default::default() });
        let mut peer = Peer {
            name: ServerName::parse(addr.to_string()).unwrap(),
            addr,
            state,
            count: watch::channel(0).0,
            gate: watch::channel(true).0,
            tls: TlsAcceptor::from(Arc::new(config)),
            task: None,
            dir,
        };
        peer.serve(tcp);
        peer
    }

    fn serve(&mut self, tcp: TcpListener) {
        let ctx: PeerCtx = (self.state.clone(), self.count.clone(), self.gate.subscribe());
        let router = axum::Router::new()
            .route("/_matrix/federation/v1/send/{txn_id}", axum::routing::put(put_send))
            .with_state(ctx);
        let listener = TestTls { tcp, tls: self.tls.clone() };
        self.task = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        }));
    }

    pub fn ca_file(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Stop listening: connections are refused.
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

    pub fn set_status(&self, status: u16) {
        self.state.status.store(status, Ordering::SeqCst);
    }

    pub fn hold(&self, held: bool) {
        self.gate.send_replace(!held);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Wait (at most 15 s) until `n` transactions have arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let mut rx = self.count.subscribe();
        let waited = tokio::time::timeout(Duration::from_secs(15), rx.wait_for(|c| *c >= n)).await;
        assert!(waited.is_ok(), "expected {n} transactions, got {:?}", self.received());
        self.received()
    }
}

/// Services on `dir` that trust the peer's CA and may connect to loopback.
pub fn services_on(dir: &std::path::Path, peer: &Peer) -> State {
    let mut config = Config::default();
    config.database.path = dir.join("db");
    config.federation.extra_ca_file = Some(peer.ca_file());
    config.federation.allow_ip_ranges = vec!["127.0.0.0/8".parse().unwrap()];
    Services::new(config).map_err(|e| e.to_string()).unwrap()
}

/// Services on `dir` again, once the previous instance has let go of the database.
async fn reopen(dir: &std::path::Path, peer: &Peer) -> State {
    let start = Instant::now();
    loop {
        let mut config = Config::default();
        config.database.path = dir.join("db");
        config.federation.extra_ca_file = Some(peer.ca_file());
        config.federation.allow_ip_ranges = vec!["127.0.0.0/8".parse().unwrap()];
        match Services::new(config) {
            Ok(s) => return s,
            Err(e) => assert!(start.elapsed() < Duration::from_secs(5), "cannot reopen: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn local(name: &str) -> OwnedUserId {
    UserId::parse(format!("@{name}:localhost")).unwrap()
}

/// Wait (at most 15 s) for `done`.
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(15), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn idle(s: &Services, peer: &ServerName) -> bool {
    queue::in_flight(&s.db, peer).unwrap().is_none() && queue::destinations_with_work(&s.db).unwrap().is_empty()
}

fn edu(n: u64) -> Value {
    json!({ "edu_type": "org.example.test", "content": { "n": n } })
}

fn edu_numbers(received: &[Received]) -> Vec<u64> {
    received
        .iter()
        .flat_map(|r| r.body["edus"].as_array().unwrap().iter().map(|e| e["content"]["n"].as_u64().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn sixty_pdus_go_as_50_then_10_one_transaction_at_a_time() {
    let mut peer = Peer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let s = services_on(dir.path(), &peer);
    let alice = local("alice");
    let room =
        create(&s, &alice, CreateRoom { preset: Some("public_chat".into()), ..Default::default() }).await.unwrap();
    for i in 0..60 {
        let event_id =
            send(&s, &room, &alice, NewEvent::message("m.room.message", json!({ "body": format!("m{i}") })), None)
                .await
                .unwrap();
        s.sender.enqueue_pdu(std::slice::from_ref(&peer.name), &event_id).unwrap();
    }
    peer.hold(true);
    s.sender.start().unwrap();
    peer.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(peer.received().len(), 1, "one transaction in flight while the peer has not answered");
    peer.hold(false);
    let got = peer.wait_for(2).await;
    eventually("the queue to drain", || idle(&s, &peer.name)).await;
    assert_eq!(peer.received().len(), 2);

    let sizes: Vec<usize> = got.iter().map(|r| r.body["pdus"].as_array().unwrap().len()).collect();
    assert_eq!(sizes, [50, 10]);
    assert_ne!(got[0].txn_id, got[1].txn_id);
    let bodies: Vec<String> = got
        .iter()
        .flat_map(|r| {
            r.body["pdus"].as_array().unwrap().iter().map(|p| p["content"]["body"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(bodies, (0..60).map(|i| format!("m{i}")).collect::<Vec<_>>(), "stream order");
    for r in &got {
        assert!(r.authorization.starts_with("X-Matrix "), "{}", r.authorization);
        assert!(r.authorization.contains("origin=localhost") || r.authorization.contains("origin=\"localhost\""));
        assert!(r.authorization.contains(peer.name.as_str()), "destination named: {}", r.authorization);
        assert!(r.authorization.contains("sig="));
        assert_eq!(r.body["origin"], "localhost");
        assert!(r.body["origin_server_ts"].as_u64().unwrap() > 0);
        assert!(r.body.get("edus").is_none_or(|e| e == &json!([])), "no EDUs");
    }
    peer.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_transaction_is_retried_with_the_same_txn_id_and_a_down_peer_catches_up() {
    let mut peer = Peer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let s = services_on(dir.path(), &peer);
    let dest = [peer.name.clone()];
    s.sender.start().unwrap();

    // 500: the transaction stays in flight, backs off 5 s, and goes again unchanged.
    peer.set_status(500);
    s.sender.enqueue_edu(&dest, edu(1)).unwrap();
    let first = peer.wait_for(1).await;
    eventually("the backoff", || queue::backoff(&s.db, &peer.name).unwrap().is_some()).await;
    let backoff = queue::backoff(&s.db, &peer.name).unwrap().unwrap();
    assert_eq!(backoff.failures, 1);
    s.sender.enqueue_edu(&dest, edu(2)).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(peer.received().len(), 1, "new work does not cut the backoff short");
    peer.set_status(200);
    let started = Instant::now();
    let got = peer.wait_for(2).await;
    assert!(started.elapsed() >= Duration::from_secs(3), "retried by the backoff timer, not at once");
    assert_eq!(got[1].txn_id, first[0].txn_id, "the same txnId");
    assert_eq!(got[1].body, first[0].body, "the same contents");
    let got = peer.wait_for(3).await;
    assert_ne!(got[2].txn_id, got[1].txn_id);
    assert_eq!(edu_numbers(&got[2..]), [2]);
    eventually("the queue to drain", || idle(&s, &peer.name)).await;
    assert!(queue::backoff(&s.db, &peer.name).unwrap().is_none(), "success forgets the backoff");

    // Down: everything queued meanwhile arrives once it is back.
    peer.stop().await;
    s.sender.enqueue_edu(&dest, edu(3)).unwrap();
    eventually("a failed attempt", || queue::backoff(&s.db, &peer.name).unwrap().is_some()).await;
    for n in 4..=130 {
        s.sender.enqueue_edu(&dest, edu(n)).unwrap();
    }
    peer.restart().await;
    s.sender.wake(&peer.name);
    eventually("the queue to drain", || idle(&s, &peer.name)).await;
    let after = peer.received()[3..].to_vec();
    assert_eq!(edu_numbers(&after), (3..=130).collect::<Vec<_>>(), "everything, in order, once");
    let sizes: Vec<usize> = after.iter().map(|r| r.body["edus"].as_array().unwrap().len()).collect();
    assert_eq!(sizes, [1, 100, 27], "the in-flight one first, then at most 100 EDUs a transaction");
    peer.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_in_flight_transaction_survives_a_restart_with_its_txn_id() {
    let mut peer = Peer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let dest = [peer.name.clone()];
    peer.set_status(500);
    let first = {
        let s = services_on(dir.path(), &peer);
        s.sender.enqueue_edu(&dest, edu(1)).unwrap();
        s.sender.enqueue_edu(&dest, edu(2)).unwrap();
        s.sender.start().unwrap();
        let first = peer.wait_for(1).await;
        eventually("the backoff", || queue::backoff(&s.db, &peer.name).unwrap().is_some()).await;
        s.sender.enqueue_edu(&dest, edu(3)).unwrap();
        first
    };
    // The services are dropped; nothing is sent until they are back.
    peer.set_status(200);
    let s = reopen(dir.path(), &peer).await;
    assert!(queue::in_flight(&s.db, &peer.name).unwrap().is_some(), "the transaction is still in flight");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(peer.received().len(), 1, "not started yet");
    s.sender.start().unwrap();
    let got = peer.wait_for(3).await;
    assert_eq!(got[1].txn_id, first[0].txn_id, "re-sent with the same txnId after the restart");
    assert_eq!(edu_numbers(&got[1..2]), [1, 2]);
    assert_eq!(edu_numbers(&got[2..]), [3], "then what was queued behind it");
    eventually("the queue to drain", || idle(&s, &peer.name)).await;
    peer.stop().await;
}
