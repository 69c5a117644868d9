//! The shared test server: the real `trellis` binary on 127.0.0.1, an ephemeral port and a
//! temporary data directory, driven over HTTP.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_trellis");

pub struct TestServer {
    child: Option<Child>,
    pub url: String,
    pub metrics_url: Option<String>,
    /// `https://127.0.0.1:port` of the federation listener, when `[tls]` is configured.
    pub federation_url: Option<String>,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    env: Vec<(String, String)>,
    http: reqwest::Client,
}

/// A response: status and JSON body (`Value::Null` when the body is not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Resp {
    pub fn errcode(&self) -> &str {
        self.body["errcode"].as_str().unwrap_or("")
    }
}

impl TestServer {
    /// A server with rate limits off and otherwise default configuration.
    pub fn start() -> TestServer {
        Self::start_with(&[])
    }

    pub fn start_with(env: &[(&str, &str)]) -> TestServer {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let mut all = vec![("TRELLIS_RATE_LIMITS__ENABLED".to_owned(), "false".to_owned())];
        all.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut s = TestServer {
            child: None,
            url: String::new(),
            metrics_url: None,
            federation_url: None,
            dir,
            _tmp: Some(tmp),
            env: all,
            http: client(),
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("server.log")).expect("log file");
        let mut cmd = Command::new(BIN);
        cmd.current_dir(&self.dir)
            .env_clear()
            .env("TRELLIS_DATABASE__PATH", self.dir.join("db"))
            .env("TRELLIS_LISTEN__CLIENT", "127.0.0.1:0")
            .env("TRELLIS_METRICS__LISTEN", "127.0.0.1:0")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        let mut child = cmd.spawn().expect("start trellis");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        self.child = Some(child);
        let want_metrics = self.env.iter().any(|(k, v)| k == "TRELLIS_METRICS__ENABLED" && v == "true");
        let want_federation = self.env.iter().any(|(k, _)| k == "TRELLIS_TLS__CERTIFICATE")
            && !self.env.iter().any(|(k, v)| k == "TRELLIS_FEDERATION__ENABLED" && v == "false");
        self.metrics_url = None;
        self.federation_url = None;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| panic!("server did not start; log: {}", self.log()));
            if let Some(url) = line.strip_prefix("trellis: client API listening on ") {
                self.url = url.trim().to_owned();
            } else if let Some(url) = line.strip_prefix("trellis: metrics listening on ") {
                self.metrics_url = Some(url.trim().to_owned());
            } else if let Some(url) = line.strip_prefix("trellis: federation API listening on ") {
                self.federation_url = Some(url.trim().to_owned());
            }
            if !self.url.is_empty()
                && (!want_metrics || self.metrics_url.is_some())
                && (!want_federation || self.federation_url.is_some())
            {
                break;
            }
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Stop with SIGTERM and wait.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            for _ in 0..100 {
                if child.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stop with SIGKILL: nothing gets to flush.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Set (`Some`) or remove (`None`) an environment variable for the next start.
    pub fn set_env(&mut self, key: &str, value: Option<&str>) {
        self.env.retain(|(k, _)| k != key);
        if let Some(v) = value {
            self.env.push((key.to_owned(), v.to_owned()));
        }
    }

    /// Start again on the same data directory.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    pub async fn request(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Resp {
        let mut req = self.http.request(method, format!("{}{}", self.url, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        send(req).await
    }

    pub async fn raw(&self, method: Method, path: &str, token: Option<&str>, body: &'static [u8]) -> Resp {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.url, path))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        send(req).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.request(Method::GET, path, token, None).await
    }
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.request(Method::POST, path, token, Some(body)).await
    }
    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.request(Method::PUT, path, token, Some(body)).await
    }
    pub async fn delete(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.request(Method::DELETE, path, token, Some(body)).await
    }

    /// Register `localpart` with `password` through the dummy stage; returns the new session.
    pub async fn register(&self, localpart: &str, password: &str) -> Session {
        let r = self
            .post(
                "/_matrix/client/v3/register",
                None,
                json!({ "username": localpart, "password": password, "auth": { "type": "m.login.dummy" } }),
            )
            .await;
        assert_eq!(r.status, 200, "register {localpart}: {:?}", r.body);
        Session::from(&r.body)
    }

    pub async fn login(&self, localpart: &str, password: &str) -> Resp {
        self.post(
            "/_matrix/client/v3/login",
            None,
            json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": localpart }, "password": password }),
        )
        .await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: String,
    pub access_token: String,
    pub device_id: String,
}

impl Session {
    pub fn from(body: &Value) -> Session {
        Session {
            user_id: body["user_id"].as_str().expect("user_id").to_owned(),
            access_token: body["access_token"].as_str().expect("access_token").to_owned(),
            device_id: body["device_id"].as_str().expect("device_id").to_owned(),
        }
    }
    pub fn token(&self) -> Option<&str> {
        Some(&self.access_token)
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().expect("client")
}

pub async fn send(req: reqwest::RequestBuilder) -> Resp {
    let resp = req.send().await.expect("request failed");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Resp { status, body, headers }
}

/// Room helpers shared by the room tests.
impl TestServer {
    pub async fn create_room(&self, token: &str, body: Value) -> String {
        let r = self.post("/_matrix/client/v3/createRoom", Some(token), body).await;
        assert_eq!(r.status, 200, "createRoom: {:?}", r.body);
        r.body["room_id"].as_str().expect("room_id").to_owned()
    }

    /// Send `m.room.message` text; returns the event ID.
    pub async fn send_text(&self, token: &str, room: &str, text: &str) -> String {
        let txn = format!("t{}", rand_suffix());
        let r = self
            .put(
                &format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}"),
                Some(token),
                json!({ "msgtype": "m.text", "body": text }),
            )
            .await;
        assert_eq!(r.status, 200, "send: {:?}", r.body);
        r.body["event_id"].as_str().expect("event_id").to_owned()
    }

    pub async fn join(&self, token: &str, room: &str) -> Resp {
        self.post(&format!("/_matrix/client/v3/join/{}", urlencode(room)), Some(token), json!({})).await
    }

    pub async fn room_post(&self, token: &str, room: &str, action: &str, body: Value) -> Resp {
        self.post(&format!("/_matrix/client/v3/rooms/{room}/{action}"), Some(token), body).await
    }

    pub async fn set_state(&self, token: &str, room: &str, kind: &str, key: &str, content: Value) -> Resp {
        self.put(&format!("/_matrix/client/v3/rooms/{room}/state/{kind}/{key}"), Some(token), content).await
    }

    /// Bodies of `m.room.message` events visible to `token`, oldest first (paginates backwards).
    pub async fn message_bodies(&self, token: &str, room: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut from: Option<String> = None;
        for _ in 0..100 {
            let mut path = format!("/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=50");
            if let Some(f) = &from {
                path.push_str(&format!("&from={f}"));
            }
            let r = self.get(&path, Some(token)).await;
            assert_eq!(r.status, 200, "messages: {:?}", r.body);
            for e in r.body["chunk"].as_array().unwrap() {
                if e["type"] == "m.room.message" {
                    out.push(e["content"]["body"].as_str().unwrap_or("<redacted>").to_owned());
                }
            }
            match r.body["end"].as_str() {
                Some(end) => from = Some(end.to_owned()),
                None => break,
            }
        }
        out.reverse();
        out
    }
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed) * 1_000_003 + u64::from(std::process::id())
}
