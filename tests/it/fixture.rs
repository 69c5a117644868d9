//! Generator of `tests/fixtures/storage-2026-12/`: a database written by the storage layout of
//! December 2026, with rows in every table of `trellis::storage::catalog::ALL`. The library's
//! `storage::fixture_tests` opens a copy and reads every table back, proving that changes to the
//! Rust types of keys and values leave the bytes on disk as they are.
//!
//! Regenerate (only while the layout is still the one of 2026-12, e.g. to cover a table that
//! existed then and was missed):
//!
//! ```text
//! cargo test --test it fixture -- --ignored
//! ```
//!
//! The fixture stands for databases in the field: **never regenerate it after a layout change**
//! (a changed key or value encoding, a renumbered table). A new table gets rows in a fixture of
//! its own date instead; the old one stays as it is.
//!
//! Server A (the fixture) federates with server B: B's user joins A's room, sends to it and
//! invites A's user, A's user changes devices while sharing a room with B, then B stops so A's
//! outgoing queues, in-flight transaction and backoff for B keep their rows.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use trellis::storage::Storage;
use trellis::storage::catalog;

use crate::federation::{Fed, Pki};
use crate::keys::device_keys;
use crate::server::{Resp, Session, TestServer, urlencode};

const PW: &str = "password-fixture";

fn ok(r: &Resp, what: &str) {
    assert_eq!(r.status, 200, "{what}: {:?}", r.body);
}

/// Poll `check` until it holds (at most 20 s).
async fn until<F: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn membership(s: &TestServer, who: &Session, room: &str, user: &str) -> Option<String> {
    let r =
        s.get(&format!("/_matrix/client/v3/rooms/{room}/state/m.room.member/{}", urlencode(user)), who.token()).await;
    r.body["membership"].as_str().map(str::to_owned)
}

async fn login(s: &TestServer, user: &str, device: &str, refresh: bool) -> (Session, Value) {
    let body = json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": user },
                       "password": PW, "device_id": device, "initial_device_display_name": format!("{user}'s {device}"),
                       "refresh_token": refresh });
    let r = s.post("/_matrix/client/v3/login", None, body).await;
    ok(&r, "login");
    (Session::from(&r.body), r.body)
}

fn signed_key(user: &str, name: &str) -> Value {
    json!({ "key": format!("key-{name}"), "signatures": { user: { "ed25519:A": "sig" } } })
}

async fn upload_keys(s: &TestServer, who: &Session) {
    let body = json!({
        "device_keys": device_keys(&who.user_id, &who.device_id),
        "one_time_keys": { "signed_curve25519:K1": signed_key(&who.user_id, "K1"), "signed_curve25519:K2": signed_key(&who.user_id, "K2") },
        "fallback_keys": { "signed_curve25519:F1": signed_key(&who.user_id, "F1") },
    });
    ok(&s.post("/_matrix/client/v3/keys/upload", who.token(), body).await, "keys/upload");
}

async fn send(s: &TestServer, who: &Session, room: &str, txn: &str, content: Value) -> String {
    let path = format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}");
    let r = s.put(&path, who.token(), content).await;
    ok(&r, "send");
    r.body["event_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
#[ignore = "writes tests/fixtures/storage-2026-12; run by hand, see the module docs"]
async fn generate_storage_fixture() {
    let pki = Pki::new();
    let mut a = Fed::start(&pki);
    let mut b = Fed::start(&pki);
    let sa = &a.server;

    // Accounts: registration, password logins (one with a refresh token), a login token.
    let alice = sa.register("alice", PW).await;
    let bob = sa.register("bob", PW).await;
    let (alice_laptop, body) = login(sa, "alice", "LAPTOP", true).await;
    assert!(body["refresh_token"].is_string(), "{body}");
    let r = sa.post("/_matrix/client/v1/login/get_token", alice.token(), json!({})).await;
    let auth = json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "alice" },
                       "password": PW, "session": r.body["session"] });
    ok(&sa.post("/_matrix/client/v1/login/get_token", alice.token(), json!({ "auth": auth })).await, "get_token");
    let path = format!("/_matrix/client/v3/devices/{}", alice.device_id);
    ok(&sa.put(&path, alice.token(), json!({ "display_name": "Alice's first device" })).await, "rename device");

    // Profile, filters, global account data.
    let path = format!("/_matrix/client/v3/profile/{}/displayname", urlencode(&alice.user_id));
    ok(&sa.put(&path, alice.token(), json!({ "displayname": "Alice" })).await, "displayname");
    let path = format!("/_matrix/client/v3/user/{}/filter", urlencode(&alice.user_id));
    ok(&sa.post(&path, alice.token(), json!({ "room": { "timeline": { "limit": 10 } } })).await, "filter");
    let path = format!("/_matrix/client/v3/user/{}/account_data/m.fixture.global", urlencode(&alice.user_id));
    ok(&sa.put(&path, alice.token(), json!({ "global": true })).await, "global account data");

    // A public room with an alias (published in the directory), messages, a reaction and a thread.
    let body = json!({ "preset": "public_chat", "visibility": "public", "room_alias_name": "fixture", "name": "Fixture", "topic": "bytes on disk" });
    let room = sa.create_room(&alice.access_token, body).await;
    ok(&sa.join(&bob.access_token, &room).await, "bob joins");
    let first = send(sa, &alice, &room, "txn-1", json!({ "msgtype": "m.text", "body": "hello" })).await;
    let reply = send(
        sa,
        &bob,
        &room,
        "txn-2",
        json!({ "msgtype": "m.text", "body": "in a thread",
        "m.relates_to": { "rel_type": "m.thread", "event_id": first } }),
    )
    .await;
    let path = format!("/_matrix/client/v3/rooms/{room}/send/m.reaction/txn-3");
    let reaction = json!({ "m.relates_to": { "rel_type": "m.annotation", "event_id": first, "key": "👍" } });
    ok(&sa.put(&path, bob.token(), reaction).await, "reaction");
    let path =
        format!("/_matrix/client/v3/user/{}/rooms/{room}/account_data/m.fixture.room", urlencode(&alice.user_id));
    ok(&sa.put(&path, alice.token(), json!({ "room": true })).await, "room account data");
    let path = format!("/_matrix/client/v3/rooms/{room}/receipt/m.read/{}", urlencode(&reply));
    ok(&sa.post(&path, alice.token(), json!({})).await, "receipt");
    let path = format!("/_matrix/client/v3/rooms/{room}/report/{}", urlencode(&reply));
    ok(&sa.post(&path, alice.token(), json!({ "reason": "fixture report", "score": -50 })).await, "report");

    // A room bob left and forgot.
    let gone = sa.create_room(&bob.access_token, json!({ "preset": "private_chat" })).await;
    ok(&sa.room_post(&bob.access_token, &gone, "leave", json!({})).await, "leave");
    ok(&sa.room_post(&bob.access_token, &gone, "forget", json!({})).await, "forget");

    // Presence, E2E keys, to-device.
    let path = format!("/_matrix/client/v3/presence/{}/status", urlencode(&alice.user_id));
    ok(&sa.put(&path, alice.token(), json!({ "presence": "online", "status_msg": "fixture" })).await, "presence");
    upload_keys(sa, &alice).await;
    let path = "/_matrix/client/v3/sendToDevice/m.fixture.to_device/txn-td";
    let body = json!({ "messages": { bob.user_id.as_str(): { bob.device_id.as_str(): { "hello": "bob" } } } });
    ok(&sa.put(path, alice.token(), body).await, "sendToDevice");

    // Federation: carol on B joins the room, writes to it, uploads keys, invites alice.
    let carol = b.server.register("carol", PW).await;
    let path = format!("/_matrix/client/v3/join/{}?via={}", urlencode(&room), urlencode(a.name.as_str()));
    ok(&b.server.post(&path, carol.token(), json!({})).await, "carol joins");
    until("carol's join on A", || async {
        membership(sa, &alice, &room, &carol.user_id).await.as_deref() == Some("join")
    })
    .await;
    send(&b.server, &carol, &room, "txn-c1", json!({ "msgtype": "m.text", "body": "from B" })).await;
    upload_keys(&b.server, &carol).await;
    let (_carol2, _) = login(&b.server, "carol", "TABLET", false).await;
    let dm = b.server.create_room(&carol.access_token, json!({ "preset": "private_chat", "name": "Invite" })).await;
    ok(&b.server.room_post(&carol.access_token, &dm, "invite", json!({ "user_id": alice.user_id })).await, "invite");
    // alice's device list changes while she shares a room with B: an m.device_list_update.
    upload_keys(sa, &alice_laptop).await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // B goes away: what A sends it now stays queued, in flight, and backed off.
    b.server.stop();
    send(sa, &alice, &room, "txn-4", json!({ "msgtype": "m.text", "body": "B is down" })).await;
    let path = format!("/_matrix/client/v3/rooms/{room}/typing/{}", urlencode(&alice.user_id));
    ok(&sa.put(&path, alice.token(), json!({ "typing": true, "timeout": 30000 })).await, "typing");
    let path = format!("/_matrix/client/v3/presence/{}/status", urlencode(&alice.user_id));
    ok(&sa.put(&path, alice.token(), json!({ "presence": "unavailable" })).await, "presence");
    tokio::time::sleep(Duration::from_secs(3)).await;
    send(sa, &alice, &room, "txn-5", json!({ "msgtype": "m.text", "body": "still down" })).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // A user with an e-mail address: the CLI is the only path that adds one.
    let dir = sa.dir.join("db");
    a.server.stop();
    let out = std::process::Command::new(crate::server::BIN)
        .args(["user", "create", "frank", "--password", PW, "--email", "frank@example.org"])
        .env_clear()
        .env("TRELLIS_DATABASE__PATH", &dir)
        .env("TRELLIS_SERVER_NAME", a.name.as_str())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Every table has rows; then one compacted SST file, so the fixture is small.
    let db = Storage::open(&dir, 8).unwrap();
    db.flush_and_compact().unwrap();
    drop(db);
    let rows = rows_per_table(&dir);
    for t in catalog::ALL {
        println!("{:>4} {}", rows.get(&t.id).copied().unwrap_or(0), t.name);
    }
    let empty: Vec<&str> = catalog::ALL.iter().filter(|t| !rows.contains_key(&t.id)).map(|t| t.name).collect();
    assert_eq!(empty, Vec::<&str>::new(), "tables without rows");

    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/storage-2026-12");
    let _ = std::fs::remove_dir_all(&target);
    std::fs::create_dir_all(&target).unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        // RocksDB's info logs are not part of the database.
        if name == "LOG" || name.starts_with("LOG.old") || name == "LOCK" {
            continue;
        }
        std::fs::copy(entry.path(), target.join(&name)).unwrap();
    }
    drop(b);
}

/// Rows per table id, read with RocksDB itself (after a compaction, so no merge operands are
/// left for a read-only handle without the merge operator).
fn rows_per_table(dir: &Path) -> std::collections::BTreeMap<u16, usize> {
    let db = rocksdb::DB::open_for_read_only(&rocksdb::Options::default(), dir, false).unwrap();
    let mut rows = std::collections::BTreeMap::new();
    for item in db.iterator(rocksdb::IteratorMode::Start) {
        let (key, _) = item.unwrap();
        *rows.entry(u16::from_be_bytes([key[0], key[1]])).or_default() += 1;
    }
    rows
}
