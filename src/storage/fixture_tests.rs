//! The bytes on disk stay as they are: a database written by the layout of 2026-12
//! (`tests/fixtures/storage-2026-12`, made by `tests/it/fixture.rs` and never regenerated after a
//! layout change) is opened and every table of [`catalog::ALL`] read back through its typed key
//! and value. Each decoded key must encode to exactly the bytes on disk, each value to the same
//! JSON (counters: the same bytes), whatever Rust types the catalog gives them today.
//!
//! The tables are named through their catalog constants only, so a change of a table's key or
//! value type needs no change here; a table added to the catalog fails
//! [`every_table_of_the_fixture_reads_back_byte_for_byte`] until it is listed below, or in
//! `NEWER_THAN_FIXTURE` if it came after the fixture.

use std::any::Any;
use std::collections::BTreeSet;
use std::path::Path;

use rocksdb::{Direction, IteratorMode};

use super::Storage;
use super::catalog::{self, Table, Tag};
use super::codec::{Counter, KeyCodec, ValueCodec};

/// Tables added to the catalog after the fixture was written (it is never regenerated): their
/// layouts are pinned by their own tests, not by the fixture.
const NEWER_THAN_FIXTURE: &[Tag] = &[catalog::OPENID_TOKENS.tag(), catalog::USER_REPORTS.tag()];

/// A copy of the fixture in a temporary directory (opening a database writes to it).
fn open_fixture() -> (tempfile::TempDir, Storage) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/storage-2026-12");
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&source).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let storage = Storage::open(dir.path(), 8).unwrap();
    (dir, storage)
}

/// The raw rows of a table, key without the table id, in key order.
fn raw_rows<K, V>(db: &Storage, table: Table<K, V>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let prefix = table.id.to_be_bytes();
    db.inner
        .db
        .iterator(IteratorMode::From(&prefix, Direction::Forward))
        .map(|item| item.unwrap())
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(k, v)| (k[2..].to_vec(), v.to_vec()))
        .collect()
}

/// Reads `table` typed and raw: at least one row, and every row re-encodes to what is on disk.
/// Returns the typed rows for further checks.
fn check<K: KeyCodec, V: ValueCodec + 'static>(
    db: &Storage,
    table: Table<K, V>,
    covered: &mut BTreeSet<u16>,
) -> Vec<(K, V)> {
    assert!(covered.insert(table.id), "{} listed twice", table.name);
    let typed = db.scan_all(table).unwrap_or_else(|e| panic!("{}: typed scan failed: {e}", table.name));
    let raw = raw_rows(db, table);
    assert!(!typed.is_empty(), "{}: the fixture has no rows", table.name);
    assert_eq!(typed.len(), raw.len(), "{}: rows typed vs raw", table.name);
    for ((key, value), (raw_key, raw_value)) in typed.iter().zip(&raw) {
        assert_eq!(key.encode(), *raw_key, "{}: a key re-encodes to other bytes", table.name);
        let encoded = value.encode_value();
        if (value as &dyn Any).is::<Counter>() {
            assert_eq!(encoded, *raw_value, "{}: a counter re-encodes to other bytes", table.name);
        } else {
            let json = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).unwrap();
            assert_eq!(
                json(&encoded),
                json(raw_value),
                "{}: a value re-encodes to other JSON ({})",
                table.name,
                String::from_utf8_lossy(raw_value)
            );
        }
    }
    typed
}

/// [`check`] for each table named, as `catalog::NAME`.
macro_rules! check_all {
    ($db:expr, $covered:expr; $($table:ident),* $(,)?) => {
        $( check(&$db, catalog::$table, &mut $covered); )*
    };
}

#[test]
fn every_table_of_the_fixture_reads_back_byte_for_byte() {
    let (_dir, db) = open_fixture();
    let mut covered = BTreeSet::new();
    check_all!(db, covered;
        COUNTERS, SERVER_SIGNING_KEYS, REMOTE_SERVER_KEYS, REMOTE_KEY_RESPONSES, SHORTIDS,
        SHORTID_STRINGS, USERS, THREEPIDS, USER_THREEPIDS, DEVICES, DEVICE_LAST_SEEN,
        ACCESS_TOKENS, REFRESH_TOKENS, LOGIN_TOKENS, PROFILES, ACCOUNT_DATA, ACCOUNT_DATA_CHANGES,
        FILTERS, ROOMS, PDUS, EVENT_META, ROOM_TIMELINE, ROOM_TOPOLOGY, STATE_GROUPS,
        CURRENT_STATE, ROOM_MEMBERSHIPS, USER_MEMBERSHIPS, TXN_IDS, RELATIONS, THREAD_ROOTS,
        ALIASES, ROOM_ALIASES, PUBLISHED_ROOMS, FORGOTTEN_ROOMS, REPORTS, RECEIPTS,
        RECEIPT_CHANGES, PRESENCE, PRESENCE_CHANGES, DEVICE_KEYS, ONE_TIME_KEYS, FALLBACK_KEYS,
        DEVICE_LIST_CHANGES, DEVICE_LIST_POSITIONS, TO_DEVICE_INBOX, TO_DEVICE_TXNS,
        FEDERATION_RECEIVED_TXNS, REMOTE_INVITES, FEDERATION_PDU_QUEUE, FEDERATION_EDU_QUEUE,
        FEDERATION_OUTGOING_TXNS, FEDERATION_BACKOFF, FEDERATION_DEVICE_STREAMS,
        REMOTE_DEVICE_LISTS_STALE,
    );
    // Tables newer than the fixture: none of their rows can be in it.
    for table in NEWER_THAN_FIXTURE {
        assert!(covered.insert(table.id), "{} is in the fixture list too", table.name);
        let prefix = table.id.to_be_bytes();
        let rows =
            db.inner.db.prefix_iterator(prefix).take_while(|r| r.as_ref().is_ok_and(|(k, _)| k.starts_with(&prefix)));
        assert_eq!(rows.count(), 0, "{}: rows in a fixture older than the table", table.name);
    }
    let all: BTreeSet<u16> = catalog::ALL.iter().map(|t| t.id).collect();
    let missing: Vec<&str> = catalog::ALL.iter().filter(|t| !covered.contains(&t.id)).map(|t| t.name).collect();
    assert_eq!(missing, Vec::<&str>::new(), "tables of the catalog this test does not read");
    assert_eq!(covered, all, "tables read that the catalog does not list");
    // Nothing outside the catalog's key ranges.
    let stray = db
        .inner
        .db
        .iterator(IteratorMode::Start)
        .map(|item| item.unwrap())
        .filter(|(k, _)| k.len() < 2 || !all.contains(&u16::from_be_bytes([k[0], k[1]])));
    assert_eq!(stray.count(), 0, "rows outside every table");
}

/// What the generator wrote, read through today's types (only `Display` of keys and fields,
/// so typed IDs read the same as strings).
#[test]
fn the_fixture_holds_what_its_generator_wrote() {
    let (_dir, db) = open_fixture();
    let mut covered = BTreeSet::new();
    let users: Vec<String> = check(&db, catalog::USERS, &mut covered).iter().map(|(u, _)| text(&u)).collect();
    for name in ["alice", "bob", "frank"] {
        assert!(users.iter().any(|u| u.starts_with(&format!("@{name}:127.0.0.1:"))), "{name} in {users:?}");
    }
    let alice = users.iter().find(|u| u.starts_with("@alice:")).unwrap().clone();
    let server = alice.split_once(':').unwrap().1.to_owned();

    // The alias points at a room that exists, and alice has joined it.
    let aliases = check(&db, catalog::ALIASES, &mut covered);
    let (alias, room) = (text(&aliases[0].0), text(&aliases[0].1));
    assert_eq!(alias, format!("#fixture:{server}"));
    let rooms: Vec<String> = check(&db, catalog::ROOMS, &mut covered).iter().map(|(r, _)| text(&r)).collect();
    assert!(rooms.contains(&room), "{room} in {rooms:?}");
    let members = check(&db, catalog::ROOM_MEMBERSHIPS, &mut covered);
    let member = |user: &str| members.iter().find(|((r, u), _)| text(&r) == room && text(&u) == user).map(|(_, m)| m);
    assert_eq!(member(&alice).map(|m| text(&m.membership)).as_deref(), Some("join"));
    assert!(
        members
            .iter()
            .any(|((r, u), m)| text(&r) == room && text(&u).starts_with("@carol:") && text(&m.membership) == "join"),
        "carol of the other server joined"
    );
    let published: Vec<String> =
        check(&db, catalog::PUBLISHED_ROOMS, &mut covered).iter().map(|(r, _)| text(&r)).collect();
    assert_eq!(published, std::slice::from_ref(&room));

    // The e-mail address the CLI added, both ways.
    let threepids = check(&db, catalog::THREEPIDS, &mut covered);
    let ((medium, address), owner) = &threepids[0];
    assert_eq!((text(&medium), text(&address)), ("email".to_owned(), "frank@example.org".to_owned()));
    assert_eq!(text(&owner), format!("@frank:{server}"));

    // alice's display name, the stream counter, the device alice renamed.
    let profiles = check(&db, catalog::PROFILES, &mut covered);
    let name = profiles.iter().find(|((u, f), _)| text(&u) == alice && text(&f) == "displayname");
    assert_eq!(name.map(|(_, v)| v.clone()), Some(serde_json::json!("Alice")));
    let counters = check(&db, catalog::COUNTERS, &mut covered);
    let stream = counters.iter().find(|(k, _)| text(&k) == "stream_position").map(|(_, Counter(n))| *n);
    assert!(stream.is_some_and(|n| n > 20), "stream_position {stream:?}");
    let devices = check(&db, catalog::DEVICES, &mut covered);
    assert!(
        devices.iter().any(|((u, _), d)| text(&u) == alice
            && d.display_name.as_ref().map(ToString::to_string).as_deref() == Some("Alice's first device")),
        "the renamed device"
    );

    // B (carol's server) went away with work for it left: queued PDUs of events of the room,
    // the transaction in flight and the backoff all name it, as did the keys fetched from it.
    let carol = members.iter().find_map(|((_, u), _)| u.as_str().starts_with("@carol:").then(|| u.clone()));
    let other = carol.map(|u| u.server_name().to_owned()).unwrap();
    let queued = check(&db, catalog::FEDERATION_PDU_QUEUE, &mut covered);
    assert!(queued.iter().all(|((dest, _), event_id)| *dest == other && event_id.as_str().starts_with('$')));
    let in_flight = check(&db, catalog::FEDERATION_OUTGOING_TXNS, &mut covered);
    assert!(in_flight.iter().any(|(dest, txn)| *dest == other && !txn.txn_id.as_str().is_empty()));
    let backoff = check(&db, catalog::FEDERATION_BACKOFF, &mut covered);
    assert!(backoff.iter().any(|(dest, b)| *dest == other && b.failures > 0));
    let keys = check(&db, catalog::REMOTE_SERVER_KEYS, &mut covered);
    assert!(keys.iter().any(|((server, id), _)| *server == other && id.starts_with("ed25519:")));
}

/// A key part or field as text, whether a `String` or a typed ID.
fn text(x: &impl std::fmt::Display) -> String {
    x.to_string()
}
