//! A crash right after an event is stored: the event must still reach the other servers in the
//! room. The server runs with the debug-build failpoint `TRELLIS_FAILPOINT=after_event_commit`
//! (`rooms/append.rs`), which aborts the process as soon as the event's batch is committed and
//! before anything else runs; restarted without it, the server sends what that batch queued.

use std::time::Duration;

use serde_json::{Value, json};

use super::peer::Peer;
use super::{Fed, Pki};
use crate::server::urlencode;

const BODY: &str = "sent just before the crash";

#[tokio::test]
async fn an_event_stored_before_a_crash_still_reaches_the_remote_server() {
    let pki = Pki::new();
    let mut trellis = Fed::start(&pki);
    let peer = Peer::start(&pki).await;
    let alice = trellis.server.register("alice", "password-alice").await;
    let room = trellis.server.create_room(&alice.access_token, json!({ "preset": "public_chat" })).await;
    peer.join(&trellis, &room, "pat").await;

    trellis.server.set_env("TRELLIS_FAILPOINT", Some("after_event_commit"));
    trellis.server.restart();
    let path = format!("/_matrix/client/v3/rooms/{}/send/m.room.message/t1", urlencode(&room));
    let sent = reqwest::Client::new()
        .put(format!("{}{path}", trellis.server.url))
        .bearer_auth(&alice.access_token)
        .json(&json!({ "msgtype": "m.text", "body": BODY }))
        .timeout(Duration::from_secs(20))
        .send()
        .await;
    assert!(sent.is_err(), "the failpoint did not stop the server: {sent:?}");
    assert!(trellis.server.log().contains("failpoint after_event_commit"), "{}", trellis.server.log());

    trellis.server.set_env("TRELLIS_FAILPOINT", None);
    trellis.server.restart();
    let is_ours = |p: &Value| p["type"] == "m.room.message" && p["content"]["body"] == BODY;
    peer.wait_for("the message stored before the crash", 30, |log| {
        log.txns.iter().flat_map(|t| t.pdus()).find(|p| is_ours(p)).cloned()
    })
    .await;
    // It is in the room's timeline too (it was stored, not just queued).
    let messages = trellis.server.message_bodies(&alice.access_token, &room).await;
    assert!(messages.iter().any(|b| b == BODY), "{messages:?}");
}
