//! Key response validation without a network: what the key store accepts and keeps.

use ruma::signatures::{Ed25519KeyPair, sign_json};
use ruma::{CanonicalJsonObject, ServerName};
use serde_json::json;

use super::key_store::verify_key_response;

const NOW: u64 = 1_700_000_000_000;
const DAY: u64 = 24 * 3600 * 1000;

fn key(version: &str) -> Ed25519KeyPair {
    Ed25519KeyPair::from_der(Ed25519KeyPair::generate().as_slice(), version.to_owned()).unwrap()
}

fn b64(key: &Ed25519KeyPair) -> String {
    ruma::serde::Base64::<ruma::serde::base64::Standard>::new(key.public_key().to_vec()).encode()
}

/// A key response for `name`, valid for `days`, signed by `signer` as `name`.
fn response(name: &str, key: &Ed25519KeyPair, days: u64, signer: &Ed25519KeyPair) -> CanonicalJsonObject {
    let value = json!({
        "server_name": name,
        "valid_until_ts": NOW + days * DAY,
        "verify_keys": { format!("ed25519:{}", key.version()): { "key": b64(key) } },
        "old_verify_keys": { "ed25519:old": { "key": b64(signer), "expired_ts": NOW - DAY } },
    });
    let mut object: CanonicalJsonObject = serde_json::from_value(value).unwrap();
    sign_json(name, signer, &mut object).unwrap();
    object
}

#[test]
fn a_self_signed_response_is_kept_with_its_old_keys_and_a_7_day_cap() {
    let k = key("k1");
    let server = ServerName::parse("remote.example").unwrap();
    let set = verify_key_response(&server, response("remote.example", &k, 30, &k), NOW).unwrap();
    let current = &set.keys["ed25519:k1"];
    assert_eq!(current.key, b64(&k));
    assert_eq!(current.valid_until_ts, NOW + 7 * DAY, "capped at 7 days");
    assert_eq!(current.expired_ts, None);
    assert_eq!(set.keys["ed25519:old"].expired_ts, Some(NOW - DAY));
    assert_eq!(set.usable(NOW).len(), 1, "the old key expired before now");
    assert_eq!(set.usable(NOW - 2 * DAY).len(), 2, "but signed things made before it expired");
    assert_eq!(set.response_valid_until(), NOW + 30 * DAY, "the response itself is kept as signed");

    let short = verify_key_response(&server, response("remote.example", &k, 1, &k), NOW).unwrap();
    assert_eq!(short.keys["ed25519:k1"].valid_until_ts, NOW + DAY);
}

#[test]
fn wrong_names_bad_signatures_and_foreign_signers_are_refused() {
    let k = key("k1");
    let server = ServerName::parse("remote.example").unwrap();
    let other = ServerName::parse("other.example").unwrap();
    assert!(verify_key_response(&other, response("remote.example", &k, 1, &k), NOW).is_err(), "server_name mismatch");
    assert!(verify_key_response(&server, response("remote.example", &k, 1, &key("k1")), NOW).is_err(), "another key");

    let mut tampered = response("remote.example", &k, 1, &k);
    tampered.insert(
        "valid_until_ts".into(),
        ruma::CanonicalJsonValue::Integer((NOW as i64 + 99 * DAY as i64).try_into().unwrap()),
    );
    assert!(verify_key_response(&server, tampered, NOW).is_err(), "changed after signing");

    let mut unsigned = response("remote.example", &k, 1, &k);
    unsigned.remove("signatures");
    let mut notary_only = unsigned.clone();
    sign_json("notary.example", &key("n"), &mut notary_only).unwrap();
    assert!(verify_key_response(&server, notary_only, NOW).is_err(), "a notary's signature alone is not enough");
}

#[test]
fn other_signatures_are_dropped_from_the_kept_response() {
    let k = key("k1");
    let server = ServerName::parse("remote.example").unwrap();
    let mut object = response("remote.example", &k, 1, &k);
    sign_json("notary.example", &key("n"), &mut object).unwrap();
    let set = verify_key_response(&server, object, NOW).unwrap();
    let response = serde_json::to_value(set.response.unwrap()).unwrap();
    let signers: Vec<&String> = response["signatures"].as_object().unwrap().keys().collect();
    assert_eq!(signers, ["remote.example"]);
}

/// A host name is checked after DNS: `localhost` resolves (hosts file) to loopback, which the
/// default ranges deny; an override (an SRV target) is resolved in place of the name.
#[tokio::test]
async fn host_names_are_filtered_after_resolution() {
    use std::str::FromStr;
    use std::sync::Arc;

    use reqwest::dns::{Name, Resolve};

    use super::ip_filter::IpFilter;
    use super::resolver::{FilteringResolver, Overrides};

    let deny = crate::config::FederationSection::default().deny_ip_ranges;
    let dns = super::dns_resolver().unwrap();
    let denying = FilteringResolver { dns, filter: Arc::new(IpFilter::new(deny.clone(), Vec::new())), overrides: None };
    let err = denying.lookup("localhost").await.unwrap_err();
    assert!(err.to_string().contains("deny_ip_ranges"), "{err}");

    let overrides = Overrides::default();
    overrides.set("matrix.test", "localhost");
    let allow = vec!["127.0.0.0/8".parse().unwrap()];
    let allowing =
        FilteringResolver { filter: Arc::new(IpFilter::new(deny, allow)), overrides: Some(overrides), ..denying };
    let addrs: Vec<_> = allowing.resolve(Name::from_str("matrix.test").unwrap()).await.unwrap().collect();
    assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().to_string().starts_with("127.")), "{addrs:?}");
}

/// Key fetches take the per-server gate and leave no entry behind, also when they fail (a
/// loopback literal is denied by the default IP ranges, so nothing leaves the machine), nor do
/// notary queries waiting on the same gate.
#[tokio::test]
async fn key_fetch_gates_are_gone_after_use() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::config::Config::default();
    config.database.path = dir.path().join("db");
    let s = crate::services::Services::new(config).map_err(|e| e.to_string()).unwrap();
    let server = ServerName::parse("127.0.0.1:1").unwrap();
    let (keys, responses) =
        tokio::join!(s.federation.verify_keys(&server, NOW), s.federation.notary_query(&server, u64::MAX));
    assert!(keys.unwrap().is_empty() && responses.unwrap().is_empty());
    assert!(s.federation.fetching.is_empty(), "no gate left once the fetches are done");
}
