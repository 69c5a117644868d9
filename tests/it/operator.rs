//! What an operator relies on: data survives restarts and `kill -9`, rate limits, metrics.

use serde_json::json;

use crate::server::{TestServer, client, send};

#[tokio::test]
async fn everything_survives_a_restart_and_kill_9() {
    let mut s = TestServer::start();
    let a = s.register("alice", "password1").await;
    s.put("/_matrix/client/v3/profile/@alice:localhost/displayname", a.token(), json!({ "displayname": "Alice" }))
        .await;
    s.put("/_matrix/client/v3/profile/@alice:localhost/m.tz", a.token(), json!({ "m.tz": "UTC" })).await;
    s.put("/_matrix/client/v3/user/@alice:localhost/account_data/org.example", a.token(), json!({ "k": 1 })).await;
    s.put(&format!("/_matrix/client/v3/devices/{}", a.device_id), a.token(), json!({ "display_name": "laptop" })).await;
    let filter_id = s
        .post("/_matrix/client/v3/user/@alice:localhost/filter", a.token(), json!({ "room": { "rooms": [] } }))
        .await
        .body["filter_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let check = |s: &TestServer| {
        let a = a.clone();
        let filter_id = filter_id.clone();
        let s_url = s.url.clone();
        async move {
            let http = client();
            let get = |path: String| {
                let req = http.get(format!("{s_url}{path}")).bearer_auth(&a.access_token);
                send(req)
            };
            let r = get("/_matrix/client/v3/account/whoami".into()).await;
            assert_eq!(r.body["user_id"], "@alice:localhost", "token survives");
            let r = get("/_matrix/client/v3/profile/@alice:localhost".into()).await;
            assert_eq!(r.body, json!({ "displayname": "Alice", "m.tz": "UTC" }));
            let r = get("/_matrix/client/v3/user/@alice:localhost/account_data/org.example".into()).await;
            assert_eq!(r.body, json!({ "k": 1 }));
            let r = get(format!("/_matrix/client/v3/devices/{}", a.device_id)).await;
            assert_eq!(r.body["display_name"], "laptop");
            let r = get(format!("/_matrix/client/v3/user/@alice:localhost/filter/{filter_id}")).await;
            assert_eq!(r.body["room"]["rooms"], json!([]));
        }
    };

    s.restart();
    check(&s).await;
    assert_eq!(s.login("alice", "password1").await.status, 200, "the password survives");

    // Acknowledged writes survive SIGKILL (they are in RocksDB's WAL before we answer).
    s.put("/_matrix/client/v3/profile/@alice:localhost/m.tz", a.token(), json!({ "m.tz": "Europe/Paris" })).await;
    s.kill9();
    s.restart();
    let r = s.get("/_matrix/client/v3/profile/@alice:localhost/m.tz", None).await;
    assert_eq!(r.body, json!({ "m.tz": "Europe/Paris" }));
}

#[tokio::test]
async fn login_is_rate_limited_per_ip() {
    let s = TestServer::start_with(&[
        ("TRELLIS_RATE_LIMITS__ENABLED", "true"),
        ("TRELLIS_RATE_LIMITS__LOGIN", "{per_second=0.1,burst=2}"),
    ]);
    s.register("alice", "password1").await;
    assert_eq!(s.login("alice", "password1").await.status, 200);
    assert_eq!(s.login("alice", "wrong").await.status, 403);
    let r = s.login("alice", "password1").await;
    assert_eq!((r.status, r.errcode()), (429, "M_LIMIT_EXCEEDED"));
    let retry = r.body["retry_after_ms"].as_u64().unwrap();
    assert!((1..=10_000).contains(&retry), "{retry}");
    let header: u64 = r.headers.get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=10).contains(&header));
    // Other classes are not affected.
    assert_eq!(s.get("/_matrix/client/versions", None).await.status, 200);
}

#[tokio::test]
async fn metrics_are_on_their_own_listener() {
    let s = TestServer::start_with(&[("TRELLIS_METRICS__ENABLED", "true")]);
    s.register("alice", "password1").await;
    s.get("/_matrix/client/versions", None).await;
    let r = s.get("/metrics", None).await;
    assert_eq!((r.status, r.errcode()), (404, "M_UNRECOGNIZED"), "not on the public listener");

    let url = s.metrics_url.clone().expect("metrics listener");
    let text = client().get(url).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("trellis_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/_matrix/client/versions\""), "{text}");
    assert!(text.contains("status=\"200\""));
    assert!(text.contains("trellis_http_request_duration_seconds"));
    assert!(text.contains("trellis_database_table_bytes{table=\"users\"}"), "{text}");
}

/// The value of one sample in Prometheus text (`name{labels} value`).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test]
async fn cache_metrics_count_hits_misses_and_entries_with_the_configured_bound() {
    let s =
        TestServer::start_with(&[("TRELLIS_METRICS__ENABLED", "true"), ("TRELLIS_CACHE__ENTRIES__ACCESS_TOKENS", "7")]);
    let alice = s.register("alice", "password1").await;
    let token = alice.token().unwrap();
    for _ in 0..3 {
        assert_eq!(s.get("/_matrix/client/v3/account/whoami", Some(token)).await.status, 200);
    }
    let room = s.create_room(token, json!({})).await;
    s.send_text(token, &room, "hello").await;
    assert_eq!(s.message_bodies(token, &room).await, vec!["hello".to_owned()]);
    let url = s.metrics_url.clone().expect("metrics listener");
    let text = client().get(url).send().await.unwrap().text().await.unwrap();
    let value = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("no {series} in {text}"));
    assert_eq!(value("trellis_cache_capacity{cache=\"access_tokens\"}"), 7.0, "the configured bound");
    assert_eq!(value("trellis_cache_capacity{cache=\"events\"}"), 20000.0, "a default bound");
    assert!(value("trellis_cache_hits_total{cache=\"access_tokens\"}") >= 2.0, "{text}");
    assert!(value("trellis_cache_misses_total{cache=\"access_tokens\"}") >= 1.0, "{text}");
    assert_eq!(value("trellis_cache_entries{cache=\"access_tokens\"}"), 1.0, "one token resolved");
    assert!(value("trellis_cache_entries{cache=\"shortids\"}") >= 1.0, "{text}");
}
