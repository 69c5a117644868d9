//! The HTTP foundation: discovery, errors for bad requests, CORS, health, start-up.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::server::{BIN, TestServer, client, send};

#[tokio::test]
async fn versions_and_discovery() {
    let s = TestServer::start();
    let r = s.get("/_matrix/client/versions", None).await;
    assert_eq!(r.status, 200);
    let versions: Vec<&str> = r.body["versions"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert!(versions.contains(&"v1.1") && versions.contains(&"v1.16"), "{versions:?}");

    let r = s.get("/.well-known/matrix/client", None).await;
    assert_eq!(r.body["m.homeserver"]["base_url"], json!(s.url));
    let r = s.get("/.well-known/matrix/server", None).await;
    assert_eq!(r.body["m.server"], json!("localhost:8448"));

    let alice = s.register("alice", "password1").await;
    let r = s.get("/_matrix/client/v3/capabilities", alice.token()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["capabilities"]["m.change_password"]["enabled"], json!(true));
    assert_eq!(r.body["capabilities"]["m.room_versions"]["default"], json!("12"));
    let r = s.get("/_matrix/client/v3/capabilities", None).await;
    assert_eq!((r.status, r.errcode()), (401, "M_MISSING_TOKEN"));
}

#[tokio::test]
async fn unknown_endpoint_and_wrong_method_are_unrecognized() {
    let s = TestServer::start();
    let r = s.get("/_matrix/client/v3/no/such/endpoint", None).await;
    assert_eq!((r.status, r.errcode()), (404, "M_UNRECOGNIZED"));
    let r = s.request(Method::DELETE, "/_matrix/client/v3/login", None, None).await;
    assert_eq!((r.status, r.errcode()), (405, "M_UNRECOGNIZED"));
    let r = s.request(Method::PUT, "/_matrix/client/versions", None, None).await;
    assert_eq!((r.status, r.errcode()), (405, "M_UNRECOGNIZED"));
}

#[tokio::test]
async fn malformed_bodies_never_give_5xx() {
    let s = TestServer::start();
    let r = s.raw(Method::POST, "/_matrix/client/v3/login", None, b"this is not json").await;
    assert_eq!((r.status, r.errcode()), (400, "M_NOT_JSON"));
    let r = s
        .raw(Method::POST, "/_matrix/client/v3/login", None, b"{\"type\": \"m.login.password\", \"password\": 5}")
        .await;
    assert_eq!((r.status, r.errcode()), (400, "M_BAD_JSON"), "{:?}", r.body);
    // ruma's login parser indexes `type` and would panic without our guard.
    let r = s.raw(Method::POST, "/_matrix/client/v3/login", None, b"{\"password\": \"x\"}").await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert!(["M_BAD_JSON", "M_MISSING_PARAM"].contains(&r.errcode()));
    let r = s.raw(Method::POST, "/_matrix/client/v3/login", None, b"[1,2,3]").await;
    assert_eq!((r.status, r.errcode()), (400, "M_BAD_JSON"));
    let r = s.raw(Method::POST, "/_matrix/client/v3/register", None, b"{\"username\": 12}").await;
    assert_eq!((r.status, r.errcode()), (400, "M_BAD_JSON"));

    let alice = s.register("alice", "password1").await;
    for (method, path, body) in [
        (Method::PUT, "/_matrix/client/v3/profile/@alice:localhost/displayname", &b"{\"displayname\": 5}"[..]),
        (Method::PUT, "/_matrix/client/v3/profile/@alice:localhost/displayname", b"nope"),
        (Method::PUT, "/_matrix/client/v3/user/@alice:localhost/account_data/x.y", b"[]"),
        (Method::POST, "/_matrix/client/v3/user/@alice:localhost/filter", b"{\"room\": 3}"),
        (Method::PUT, "/_matrix/client/v3/devices/ABC", b"{\"display_name\": []}"),
        (Method::POST, "/_matrix/client/v3/account/password", b"{}"),
        (Method::POST, "/_matrix/client/v3/delete_devices", b"{\"devices\": \"x\"}"),
        (Method::POST, "/_matrix/client/v3/refresh", b"{\"refresh_token\": null}"),
    ] {
        let r = s.raw(method.clone(), path, alice.token(), body).await;
        assert!((400..500).contains(&r.status), "{method} {path} {:?} -> {}", std::str::from_utf8(body), r.status);
        assert!(r.errcode().starts_with("M_"), "{path}: {:?}", r.body);
    }
    let r = s.get("/_matrix/client/v3/profile/not-a-user-id", None).await;
    assert_eq!((r.status, r.errcode()), (400, "M_INVALID_PARAM"));
}

#[tokio::test]
async fn request_bodies_are_capped() {
    let s = TestServer::start_with(&[("TRELLIS_SERVER__MAX_REQUEST_BYTES", "2048")]);
    let big = format!("{{\"type\":\"m.login.password\",\"password\":\"{}\"}}", "x".repeat(4096));
    let req = client().post(format!("{}/_matrix/client/v3/login", s.url)).body(big);
    let r = send(req).await;
    assert_eq!((r.status, r.errcode()), (413, "M_TOO_LARGE"));
}

#[tokio::test]
async fn cors_as_the_spec_asks() {
    let s = TestServer::start();
    let req = client()
        .request(Method::OPTIONS, format!("{}/_matrix/client/v3/login", s.url))
        .header("Origin", "https://app.element.io")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "authorization, content-type");
    let r = send(req).await;
    assert_eq!(r.status, 200);
    let h = |name: &str| r.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_lowercase();
    assert_eq!(h("access-control-allow-origin"), "*");
    for m in ["get", "post", "put", "delete", "options"] {
        assert!(h("access-control-allow-methods").contains(m), "{}", h("access-control-allow-methods"));
    }
    for hd in ["x-requested-with", "content-type", "authorization"] {
        assert!(h("access-control-allow-headers").contains(hd));
    }
    let r =
        send(client().get(format!("{}/_matrix/client/versions", s.url)).header("Origin", "https://x.example")).await;
    assert_eq!(r.headers.get("access-control-allow-origin").unwrap(), "*");
    assert!(r.headers.get("x-request-id").is_some(), "every response carries its request id");
}

#[tokio::test]
async fn health() {
    // Tools' own TRELLIS_* variables that name no configuration key are left alone.
    let s = TestServer::start_with(&[("TRELLIS_SOME_TOOL_SETTING", "1")]);
    let r = send(client().get(format!("{}/health", s.url))).await;
    assert_eq!(r.status, 200);
}

/// `trellis` with no arguments in an empty directory serves on 127.0.0.1:8008 within 1 s.
#[tokio::test]
async fn starts_with_no_config_in_an_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .current_dir(dir.path())
        .env_clear()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let http = client();
    let mut answered = None;
    for _ in 0..200 {
        if let Ok(r) = http.get("http://127.0.0.1:8008/_matrix/client/versions").send().await {
            answered = Some((r.status().as_u16(), started.elapsed()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let (status, elapsed) = answered.expect("server answered");
    assert_eq!(status, 200);
    assert!(elapsed < Duration::from_secs(1), "answered after {elapsed:?}");
    assert!(dir.path().join("trellis-data").is_dir(), "RocksDB under ./trellis-data");
}

#[test]
fn invalid_config_stops_start_up_with_one_line_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .current_dir(dir.path())
        .env_clear()
        .env("TRELLIS_RATE_LIMITS__ENABLED", "perhaps")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("rate_limits.enabled"), "{err}");

    let cfg = dir.path().join("t.toml");
    std::fs::write(&cfg, "server_name = \"bad name!\"\n").unwrap();
    let out = Command::new(BIN).arg("--config").arg(&cfg).env_clear().output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("server_name") && !err.contains("panicked"), "{err}");

    std::fs::write(&cfg, "[listen]\nclinet = \"127.0.0.1:1\"\n").unwrap();
    let out = Command::new(BIN).arg("--config").arg(&cfg).env_clear().output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("clinet"), "unknown keys are named: {err}");
}

#[test]
fn generate_config_writes_the_documented_example() {
    let out = Command::new(BIN).arg("generate-config").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("server_name = \"localhost\""));
    assert!(text.contains("[rate_limits.login]"));
}

/// Garbage against every endpoint, with and without a token: never a 5xx; every 4xx carries an
/// `M_` code (or is a User-Interactive Auth challenge).
#[tokio::test]
async fn garbage_never_gives_5xx() {
    let s = TestServer::start_with(&[("TRELLIS_REGISTRATION__SHARED_SECRET", "x")]);
    let a = s.register("alice", "password1").await;
    let endpoints: &[(Method, &str)] = &[
        (Method::POST, "/_matrix/client/v3/register"),
        (Method::POST, "/_matrix/client/v3/login"),
        (Method::POST, "/_matrix/client/v3/refresh"),
        (Method::POST, "/_matrix/client/v3/logout"),
        (Method::POST, "/_matrix/client/v3/logout/all"),
        (Method::POST, "/_matrix/client/v1/login/get_token"),
        (Method::POST, "/_matrix/client/v3/account/password"),
        (Method::POST, "/_matrix/client/v3/account/deactivate"),
        (Method::POST, "/_matrix/client/v3/delete_devices"),
        (Method::PUT, "/_matrix/client/v3/devices/D%00EV"),
        (Method::DELETE, "/_matrix/client/v3/devices/DEV"),
        (Method::PUT, "/_matrix/client/v3/profile/@alice:localhost/displayname"),
        (Method::PUT, "/_matrix/client/v3/profile/@alice:localhost/m.tz"),
        (Method::PUT, "/_matrix/client/v3/user/@alice:localhost/account_data/a%00b"),
        (Method::PUT, "/_matrix/client/v3/user/@alice:localhost/rooms/!r:localhost/account_data/t"),
        (Method::POST, "/_matrix/client/v3/user/@alice:localhost/filter"),
        (Method::POST, "/_synapse/admin/v1/register"),
    ];
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let bodies: Vec<Vec<u8>> = vec![
        b"garbage".to_vec(),
        b"[]".to_vec(),
        b"{\"auth\": {\"type\": 7}}".to_vec(),
        b"{\"auth\": {\"type\": \"m.login.password\"}}".to_vec(),
        b"{\"auth\": \"x\", \"devices\": [1], \"new_password\": {}}".to_vec(),
        b"{\"nonce\": 1, \"mac\": \"zz\"}".to_vec(),
        b"{\"a\": 1e999}".to_vec(),
        deep.into_bytes(),
        vec![0xff, 0xfe, 0x00],
    ];
    let http = client();
    for (method, path) in endpoints {
        for body in &bodies {
            for token in [None, Some(a.access_token.as_str())] {
                let mut req = http.request(method.clone(), format!("{}{path}", s.url)).body(body.clone());
                if let Some(t) = token {
                    req = req.bearer_auth(t);
                }
                let r = send(req).await;
                let shown = String::from_utf8_lossy(&body[..body.len().min(40)]).into_owned();
                assert!(r.status < 500, "{method} {path} {shown:?} -> {} {:?}", r.status, r.body);
                let uia = r.status == 401 && r.body["flows"].is_array();
                assert!(
                    r.status < 400 || uia || r.errcode().starts_with("M_"),
                    "{method} {path} {shown:?}: {:?}",
                    r.body
                );
            }
        }
    }
    assert_eq!(s.login("alice", "password1").await.status, 200, "the account survived the barrage");
}
