//! Trellis federating with a server that is neither Trellis nor Synapse: the minimal
//! spec-following [`Peer`] joins a room on Trellis (room versions 10, 11 and the default 12)
//! and must get everything a joined server is owed through `/send` (PDUs, `m.typing`,
//! `m.receipt`, `m.direct_to_device`), signed as the spec says; its own PDUs reach Trellis's
//! users; a transaction it refused is retried after the backoff. Throughout, Trellis must not
//! ask it for anything the spec does not require it to serve (`/version`, notary queries...).

use std::time::Duration;

use serde_json::{Value, json};

use super::join::{Watch, message};
use super::peer::{Joined, Peer, assert_signed};
use super::{Fed, Pki};
use crate::server::{Session, urlencode};

/// Trellis with alice and the peer (`key_validity_ms`: of the peer's key responses, when not
/// the default), a public room of alice's (`version`: the server's default when `None`), the
/// peer joined to it as `@pat:<peer>`.
async fn joined_peer(version: Option<&str>, key_validity_ms: Option<u64>) -> (Pki, Fed, Peer, Session, Joined) {
    let pki = Pki::new();
    let trellis = Fed::start(&pki);
    let peer = Peer::start(&pki).await;
    if let Some(ms) = key_validity_ms {
        peer.set_key_validity(ms);
    }
    let alice = trellis.server.register("alice", "password-alice").await;
    let mut body = json!({ "preset": "public_chat" });
    if let Some(v) = version {
        body["room_version"] = json!(v);
    }
    let room = trellis.server.create_room(&alice.access_token, body).await;
    let joined = peer.join(&trellis, &room, "pat").await;
    assert_eq!(joined.version.as_str(), version.unwrap_or("12"));
    (pki, trellis, peer, alice, joined)
}

/// Every transaction the peer got came from Trellis, addressed to the peer, and verified; no
/// request the peer does not serve was made. Every PDU is Trellis's own, signed by it with a
/// matching content hash, delivered once; every EDU is one the spec defines, with a content
/// object.
async fn assert_clean(trellis: &Fed, peer: &Peer, room: &Joined) {
    let log = peer.log();
    assert_eq!(log.refused, Vec::<String>::new(), "transactions that failed authentication");
    assert_eq!(log.unserved, Vec::<String>::new(), "Trellis asked for what the spec does not require");
    let keys = peer.key_map(&trellis.name).await;
    let mut delivered = std::collections::BTreeSet::new();
    for t in log.txns.iter().chain(&log.failed) {
        assert_eq!((t.origin.as_str(), t.destination.as_deref()), (trellis.name.as_str(), Some(peer.name.as_str())));
        assert_eq!(t.body["origin"], trellis.name.as_str());
        assert!(t.body["origin_server_ts"].as_u64().is_some(), "{}", t.body);
        assert!(t.pdus().len() <= 50 && t.edus().len() <= 100, "{}", t.body);
        for edu in t.edus() {
            let known = [
                "m.typing",
                "m.receipt",
                "m.presence",
                "m.direct_to_device",
                "m.device_list_update",
                "m.signing_key_update",
            ];
            assert!(known.contains(&edu["edu_type"].as_str().unwrap_or("")), "{edu}");
            assert!(edu["content"].is_object(), "{edu}");
        }
    }
    for t in &log.txns {
        for pdu in t.pdus() {
            assert!(pdu["sender"].as_str().is_some_and(|u| u.ends_with(&format!(":{}", trellis.name))), "{pdu}");
            assert_signed(&keys, pdu, &room.rules, "a PDU sent to the peer");
            assert!(delivered.insert(room.event_id_of(pdu)), "delivered twice: {pdu}");
        }
    }
}

async fn everything_reaches_the_peer(version: Option<&str>) {
    let (_pki, trellis, peer, alice, room) = joined_peer(version, None).await;
    let token = alice.access_token.as_str();
    let trellis_keys = peer.key_map(&trellis.name).await;
    let state = room.response["state"].as_array().unwrap();
    let members: Vec<&Value> = state.iter().filter(|e| e["type"] == "m.room.member").map(|e| &e["state_key"]).collect();
    assert_eq!(members, [&json!(alice.user_id)], "the state before the join");
    // Trellis verified the peer's requests (and its join) with the key the peer serves.
    assert_eq!(peer.key_fetches(), 1, "{:?}", peer.log());

    // A message: the PDU as stored, signed by Trellis, with a matching content hash.
    let m1 = trellis.server.send_text(token, &room.room_id, "hello peer").await;
    let (t1, pdu) = peer.wait_pdu(&room, &m1, 15).await;
    assert_eq!(
        (&pdu["type"], &pdu["sender"], &pdu["room_id"], &pdu["content"]),
        (
            &json!("m.room.message"),
            &json!(alice.user_id),
            &json!(room.room_id),
            &json!({ "msgtype": "m.text", "body": "hello peer" })
        )
    );
    assert_signed(&trellis_keys, &pdu, &room.rules, "the message");

    // A state change.
    let r = trellis.server.set_state(token, &room.room_id, "m.room.topic", "", json!({ "topic": "peers" })).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let topic_id = r.body["event_id"].as_str().unwrap().to_owned();
    let (_, pdu) = peer.wait_pdu(&room, &topic_id, 15).await;
    assert_eq!(
        (&pdu["type"], &pdu["state_key"], &pdu["content"]),
        (&json!("m.room.topic"), &json!(""), &json!({ "topic": "peers" }))
    );

    // A second message, in a later transaction.
    let m2 = trellis.server.send_text(token, &room.room_id, "second").await;
    let (t2, _) = peer.wait_pdu(&room, &m2, 15).await;
    assert_ne!(t1.txn_id, t2.txn_id);
    assert!(t2.at > t1.at);

    // Typing.
    let path = format!("/_matrix/client/v3/rooms/{}/typing/{}", room.room_id, urlencode(&alice.user_id));
    let r = trellis.server.put(&path, Some(token), json!({ "typing": true, "timeout": 20000 })).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let (_, edu) = peer.wait_edu("m.typing", 15, |_| true).await;
    assert_eq!(edu["content"], json!({ "room_id": room.room_id, "user_id": alice.user_id, "typing": true }));

    // A read receipt.
    let path = format!("/_matrix/client/v3/rooms/{}/receipt/m.read/{}", room.room_id, urlencode(&m2));
    let r = trellis.server.post(&path, Some(token), json!({})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let (_, edu) = peer.wait_edu("m.receipt", 15, |_| true).await;
    let read = &edu["content"][&room.room_id]["m.read"][&alice.user_id];
    assert_eq!(read["event_ids"], json!([m2]), "{edu}");
    assert!(read["data"]["ts"].as_u64().is_some_and(|ts| ts > 0), "{edu}");

    // A to-device message for the peer's user.
    let body = json!({ "messages": { &room.user: { "PATDEVICE": { "hello": "pat" } } } });
    let r = trellis.server.put("/_matrix/client/v3/sendToDevice/m.peer.test/td1", Some(token), body).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let (_, edu) = peer.wait_edu("m.direct_to_device", 15, |_| true).await;
    let content = &edu["content"];
    assert_eq!((&content["sender"], &content["type"]), (&json!(alice.user_id), &json!("m.peer.test")), "{edu}");
    assert_eq!(content["messages"], json!({ &room.user: { "PATDEVICE": { "hello": "pat" } } }));
    assert!(content["message_id"].as_str().is_some_and(|id| !id.is_empty()), "{edu}");

    // A new device of alice's: `m.device_list_update` for the server sharing a room with her.
    let r = trellis.server.login("alice", "password-alice").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let device = r.body["device_id"].as_str().unwrap().to_owned();
    let (_, edu) = peer.wait_edu("m.device_list_update", 15, |c| c["device_id"] == device.as_str()).await;
    assert_eq!(edu["content"]["user_id"], alice.user_id.as_str(), "{edu}");
    assert!(edu["content"]["stream_id"].as_u64().is_some(), "{edu}");
    assert_ne!(edu["content"]["deleted"], json!(true), "{edu}");

    // The peer's user speaks: Trellis accepts the PDU and alice sees it.
    let mut watch = Watch::new(&trellis.server, &alice).await;
    let (id, r) = peer.send_message(&trellis, &room, "hello from the peer").await;
    assert_eq!((r.status, &r.body), (200, &json!({ "pdus": { &id: {} } })));
    let seen = watch.wait("the peer's message", message(&room.room_id, "hello from the peer")).await;
    assert_eq!((&seen.event["event_id"], &seen.event["sender"]), (&json!(id), &json!(room.user)));

    // alice's /sync made her online: `m.presence` for the server sharing a room with her.
    let online = |c: &Value| c["push"].as_array().is_some_and(|p| p.iter().any(|u| u["presence"] == "online"));
    let (_, edu) = peer.wait_edu("m.presence", 15, online).await;
    let push = edu["content"]["push"].as_array().unwrap();
    let mine = push.iter().find(|u| u["user_id"] == alice.user_id.as_str() && u["presence"] == "online");
    let mine = mine.unwrap_or_else(|| panic!("{edu}"));
    assert!(mine["last_active_ago"].as_u64().is_some(), "{edu}");

    // The peer's EDUs in the spec's format: alice sees pat typing and pat's read receipt.
    let typing = json!({ "edu_type": "m.typing",
        "content": { "room_id": room.room_id, "user_id": room.user, "typing": true } });
    let receipt = json!({ "edu_type": "m.receipt", "content": { &room.room_id: { "m.read": {
        &room.user: { "event_ids": [m2], "data": { "ts": super::now_ms() } } } } } });
    let r = peer.send_txn(&trellis, &[], &[typing, receipt]).await;
    assert_eq!((r.status, &r.body), (200, &json!({ "pdus": {} })));
    let user = room.user.clone();
    watch
        .wait("pat typing", |s| {
            s.room == room.room_id
                && s.event["type"] == "m.typing"
                && s.event["content"]["user_ids"].as_array().is_some_and(|u| u.contains(&json!(user)))
        })
        .await;
    let seen = watch
        .wait("pat's receipt", |s| {
            s.room == room.room_id
                && s.event["type"] == "m.receipt"
                && s.event["content"][&m2]["m.read"][&user].is_object()
        })
        .await;
    assert!(seen.event["content"][&m2]["m.read"][&room.user]["ts"].as_u64().is_some(), "{:?}", seen.event);

    assert_clean(&trellis, &peer, &room).await;
}

#[tokio::test]
async fn spec_peer_gets_pdus_and_edus_room_v10() {
    everything_reaches_the_peer(Some("10")).await;
}

#[tokio::test]
async fn spec_peer_gets_pdus_and_edus_room_v11() {
    everything_reaches_the_peer(Some("11")).await;
}

#[tokio::test]
async fn spec_peer_gets_pdus_and_edus_default_room_v12() {
    everything_reaches_the_peer(None).await;
}

/// How many times Trellis logged a failed transaction.
fn failures_logged(trellis: &Fed) -> usize {
    trellis.server.log().matches("transaction failed").count()
}

/// The peer answers the first `/send` with 500: Trellis re-sends the same transaction (same
/// `txnId`, same PDUs) after its first backoff (5 s), with nothing from the peer to wake it.
/// Then the peer is down (connection refused) when a message is sent, and comes back: the
/// message arrives after the backoff again; likewise when Trellis restarts while the peer is
/// down.
#[tokio::test]
async fn spec_peer_failed_transactions_are_retried_after_the_backoff() {
    let (_pki, mut trellis, mut peer, alice, room) = joined_peer(None, None).await;
    let token = alice.access_token.as_str();

    peer.fail_sends(1);
    let m1 = trellis.server.send_text(token, &room.room_id, "after a 500").await;
    let failed = peer.wait_for("a refused transaction", 15, |log| log.failed.first().cloned()).await;
    assert!(failed.pdus().iter().any(|p| room.event_id_of(p) == m1), "{:?}", failed.body);
    let (delivered, _) = peer.wait_pdu(&room, &m1, 20).await;
    assert_eq!((&delivered.txn_id, &delivered.body), (&failed.txn_id, &failed.body));
    let waited = delivered.at - failed.at;
    assert!(waited >= Duration::from_secs(4), "retried after {waited:?}, before the backoff");
    assert_eq!(peer.log().failed.len(), 1);

    // Down, then up again.
    let before = failures_logged(&trellis);
    peer.stop().await;
    let m2 = trellis.server.send_text(token, &room.room_id, "while the peer was down").await;
    let start = std::time::Instant::now();
    while failures_logged(&trellis) == before {
        assert!(start.elapsed() < Duration::from_secs(15), "no failed attempt logged:\n{}", trellis.server.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    peer.restart().await;
    let (t2, pdu) = peer.wait_pdu(&room, &m2, 20).await;
    assert_eq!(pdu["content"]["body"], "while the peer was down");
    assert_ne!(t2.txn_id, delivered.txn_id);

    // Down again, and Trellis restarts meanwhile: the transaction in flight and its backoff
    // were persisted, and it goes out once the peer is back.
    let before = failures_logged(&trellis);
    peer.stop().await;
    let m3 = trellis.server.send_text(token, &room.room_id, "across a restart").await;
    let start = std::time::Instant::now();
    while failures_logged(&trellis) == before {
        assert!(start.elapsed() < Duration::from_secs(15), "no failed attempt logged:\n{}", trellis.server.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    trellis.server.restart();
    peer.restart().await;
    let (t3, pdu) = peer.wait_pdu(&room, &m3, 20).await;
    assert_eq!(pdu["content"]["body"], "across a restart");
    assert_ne!(t3.txn_id, t2.txn_id);
    assert_clean(&trellis, &peer, &room).await;
}

/// The peer's key responses are valid for 3 s only (`valid_until_ts`: "when the list of valid
/// keys should be refreshed"): once they have run out, Trellis fetches them again for the
/// peer's next request instead of refusing it as signed by an unknown key (it used to wait out
/// its 30 s limit on refetching a server's keys, answering 401 meanwhile).
#[tokio::test]
async fn spec_peer_keys_are_refetched_once_their_valid_until_ts_passed() {
    let (_pki, trellis, peer, alice, room) = joined_peer(None, Some(3000)).await;
    let mut watch = Watch::new(&trellis.server, &alice).await;
    let fetches = peer.key_fetches();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let (id, r) = peer.send_message(&trellis, &room, "with a fresh key").await;
    assert_eq!((r.status, &r.body), (200, &json!({ "pdus": { &id: {} } })));
    assert_eq!(peer.key_fetches(), fetches + 1);
    let seen = watch.wait("the peer's message", message(&room.room_id, "with a fresh key")).await;
    assert_eq!(seen.event["event_id"], id.as_str());
    assert_clean(&trellis, &peer, &room).await;
}

/// The peer serves none of the endpoints a server uses to fill gaps in the DAG: a PDU of its
/// on a prev event Trellis does not know gets a per-PDU error in a prompt 200 answer (Trellis
/// asked for the gap, got 404 `M_UNRECOGNIZED`, and gave up), never a hang or a 5xx; the room
/// goes on (the next PDU on a known event is accepted).
#[tokio::test]
async fn spec_peer_pdu_on_an_unknown_prev_event_is_refused_promptly() {
    let (_pki, trellis, peer, _alice, room) = joined_peer(None, None).await;
    let (_, depth) = peer.tip(&room);
    let unknown = "$aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let start = std::time::Instant::now();
    let (id, r) = peer.send_message_after(&trellis, &room, "on a gap", unknown, depth + 5).await;
    assert!(start.elapsed() < Duration::from_secs(10), "answered after {:?}", start.elapsed());
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.body["pdus"][&id]["error"].as_str().is_some_and(|e| !e.is_empty()), "{:?}", r.body);
    // The gap, then the state at the unknown event, each asked once.
    let asked = peer.log().unserved;
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert!(asked[0].starts_with("POST /_matrix/federation/v1/get_missing_events/"), "{asked:?}");
    assert!(asked[1].starts_with("GET /_matrix/federation/v1/state_ids/"), "{asked:?}");
    assert!(asked[1].ends_with(&format!("?event_id={}", urlencode(unknown))), "{asked:?}");

    let (id, r) = peer.send_message(&trellis, &room, "on the tip").await;
    assert_eq!((r.status, &r.body), (200, &json!({ "pdus": { &id: {} } })));
}

/// The peer itself: what it does not serve is a 404 `M_UNRECOGNIZED` and logged; a `/send` not
/// signed by the origin's published key is refused (401) and logged, one signed by it recorded.
#[tokio::test]
async fn spec_peer_refuses_what_it_should() {
    let pki = Pki::new();
    let mut trellis = Fed::start(&pki);
    let peer = Peer::start(&pki).await;
    let https = pki.https();
    let r = crate::server::send(https.get(format!("{}/_matrix/federation/v1/version", peer.url()))).await;
    assert_eq!((r.status, r.errcode()), (404, "M_UNRECOGNIZED"));
    assert_eq!(peer.log().unserved, ["GET /_matrix/federation/v1/version"]);

    let real = trellis.signing_key();
    let name = trellis.name.clone();
    let body = json!({ "origin": name, "origin_server_ts": super::now_ms(), "pdus": [] });
    let put = |key: &ruma::signatures::Ed25519KeyPair, txn: &str| {
        let path = format!("/_matrix/federation/v1/send/{txn}");
        let auth = super::x_matrix(key, &name, &peer.name, "PUT", &path, Some(&body));
        https.put(format!("{}{path}", peer.url())).header("authorization", auth).json(&body)
    };
    let doc = ruma::signatures::Ed25519KeyPair::generate();
    let stranger = ruma::signatures::Ed25519KeyPair::from_der(&doc, real.version().to_owned()).unwrap();
    let r = crate::server::send(put(&stranger, "forged")).await;
    assert_eq!((r.status, r.errcode()), (401, "M_UNAUTHORIZED"));
    assert_eq!(peer.log().refused.len(), 1, "{:?}", peer.log());
    assert!(peer.log().txns.is_empty());

    let r = crate::server::send(put(&real, "genuine")).await;
    assert_eq!((r.status, &r.body), (200, &json!({ "pdus": {} })));
    let log = peer.log();
    assert_eq!((log.txns.len(), log.txns[0].txn_id.as_str(), log.refused.len()), (1, "genuine", 1));
}

/// A 200 answer to `/send` means the peer has the transaction, even when its body lacks the
/// `pdus` map (Synapse reads it as `response.get("pdus", {})`): Trellis must not re-send that
/// transaction (which would hold up everything after it behind the backoff), and the next
/// message goes out at once in a new one.
#[tokio::test]
async fn spec_peer_200_without_pdus_counts_as_delivered() {
    let (_pki, trellis, peer, alice, room) = joined_peer(None, None).await;
    let token = alice.access_token.as_str();
    peer.set_send_answer(json!({}));
    let m1 = trellis.server.send_text(token, &room.room_id, "first").await;
    let (t1, _) = peer.wait_pdu(&room, &m1, 15).await;
    let m2 = trellis.server.send_text(token, &room.room_id, "second").await;
    let (t2, _) = peer.wait_pdu(&room, &m2, 15).await;
    assert_ne!(t1.txn_id, t2.txn_id);
    assert!(t2.at - t1.at < Duration::from_secs(4), "the second message waited {:?}", t2.at - t1.at);
    let ids: Vec<String> = peer.log().txns.iter().map(|t| t.txn_id.clone()).collect();
    let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "a transaction was sent again: {ids:?}");
    assert_clean(&trellis, &peer, &room).await;
}
