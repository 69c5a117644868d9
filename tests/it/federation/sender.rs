//! Sending, through the real binary: a local user's to-device message for a user of another
//! Trellis server leaves in a signed `PUT /_matrix/federation/v1/send/{txnId}` that the other
//! server receives. (Delivery and room fan-out between two servers need the `/send` handler and
//! joins; the queue itself is tested in `src/federation/sender/tests.rs` against a fake peer.)

use std::time::{Duration, Instant};

use serde_json::json;

use super::{Fed, Pki};

/// The `txnId`s of the `/send` requests in a server's log, in order.
fn send_txn_ids(log: &str) -> Vec<String> {
    log.split("/_matrix/federation/v1/send/")
        .skip(1)
        .map(|rest| rest.chars().take_while(|c| c.is_ascii_alphanumeric()).collect())
        .collect()
}

#[tokio::test]
async fn to_device_for_a_remote_user_goes_out_in_a_transaction() {
    let pki = Pki::new();
    let a = Fed::start(&pki);
    let b = Fed::start(&pki);
    let alice = a.server.register("alice", "password-alice").await;
    let bob = format!("@bob:{}", b.name);
    let body = json!({ "messages": { bob: { "*": { "hello": "bob" } } } });
    let r = a.server.put("/_matrix/client/v3/sendToDevice/m.test/t1", alice.token(), body).await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    let start = Instant::now();
    while send_txn_ids(&b.server.log()).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(15), "no transaction reached B:\n{}", b.server.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ids = send_txn_ids(&b.server.log());
    assert!(ids[0].len() >= 16, "{ids:?}");
}
