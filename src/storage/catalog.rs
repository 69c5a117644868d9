//! The catalog: every table with its id, key and value layout. All tables share RocksDB's default
//! column family; a table is the key range starting with its `id` (2 bytes, big-endian).
//! `docs/storage.md` repeats this list; keep both in step.
//!
//! Key notation: `a | b` is the tuple codec of [`super::codec`] (strings `00 00`-terminated,
//! integers 8-byte big-endian). Hashes are lowercase hex SHA-256 of the secret.
//!
//! Tables declared `.marked()` keep an in-memory write mark per entity, the key's first part
//! (`(a | b) | c` has the entity `a | b`), so readers can tell an entity is unchanged without
//! a scan ([`super::marks`]).

use std::marker::PhantomData;

use ruma::events::receipt::ReceiptType;
use ruma::{
    OwnedDeviceId, OwnedEventId, OwnedRoomAliasId, OwnedRoomId, OwnedServerName, OwnedTransactionId, OwnedUserId,
};

use super::codec::Counter;
use super::records::*;

/// A typed handle on one table: a key range of the database tagged by the table's `id`.
pub struct Table<K, V> {
    pub name: &'static str,
    /// Stored as the first two bytes (big-endian) of every key; never reuse or renumber one.
    pub id: u16,
    /// Whether committed writes leave a per-entity write mark (keyed by the key's
    /// [`super::codec::KeyCodec::Head`]; see [`super::Storage::mark`]).
    pub marked: bool,
    _types: PhantomData<fn() -> (K, V)>,
}

/// A table's name and id, without its types.
#[derive(Debug, Clone, Copy)]
pub struct Tag {
    pub name: &'static str,
    pub id: u16,
}

impl<K, V> Clone for Table<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K, V> Copy for Table<K, V> {}

impl<K, V> Table<K, V> {
    const fn new(id: u16, name: &'static str) -> Self {
        Table { name, id, marked: false, _types: PhantomData }
    }

    /// The table with per-entity write marks.
    const fn marked(self) -> Self {
        Table { marked: true, ..self }
    }

    pub const fn tag(&self) -> Tag {
        Tag { name: self.name, id: self.id }
    }
}

/// `name` → u64. Merged with `max`, so concurrent writers never move a counter back.
/// Keys: `stream_position`, `shortid`, `state_group`, `federation_outbox` (the stream position up
/// to which local presence and device-list changes were queued for other servers).
pub const COUNTERS: Table<String, Counter> = Table::new(1, "counters");
/// `key_id` (e.g. `ed25519:a1b2c3`) → [`SigningKeyRecord`].
pub const SERVER_SIGNING_KEYS: Table<String, SigningKeyRecord> = Table::new(2, "server_signing_keys");
/// `server_name | key_id` → [`RemoteKeyRecord`]: verified signing keys of other servers
/// (`OwnedServerName | String`; the key ID, e.g. `ed25519:abc`, stays a string).
pub const REMOTE_SERVER_KEYS: Table<(OwnedServerName, String), RemoteKeyRecord> = Table::new(3, "remote_server_keys");
/// `server_name` → the server's latest verified `/_matrix/key/v2/server` response, as it signed
/// it (other signatures removed): what the key notary hands out. Keyed by `OwnedServerName`.
pub const REMOTE_KEY_RESPONSES: Table<OwnedServerName, serde_json::Value> = Table::new(4, "remote_key_responses");
/// Long identifier (room id, event id, `type|state_key`) → short numeric id.
pub const SHORTIDS: Table<String, Counter> = Table::new(5, "shortids");
/// Short numeric id → long identifier.
pub const SHORTID_STRINGS: Table<u64, String> = Table::new(6, "shortid_strings");
/// `user_id` → [`UserRecord`].
pub const USERS: Table<OwnedUserId, UserRecord> = Table::new(7, "users").marked();
/// `medium | address` (address lowercased) → `user_id`.
pub const THREEPIDS: Table<(String, String), OwnedUserId> = Table::new(8, "threepids");
/// `user_id | medium | address` → `added_ts` (the reverse of `threepids`).
pub const USER_THREEPIDS: Table<(OwnedUserId, String, String), serde_json::Value> = Table::new(9, "user_threepids");
/// `user_id | device_id` → [`DeviceRecord`].
pub const DEVICES: Table<(OwnedUserId, OwnedDeviceId), DeviceRecord> = Table::new(10, "devices").marked();
/// `user_id | device_id` → [`LastSeenRecord`] (written as the device makes requests).
pub const DEVICE_LAST_SEEN: Table<(OwnedUserId, OwnedDeviceId), LastSeenRecord> = Table::new(11, "device_last_seen");
/// `sha256(access_token)` → [`AccessTokenRecord`].
pub const ACCESS_TOKENS: Table<String, AccessTokenRecord> = Table::new(12, "access_tokens").marked();
/// `sha256(refresh_token)` → [`RefreshTokenRecord`].
pub const REFRESH_TOKENS: Table<String, RefreshTokenRecord> = Table::new(13, "refresh_tokens");
/// `sha256(login_token)` → [`LoginTokenRecord`].
pub const LOGIN_TOKENS: Table<String, LoginTokenRecord> = Table::new(14, "login_tokens");
/// `user_id | field` → JSON value (`displayname`, `avatar_url`, extended fields like `m.tz`).
pub const PROFILES: Table<(OwnedUserId, String), serde_json::Value> = Table::new(15, "profiles");
/// `user_id | room_id | type` → [`AccountDataRecord`] (`room_id` is `""`, `None` in code, for
/// global data).
pub const ACCOUNT_DATA: Table<(OwnedUserId, Option<OwnedRoomId>, String), AccountDataRecord> =
    Table::new(16, "account_data").marked();
/// `user_id | stream_pos` → [`AccountDataChange`]: the index `/sync` reads after a token.
pub const ACCOUNT_DATA_CHANGES: Table<(OwnedUserId, u64), AccountDataChange> =
    Table::new(17, "account_data_changes").marked();
/// `user_id | filter_id` → filter JSON.
pub const FILTERS: Table<(OwnedUserId, String), serde_json::Value> = Table::new(18, "filters");

/// `room_id` → [`RoomRecord`].
pub const ROOMS: Table<OwnedRoomId, RoomRecord> = Table::new(19, "rooms");
/// `shorteventid` → the PDU as canonical JSON (federation format, without `event_id` for room
/// versions 3+). Replaced by its redacted form when redacted; otherwise immutable.
pub const PDUS: Table<u64, serde_json::Value> = Table::new(20, "pdus");
/// `shorteventid` → [`EventMeta`].
pub const EVENT_META: Table<u64, EventMeta> = Table::new(21, "event_meta");
/// `shortroomid | stream_pos` → `shorteventid`: the timeline in stream order.
pub const ROOM_TIMELINE: Table<(u64, u64), Counter> = Table::new(22, "room_timeline").marked();
/// `shortroomid | depth | stream_pos` → `shorteventid`: the timeline in topological order.
pub const ROOM_TOPOLOGY: Table<(u64, u64, u64), Counter> = Table::new(23, "room_topology");
/// `state_group` → [`StateGroupRecord`]: state snapshots as deltas on a parent.
pub const STATE_GROUPS: Table<u64, StateGroupRecord> = Table::new(24, "state_groups");
/// `shortroomid | shortstatekey` → `shorteventid`: the current state index.
pub const CURRENT_STATE: Table<(u64, u64), Counter> = Table::new(25, "current_state");
/// `room_id | user_id` → [`MembershipRecord`]: room → members.
pub const ROOM_MEMBERSHIPS: Table<(OwnedRoomId, OwnedUserId), MembershipRecord> = Table::new(26, "room_memberships");
/// `user_id | room_id` → [`MembershipRecord`]: user → rooms.
pub const USER_MEMBERSHIPS: Table<(OwnedUserId, OwnedRoomId), MembershipRecord> =
    Table::new(27, "user_memberships").marked();
/// `user_id | device_id | scope/txn_id` → `event_id`: idempotent `/send` and `/redact`
/// (`scope` is the endpoint and its path arguments, as Synapse keys on the request path).
pub const TXN_IDS: Table<(OwnedUserId, OwnedDeviceId, String), OwnedEventId> = Table::new(28, "txn_ids");
/// `parent shorteventid | child shorteventid` → `[rel_type, event_type]` (`m.relates_to`).
pub const RELATIONS: Table<(u64, u64), serde_json::Value> = Table::new(29, "relations").marked();

/// `shortroomid | root shorteventid` → stream position of the thread's latest reply.
pub const THREAD_ROOTS: Table<(u64, u64), Counter> = Table::new(30, "thread_roots").marked();
/// `#alias:server` → `room_id` (local aliases).
pub const ALIASES: Table<OwnedRoomAliasId, OwnedRoomId> = Table::new(31, "aliases");
/// `room_id | #alias:server` → `user_id` of whoever created the alias.
pub const ROOM_ALIASES: Table<(OwnedRoomId, OwnedRoomAliasId), OwnedUserId> = Table::new(32, "room_aliases");
/// `room_id` → `true`: rooms published in the public room directory.
pub const PUBLISHED_ROOMS: Table<OwnedRoomId, serde_json::Value> = Table::new(33, "published_rooms");
/// `user_id | room_id` → `true`: rooms the user forgot.
pub const FORGOTTEN_ROOMS: Table<(OwnedUserId, OwnedRoomId), serde_json::Value> = Table::new(34, "forgotten_rooms");
/// `room_id | report_id` → `{reporter, room_id, event_id?, reason, ts}`: content reports
/// (`report_id` is a stream position, so a room's reports scan in the order they were made).
pub const REPORTS: Table<(OwnedRoomId, u64), serde_json::Value> = Table::new(35, "reports");

/// `(room_id | receipt_type) | (user_id | thread)` → [`ReceiptRecord`]: each user's latest
/// `m.read` / `m.read.private` receipt per thread (`""` unthreaded, `main`, or the thread root's
/// event ID) (spec: "Receipts").
pub const RECEIPTS: Table<ReceiptKey, ReceiptRecord> = Table::new(36, "receipts");
/// The key of [`RECEIPTS`].
pub type ReceiptKey = ((OwnedRoomId, ReceiptType), (OwnedUserId, String));
/// `room_id | stream_pos` → [`ReceiptChange`]: which receipt changed at that position (one row per
/// receipt: an update deletes the row at its previous position), for "changed since N".
pub const RECEIPT_CHANGES: Table<(OwnedRoomId, u64), ReceiptChange> = Table::new(37, "receipt_changes").marked();
/// `user_id` → [`PresenceRecord`]: the user's presence (spec: "Presence").
pub const PRESENCE: Table<OwnedUserId, PresenceRecord> = Table::new(38, "presence");
/// `stream_pos` → `user_id` whose presence changed then (one row per user: a change deletes the
/// row at the previous position), for "changed since N". Typed `() | stream_pos` (same bytes):
/// the whole table is one entity for its write mark.
pub const PRESENCE_CHANGES: Table<((), u64), OwnedUserId> = Table::new(39, "presence_changes").marked();

/// `user_id | device_id` → the device's `device_keys` object exactly as uploaded
/// (`POST /keys/upload`; spec: "End-to-End Encryption", "Uploading keys").
pub const DEVICE_KEYS: Table<(OwnedUserId, OwnedDeviceId), serde_json::Value> = Table::new(40, "device_keys");
/// `(user_id | device_id) | (algorithm | stream_pos | key_id)`: a key of `one_time_keys`.
pub type OneTimeKeyKey = ((OwnedUserId, OwnedDeviceId), (String, u64, String));
/// [`OneTimeKeyKey`] → the one-time key (a string or a signed key object). The upload's stream
/// position orders claims oldest first.
pub const ONE_TIME_KEYS: Table<OneTimeKeyKey, serde_json::Value> = Table::new(41, "one_time_keys").marked();
/// `(user_id | device_id) | algorithm` → [`FallbackKeyRecord`]: at most one per algorithm.
pub const FALLBACK_KEYS: Table<((OwnedUserId, OwnedDeviceId), String), FallbackKeyRecord> =
    Table::new(42, "fallback_keys").marked();
/// `stream_pos` → `user_id` whose device list changed then (one row per user: a change deletes
/// the row at the user's previous position in `device_list_positions`). Typed `() | stream_pos`
/// like `presence_changes`.
pub const DEVICE_LIST_CHANGES: Table<((), u64), OwnedUserId> = Table::new(43, "device_list_changes").marked();
/// `user_id` → stream position of the last change to their device list.
pub const DEVICE_LIST_POSITIONS: Table<OwnedUserId, Counter> = Table::new(44, "device_list_positions");
/// `(user_id | device_id) | stream_pos` → `{type, sender, content}`: send-to-device messages
/// waiting for the device (deleted once `/sync` acknowledges them).
pub const TO_DEVICE_INBOX: Table<((OwnedUserId, OwnedDeviceId), u64), serde_json::Value> =
    Table::new(45, "to_device_inbox").marked();
/// `user_id | device_id | txn_id` → stream position of the sender's `PUT /sendToDevice` with
/// that transaction ID (idempotency).
pub const TO_DEVICE_TXNS: Table<(OwnedUserId, OwnedDeviceId, OwnedTransactionId), Counter> =
    Table::new(46, "to_device_txns");
/// `user_id | room_id` → [`RemoteInviteRecord`]: an invite of a local user received over
/// federation (`PUT /_matrix/federation/v2/invite`), with the stripped state the inviting
/// server sent; the room itself may be unknown here.
pub const REMOTE_INVITES: Table<(OwnedUserId, OwnedRoomId), RemoteInviteRecord> = Table::new(48, "remote_invites");

/// `origin | txn_id` → `{"response": {"pdus": …}, "received_ts": ms}`: the answer to a
/// processed `PUT /_matrix/federation/v1/send/{txnId}`, returned again when the origin
/// retries the same transaction (spec: Server-Server API, "Transactions"). Keyed
/// `OwnedServerName | OwnedTransactionId`.
pub const FEDERATION_RECEIVED_TXNS: Table<(OwnedServerName, OwnedTransactionId), serde_json::Value> =
    Table::new(47, "federation_received_txns");

/// `destination | stream_pos` → `event_id` (`OwnedServerName | u64` → `OwnedEventId`, a JSON
/// string): local PDUs waiting to be sent to a server, in stream order (spec: Server-Server API
/// "Transactions").
pub const FEDERATION_PDU_QUEUE: Table<(OwnedServerName, u64), OwnedEventId> = Table::new(49, "federation_pdu_queue");
/// `destination | seq` → the EDU (`{edu_type, content}`) waiting to be sent; `seq` orders the
/// queue of one destination. Keyed `OwnedServerName | u64`.
pub const FEDERATION_EDU_QUEUE: Table<(OwnedServerName, u64), serde_json::Value> =
    Table::new(50, "federation_edu_queue");
/// `destination` → [`OutgoingTxnRecord`]: the one transaction in flight to that server, re-sent
/// with the same `txn_id` until it is accepted. Keyed by `OwnedServerName`.
pub const FEDERATION_OUTGOING_TXNS: Table<OwnedServerName, OutgoingTxnRecord> =
    Table::new(51, "federation_outgoing_txns");
/// `destination` (`OwnedServerName`) → [`BackoffRecord`]: consecutive failures and when to try
/// again.
pub const FEDERATION_BACKOFF: Table<OwnedServerName, BackoffRecord> = Table::new(52, "federation_backoff");
/// `user_id` (local) → [`DeviceStreamRecord`]: what the last `m.device_list_update` EDUs told
/// other servers about the user's devices.
pub const FEDERATION_DEVICE_STREAMS: Table<OwnedUserId, DeviceStreamRecord> =
    Table::new(53, "federation_device_streams");
/// `user_id` (remote) → `true`: our copy of the user's device list is out of date (an
/// `m.device_list_update` or `m.signing_key_update` arrived); cleared by whoever refetches it.
pub const REMOTE_DEVICE_LISTS_STALE: Table<OwnedUserId, serde_json::Value> =
    Table::new(54, "remote_device_lists_stale");

// Tables added after the storage fixture was written (`fixture_tests::NEWER_THAN_FIXTURE`).

/// `sha256(openid_token)` → [`OpenIdTokenRecord`].
pub const OPENID_TOKENS: Table<String, OpenIdTokenRecord> = Table::new(55, "openid_tokens");
/// `user_id | report_id` → [`UserReportRecord`]: reports of a user (`POST
/// /users/{userId}/report`); `report_id` is a stream position.
pub const USER_REPORTS: Table<(OwnedUserId, u64), UserReportRecord> = Table::new(56, "user_reports");

/// Every table.
pub const ALL: &[Tag] = &[
    COUNTERS.tag(),
    SERVER_SIGNING_KEYS.tag(),
    REMOTE_SERVER_KEYS.tag(),
    REMOTE_KEY_RESPONSES.tag(),
    SHORTIDS.tag(),
    SHORTID_STRINGS.tag(),
    USERS.tag(),
    THREEPIDS.tag(),
    USER_THREEPIDS.tag(),
    DEVICES.tag(),
    DEVICE_LAST_SEEN.tag(),
    ACCESS_TOKENS.tag(),
    REFRESH_TOKENS.tag(),
    LOGIN_TOKENS.tag(),
    PROFILES.tag(),
    ACCOUNT_DATA.tag(),
    ACCOUNT_DATA_CHANGES.tag(),
    FILTERS.tag(),
    ROOMS.tag(),
    PDUS.tag(),
    EVENT_META.tag(),
    ROOM_TIMELINE.tag(),
    ROOM_TOPOLOGY.tag(),
    STATE_GROUPS.tag(),
    CURRENT_STATE.tag(),
    ROOM_MEMBERSHIPS.tag(),
    USER_MEMBERSHIPS.tag(),
    TXN_IDS.tag(),
    RELATIONS.tag(),
    THREAD_ROOTS.tag(),
    ALIASES.tag(),
    ROOM_ALIASES.tag(),
    PUBLISHED_ROOMS.tag(),
    FORGOTTEN_ROOMS.tag(),
    REPORTS.tag(),
    RECEIPTS.tag(),
    RECEIPT_CHANGES.tag(),
    PRESENCE.tag(),
    PRESENCE_CHANGES.tag(),
    DEVICE_KEYS.tag(),
    ONE_TIME_KEYS.tag(),
    FALLBACK_KEYS.tag(),
    DEVICE_LIST_CHANGES.tag(),
    DEVICE_LIST_POSITIONS.tag(),
    TO_DEVICE_INBOX.tag(),
    TO_DEVICE_TXNS.tag(),
    FEDERATION_RECEIVED_TXNS.tag(),
    REMOTE_INVITES.tag(),
    FEDERATION_PDU_QUEUE.tag(),
    FEDERATION_EDU_QUEUE.tag(),
    FEDERATION_OUTGOING_TXNS.tag(),
    FEDERATION_BACKOFF.tag(),
    FEDERATION_DEVICE_STREAMS.tag(),
    REMOTE_DEVICE_LISTS_STALE.tag(),
    OPENID_TOKENS.tag(),
    USER_REPORTS.tag(),
];

#[cfg(test)]
mod tests {
    #[test]
    fn table_ids_and_names_are_unique() {
        let mut ids: Vec<u16> = super::ALL.iter().map(|t| t.id).collect();
        let mut names: Vec<&str> = super::ALL.iter().map(|t| t.name).collect();
        ids.sort_unstable();
        ids.dedup();
        names.sort_unstable();
        names.dedup();
        assert_eq!(ids.len(), super::ALL.len());
        assert_eq!(names.len(), super::ALL.len());
    }
}
