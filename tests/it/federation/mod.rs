//! Federation transport: real Trellis servers on 127.0.0.1 with certificates from a test CA
//! (rcgen), named `127.0.0.1:<federation port>`, talking to each other over TLS; the test
//! checks what they publish, sign and refuse.

mod auth;
mod backfill;
mod crash;
mod device_names;
mod join;
mod keys;
mod knock;
mod limits;
mod lookups;
mod notary;
mod old_versions;
mod openid;
mod peer;
mod receive;
mod sender;
mod serve;
mod serve_invite;
mod to_peer;
mod transport;

use std::path::PathBuf;
use std::time::Duration;

use axum::http;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use reqwest::Method;
use ruma::api::federation::authentication::{XMatrix, XMatrixSigningInput};
use ruma::signatures::Ed25519KeyPair;
use ruma::{OwnedServerName, ServerName};
use serde_json::Value;

use crate::server::{Resp, TestServer, send};

/// A test CA and one certificate for IP 127.0.0.1 signed by it, as PEM files.
pub struct Pki {
    _dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    ca_pem: String,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "Trellis test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        leaf.distinguished_name.push(DnType::CommonName, "127.0.0.1");
        let leaf = leaf.signed_by(&leaf_key, &ca).unwrap();
        let (ca_path, cert, key) = (dir.path().join("ca.pem"), dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&ca_path, ca.pem()).unwrap();
        std::fs::write(&cert, leaf.pem()).unwrap();
        std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
        Pki { ca_pem: ca.pem(), _dir: dir, ca: ca_path, cert, key }
    }

    /// An HTTPS client trusting only the test CA. HTTP/1.1 without pooled connections: servers
    /// restart while the test thread blocks, so the client could neither notice a closed
    /// connection nor answer an HTTP/2 GOAWAY.
    pub fn https(&self) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap();
        reqwest::Client::builder()
            .no_proxy()
            .tls_certs_only([ca])
            .pool_max_idle_per_host(0)
            .http1_only()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }
}

/// A free TCP port on 127.0.0.1 (the server name must be known before the server starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A Trellis server with federation on: its name is `127.0.0.1:<federation port>`.
pub struct Fed {
    pub server: TestServer,
    pub name: OwnedServerName,
    https: reqwest::Client,
}

impl Fed {
    /// Federation on, trusting the test CA, loopback allowed (it is denied by default).
    pub fn start(pki: &Pki) -> Fed {
        Self::start_with(pki, &[("TRELLIS_FEDERATION__ALLOW_IP_RANGES", r#"["127.0.0.0/8"]"#)])
    }

    pub fn start_with(pki: &Pki, extra: &[(&str, &str)]) -> Fed {
        let port = free_port();
        let name = format!("127.0.0.1:{port}");
        let (cert, key, ca) =
            (pki.cert.display().to_string(), pki.key.display().to_string(), pki.ca.display().to_string());
        let mut env = vec![
            ("TRELLIS_SERVER_NAME", name.as_str()),
            ("TRELLIS_LISTEN__FEDERATION", name.as_str()),
            ("TRELLIS_TLS__CERTIFICATE", cert.as_str()),
            ("TRELLIS_TLS__PRIVATE_KEY", key.as_str()),
            ("TRELLIS_FEDERATION__EXTRA_CA_FILE", ca.as_str()),
        ];
        env.extend_from_slice(extra);
        let server = TestServer::start_with(&env);
        assert_eq!(server.federation_url.as_deref(), Some(format!("https://{name}").as_str()));
        Fed { server, name: ServerName::parse(&name).unwrap(), https: pki.https() }
    }

    pub fn url(&self) -> &str {
        self.server.federation_url.as_deref().unwrap()
    }

    /// A request to the federation listener with an optional `Authorization` header.
    pub async fn request(&self, method: Method, path: &str, authorization: Option<&str>, body: Option<&Value>) -> Resp {
        let mut req = self.https.request(method, format!("{}{path}", self.url()));
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        send(req).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.request(Method::GET, path, None, None).await
    }

    /// This server's signing key, read from its database (the server is stopped meanwhile).
    pub fn signing_key(&mut self) -> Ed25519KeyPair {
        self.server.stop();
        let db = trellis::storage::Storage::open(&self.server.dir.join("db"), 8).unwrap();
        let key = trellis::server_keys::load_or_generate(&db).unwrap().key_pair;
        drop(db);
        self.server.restart();
        key
    }
}

/// An `X-Matrix` header for a request from `origin` to `destination`, signed with `key`.
pub fn x_matrix(
    key: &Ed25519KeyPair,
    origin: &ServerName,
    destination: &ServerName,
    method: &str,
    uri: &str,
    body: Option<&Value>,
) -> String {
    let bytes = body.map(|b| serde_json::to_vec(b).unwrap()).unwrap_or_default();
    let request = http::Request::builder().method(method).uri(uri).body(bytes).unwrap();
    let input = XMatrixSigningInput::new(origin.to_owned(), destination.to_owned(), key);
    XMatrix::sign_http_request(&request, input).unwrap().to_string()
}

/// Verify `object`'s signature by `entity` with the keys `entity` publishes (`key_id → base64`).
pub fn verify_signature(object: &Value, entity: &str, keys: &Value) -> Result<(), String> {
    let mut only = object.clone();
    only["signatures"] = serde_json::json!({ entity: object["signatures"][entity].clone() });
    let map = public_key_map(entity, keys);
    let canonical: ruma::CanonicalJsonObject = serde_json::from_value(only).unwrap();
    ruma::signatures::verify_json(&map, &canonical).map_err(|e| e.to_string())
}

/// The verify keys `entity` publishes (`key_id → {"key": base64}`) as ruma's signature checks
/// take them.
pub fn public_key_map(entity: &str, keys: &Value) -> ruma::signatures::PublicKeyMap {
    use ruma::serde::Base64;
    let keys = keys
        .as_object()
        .unwrap()
        .iter()
        .map(|(id, k)| (id.clone(), Base64::parse(k["key"].as_str().unwrap()).unwrap()))
        .collect();
    [(entity.to_owned(), keys)].into()
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}
