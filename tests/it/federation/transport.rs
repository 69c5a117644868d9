//! The federation listener: TLS, `/version`, the key server, fallbacks, what the client
//! listener does not serve, key rotation, configuration errors.

use std::process::Command;

use reqwest::Method;
use serde_json::json;

use super::{Fed, Pki, now_ms, verify_signature};
use crate::server::{BIN, TestServer};

/// `/version` over TLS (certificate from the test CA for 127.0.0.1), and the federation
/// router's 404/405 `M_UNRECOGNIZED` fallbacks; client paths are not served there.
#[tokio::test]
async fn version_over_tls_and_fallbacks() {
    let pki = Pki::new();
    let a = Fed::start(&pki);
    let r = a.get("/_matrix/federation/v1/version").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body, json!({ "server": { "name": "Trellis", "version": env!("CARGO_PKG_VERSION") } }));

    let r = a.get("/_matrix/federation/v1/no_such_thing").await;
    assert_eq!((r.status, r.errcode()), (404, "M_UNRECOGNIZED"));
    let r = a.request(Method::POST, "/_matrix/federation/v1/version", None, Some(&json!({}))).await;
    assert_eq!((r.status, r.errcode()), (405, "M_UNRECOGNIZED"));
    let r = a.get("/_matrix/client/versions").await;
    assert_eq!((r.status, r.errcode()), (404, "M_UNRECOGNIZED"));

    // The client listener's well-known delegation names the bound federation port.
    let r = a.server.get("/.well-known/matrix/server", None).await;
    assert_eq!(r.body["m.server"], a.name.as_str());
}

/// Without `[tls]` federation is off (one log line says so), and the client listener never
/// serves the Server-Server API.
#[tokio::test]
async fn federation_paths_are_not_served_on_the_client_listener() {
    let s = TestServer::start();
    for path in ["/_matrix/federation/v1/version", "/_matrix/key/v2/server", "/_matrix/key/v2/query/example.org"] {
        let r = s.get(path, None).await;
        assert_eq!((r.status, r.errcode()), (404, "M_UNRECOGNIZED"), "{path}");
    }
    let r = s.post("/_matrix/key/v2/query", None, json!({ "server_keys": {} })).await;
    assert_eq!((r.status, r.errcode()), (404, "M_UNRECOGNIZED"));
    assert_eq!(s.federation_url, None);
    assert!(s.log().contains("federation is off: set tls.certificate and tls.private_key"), "{}", s.log());
}

/// `GET /_matrix/key/v2/server`: our key, self-signed, valid for `key_valid_for_ms` (7 days by
/// default); a changed field breaks the signature; the key survives a restart.
#[tokio::test]
async fn key_server_publishes_a_self_signed_key() {
    let pki = Pki::new();
    let mut a = Fed::start(&pki);
    let r = a.get("/_matrix/key/v2/server").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let body = r.body;
    assert_eq!(body["server_name"], a.name.as_str());
    let keys = body["verify_keys"].as_object().unwrap();
    assert_eq!(keys.len(), 1);
    let (key_id, key) = keys.iter().next().unwrap();
    assert!(key_id.starts_with("ed25519:"), "{key_id}");
    assert_eq!(body["old_verify_keys"], json!({}));
    let week = 7 * 24 * 3600 * 1000;
    let valid_until = body["valid_until_ts"].as_u64().unwrap();
    assert!(valid_until > now_ms() + week - 60_000 && valid_until <= now_ms() + week, "{valid_until}");
    assert!(body["signatures"][a.name.as_str()][key_id].is_string());
    verify_signature(&body, a.name.as_str(), &body["verify_keys"]).expect("self-signature verifies");

    let mut tampered = body.clone();
    tampered["valid_until_ts"] = json!(valid_until + 1);
    assert!(verify_signature(&tampered, a.name.as_str(), &body["verify_keys"]).is_err());

    a.server.restart();
    let again = a.get("/_matrix/key/v2/server").await.body;
    assert_eq!(again["verify_keys"][key_id], *key);
}

/// `trellis rotate-key` retires the key: after a restart it is listed in `old_verify_keys`
/// with its `expired_ts`, and a new key signs the response.
#[tokio::test]
async fn rotated_keys_are_listed_as_old_verify_keys() {
    let pki = Pki::new();
    let mut a = Fed::start_with(
        &pki,
        &[
            ("TRELLIS_FEDERATION__ALLOW_IP_RANGES", r#"["127.0.0.0/8"]"#),
            ("TRELLIS_FEDERATION__KEY_VALID_FOR_MS", "3600000"),
        ],
    );
    let before = a.get("/_matrix/key/v2/server").await.body;
    let (old_id, old_key) =
        before["verify_keys"].as_object().unwrap().iter().next().map(|(k, v)| (k.clone(), v.clone())).unwrap();
    let valid_until = before["valid_until_ts"].as_u64().unwrap();
    assert!(valid_until <= now_ms() + 3_600_000 && valid_until > now_ms() + 3_500_000, "key_valid_for_ms applies");

    a.server.stop();
    let out = Command::new(BIN)
        .arg("rotate-key")
        .env_clear()
        .env("TRELLIS_DATABASE__PATH", a.server.dir.join("db"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("new signing key ed25519:"));
    a.server.restart();

    let after = a.get("/_matrix/key/v2/server").await.body;
    let new_id = after["verify_keys"].as_object().unwrap().keys().next().unwrap().clone();
    assert_ne!(new_id, old_id);
    assert_eq!(after["old_verify_keys"][&old_id]["key"], old_key["key"]);
    let expired = after["old_verify_keys"][&old_id]["expired_ts"].as_u64().unwrap();
    assert!(expired <= now_ms() && expired > now_ms() - 120_000, "{expired}");
    verify_signature(&after, a.name.as_str(), &after["verify_keys"]).expect("signed by the new key");
    assert!(after["signatures"][a.name.as_str()].get(&old_id).is_none());
}

/// Federation settings are validated at start-up; errors name the key. Lists come from the
/// environment as TOML arrays.
#[test]
fn federation_config_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let run = |k: &str, v: &str| {
        let out = Command::new(BIN).current_dir(dir.path()).env_clear().env(k, v).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{k}={v}");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let err = run("TRELLIS_FEDERATION__ALLOW_IP_RANGES", r#"["not-a-range"]"#);
    assert!(err.contains("federation.allow_ip_ranges"), "{err}");
    let err = run("TRELLIS_FEDERATION__TRUSTED_KEY_SERVERS", r#"["bad name!"]"#);
    assert!(err.contains("federation.trusted_key_servers"), "{err}");
    let err = run("TRELLIS_TLS__CERTIFICATE", "/nonexistent/cert.pem");
    assert!(err.contains("tls.private_key"), "{err}");
    let err = run("TRELLIS_FEDERATION__EXTRA_CA_FILE", "/nonexistent/ca.pem");
    assert!(err.contains("federation.extra_ca_file"), "{err}");
}

/// A certificate file that is not PEM stops start-up with the key named.
#[test]
fn unreadable_tls_files_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let out = Command::new(BIN)
        .current_dir(dir.path())
        .env_clear()
        .env("TRELLIS_LISTEN__CLIENT", "127.0.0.1:0")
        .env("TRELLIS_LISTEN__FEDERATION", "127.0.0.1:0")
        .env("TRELLIS_TLS__CERTIFICATE", &junk)
        .env("TRELLIS_TLS__PRIVATE_KEY", &junk)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tls.certificate"), "{err}");
}
