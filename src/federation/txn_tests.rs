//! Pruning `federation_received_txns`: answers older than the cut-off (or without a
//! `received_ts`) go, newer ones stay, across several chunks; the timer task prunes at start.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{RECEIVED_TXN_KEEP, prune_received, start_pruning};
use crate::config::Config;
use crate::services::{Services, State};
use crate::storage::catalog::FEDERATION_RECEIVED_TXNS;
use crate::users::now_ms;

fn services() -> (State, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.database.path = dir.path().join("db");
    (Services::new(config).map_err(|e| e.to_string()).unwrap(), dir)
}

fn put(s: &Services, origin: &str, txn: &str, received_ts: Option<u64>) {
    let mut value = json!({ "response": { "pdus": {} } });
    if let Some(ts) = received_ts {
        value["received_ts"] = json!(ts);
    }
    let mut batch = s.db.batch();
    let origin = ruma::ServerName::parse(origin).unwrap();
    batch.put(FEDERATION_RECEIVED_TXNS, &(&*origin, <&ruma::TransactionId>::from(txn)), &value).unwrap();
    batch.commit().unwrap();
}

fn keys(s: &Services) -> Vec<(String, String)> {
    let rows = s.db.scan_all(FEDERATION_RECEIVED_TXNS).unwrap();
    rows.into_iter().map(|((origin, txn), _)| (origin.to_string(), txn.to_string())).collect()
}

#[tokio::test]
async fn old_answers_are_pruned_and_recent_ones_kept() {
    let (s, _dir) = services();
    let now = now_ms();
    let day = RECEIVED_TXN_KEEP.as_millis() as u64;
    // 1200 old answers of one origin (several chunks), interleaved in key order with recent ones.
    for i in 0..1200 {
        put(&s, "a.test", &format!("old{i:04}"), Some(now - day - 60_000));
    }
    put(&s, "a.test", "recent", Some(now - 3_600_000));
    put(&s, "b.test", "old", Some(now - 2 * day));
    put(&s, "b.test", "no-timestamp", None);
    put(&s, "c.test", "recent", Some(now));

    assert_eq!(prune_received(&s, now - day).unwrap(), 1202);
    let left = keys(&s);
    assert_eq!(left, vec![("a.test".into(), "recent".into()), ("c.test".into(), "recent".into())]);
    assert_eq!(prune_received(&s, now - day).unwrap(), 0, "nothing left to prune");
}

#[tokio::test]
async fn the_timer_task_prunes_at_start() {
    let (s, _dir) = services();
    let now = now_ms();
    put(&s, "a.test", "old", Some(now - RECEIVED_TXN_KEEP.as_millis() as u64 - 1));
    put(&s, "a.test", "new", Some(now));
    start_pruning(&s);
    let start = Instant::now();
    while keys(&s).len() > 1 {
        assert!(start.elapsed() < Duration::from_secs(10), "not pruned: {:?}", keys(&s));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(keys(&s), vec![("a.test".to_owned(), "new".to_owned())]);
}

/// Concurrent transactions (the same one retried, and others' from other origins) are
/// serialised per origin, answered, and leave no entry in the origin locks.
#[tokio::test]
async fn origin_locks_are_gone_after_transactions() {
    let (s, _dir) = services();
    let origins = ["a.test", "a.test", "b.test", "c.test"];
    let origins: Vec<_> = origins.iter().map(|o| ruma::ServerName::parse(o).unwrap()).collect();
    let answers = futures_util::future::join_all(
        origins.iter().map(|o| super::receive(&s, o, "t1".into(), Vec::new(), Vec::new())),
    )
    .await;
    assert!(answers.into_iter().all(|a| a.unwrap() == json!({ "pdus": {} })));
    assert_eq!(keys(&s).len(), 3, "one stored answer per origin");
    assert!(s.federation.txn_origins.is_empty(), "no lock entry left");
}
