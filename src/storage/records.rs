//! The persisted shapes of records (values of the tables in [`super::catalog`]).
//! Fields may be added with `#[serde(default)]`; never renamed or removed.

use ruma::events::receipt::ReceiptType;
use ruma::events::room::member::MembershipState;
use ruma::presence::PresenceState;
use ruma::{OwnedDeviceId, OwnedEventId, OwnedRoomId, OwnedTransactionId, OwnedUserId, RoomVersionId};
use serde::{Deserialize, Serialize};

use super::codec::JsonValue;

/// `users` value: one local account.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UserRecord {
    /// argon2 PHC string; `None` for accounts without a password (JWT, guests).
    pub password_hash: Option<String>,
    pub created_ts: u64,
    #[serde(default)]
    pub deactivated: bool,
    #[serde(default)]
    pub is_guest: bool,
    #[serde(default)]
    pub admin: bool,
    /// Suspended by an admin: read-only (spec: "Account suspension"). Written only when set.
    #[serde(default, skip_serializing_if = "is_false")]
    pub suspended: bool,
    /// Locked by an admin: every request but logout gets `M_USER_LOCKED` (spec: "Account
    /// locking"). Written only when set.
    #[serde(default, skip_serializing_if = "is_false")]
    pub locked: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `devices` value: one device (session) of a user.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub display_name: Option<String>,
    pub created_ts: u64,
    /// Hash of the device's current access token (to revoke it with the device).
    pub access_token_hash: Option<String>,
    /// Hash of the device's current refresh token, if it has one.
    pub refresh_token_hash: Option<String>,
}

/// `device_last_seen` value. Kept apart from [`DeviceRecord`] so that the frequent last-seen
/// writes never race with token rotation on the device record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LastSeenRecord {
    pub ip: Option<String>,
    pub ts: u64,
}

/// `access_tokens` value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessTokenRecord {
    pub user_id: OwnedUserId,
    pub device_id: OwnedDeviceId,
    /// Expiry in ms since the epoch; `None` never expires.
    pub expires_at: Option<u64>,
}

/// `refresh_tokens` value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshTokenRecord {
    pub user_id: OwnedUserId,
    pub device_id: OwnedDeviceId,
}

/// `login_tokens` value: a one-time `m.login.token`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginTokenRecord {
    pub user_id: OwnedUserId,
    pub expires_at: u64,
}

/// `openid_tokens` value: whose token it is, until when.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpenIdTokenRecord {
    pub user_id: OwnedUserId,
    pub expires_at: u64,
}

/// `user_reports` value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserReportRecord {
    pub reporter: OwnedUserId,
    pub reason: String,
    pub ts: u64,
}

/// `account_data` value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountDataRecord {
    pub content: serde_json::Value,
    /// Stream position of the last change (sync reads changes after a token).
    pub stream_pos: u64,
}

/// `account_data_changes` value: which entry changed at a stream position.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountDataChange {
    /// `None` for global account data (stored as `""`).
    #[serde(with = "empty_is_none")]
    pub room_id: Option<OwnedRoomId>,
    pub data_type: String,
}

/// `server_signing_keys` value: one of our ed25519 keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SigningKeyRecord {
    /// PKCS#8 DER, unpadded standard base64.
    pub pkcs8: String,
    pub created_ts: u64,
    /// Set when the key was rotated out; listed as an old key until then.
    pub expired_ts: Option<u64>,
}

/// `remote_server_keys` value: one verified signing key of another server (spec: Server-Server
/// API, "Retrieving server keys").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteKeyRecord {
    /// The ed25519 public key, unpadded standard base64.
    pub key: String,
    /// Until when the key may be used, in ms: the response's `valid_until_ts`, at most 7 days
    /// after it was fetched (spec: room versions 5+ signing requirements).
    pub valid_until_ts: u64,
    /// For keys listed in `old_verify_keys`: when the server stopped using it, in ms.
    #[serde(default)]
    pub expired_ts: Option<u64>,
}

impl JsonValue for RemoteKeyRecord {}
impl JsonValue for UserRecord {}
impl JsonValue for DeviceRecord {}
impl JsonValue for LastSeenRecord {}
impl JsonValue for AccessTokenRecord {}
impl JsonValue for RefreshTokenRecord {}
impl JsonValue for LoginTokenRecord {}
impl JsonValue for OpenIdTokenRecord {}
impl JsonValue for UserReportRecord {}
impl JsonValue for AccountDataRecord {}
impl JsonValue for AccountDataChange {}

/// An optional room ID stored as a string, `""` for `None` (global account data).
mod empty_is_none {
    use ruma::OwnedRoomId;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(room: &Option<OwnedRoomId>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(room.as_ref().map_or("", |r| r.as_str()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OwnedRoomId>, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() {
            return Ok(None);
        }
        OwnedRoomId::try_from(s).map(Some).map_err(serde::de::Error::custom)
    }
}
impl JsonValue for SigningKeyRecord {}

/// `rooms` value: one room this server knows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomRecord {
    /// Stored as its string (`"10"`); an unknown version reads back as ruma's custom one.
    pub room_version: RoomVersionId,
    pub shortroomid: u64,
    /// State group of the room's current (resolved) state.
    pub current_state_group: u64,
    /// Largest depth of any event in the room.
    pub max_depth: u64,
    /// The room's forward extremities: `(shorteventid, event_id)` of the events nothing follows
    /// yet. Kept in the record (rewritten on every append) rather than a table of churning rows.
    #[serde(default)]
    pub forward_extremities: Vec<(u64, OwnedEventId)>,
    /// Stream position of the last change to the room's membership index (`room_memberships`);
    /// `None` in records written before it was kept (then readers scan the members).
    #[serde(default)]
    pub membership_pos: Option<u64>,
}

/// `event_meta` value: what we know about an event beyond its PDU.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventMeta {
    pub event_id: OwnedEventId,
    pub shortroomid: u64,
    /// Stream position at which it was persisted (timeline order).
    pub stream_pos: u64,
    pub depth: u64,
    /// State group of the state before the event.
    pub state_before: u64,
    /// State group after the event (differs only for accepted state events).
    pub state_after: u64,
    /// Persisted without its prev events known (federation: from `/state` or auth chains).
    #[serde(default)]
    pub outlier: bool,
    /// Failed authorization: kept for the DAG, never served or used as state.
    #[serde(default)]
    pub rejected: bool,
    /// Passed auth against its own state but not against the current state.
    #[serde(default)]
    pub soft_failed: bool,
    /// The redaction event that redacted this one, if any.
    #[serde(default)]
    pub redacted_by: Option<OwnedEventId>,
    /// `(device_id, txn_id)` of a local client send, for `unsigned.transaction_id`.
    #[serde(default)]
    pub txn: Option<(OwnedDeviceId, OwnedTransactionId)>,
    /// The room's version, so that loading the event needs no read of its room (rows written
    /// before it was recorded lack it: then the room's record says).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_version: Option<RoomVersionId>,
}

/// `state_groups` value: a state snapshot stored as a delta on its parent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StateGroupRecord {
    /// `None`: `added` is the whole state.
    pub parent: Option<u64>,
    /// `(shortstatekey, shorteventid)` pairs set by this group.
    pub added: Vec<(u64, u64)>,
    /// `shortstatekey`s removed relative to the parent.
    #[serde(default)]
    pub removed: Vec<u64>,
    /// Number of deltas between this group and its full snapshot.
    pub chain_len: u32,
}

/// `room_memberships` and `user_memberships` value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MembershipRecord {
    pub membership: MembershipState,
    pub event_id: OwnedEventId,
    pub stream_pos: u64,
}

impl JsonValue for RoomRecord {}
impl JsonValue for EventMeta {}
impl JsonValue for StateGroupRecord {}
impl JsonValue for MembershipRecord {}

/// `remote_invites` value: an invite from another server, kept as an outlier (the room's DAG is
/// not here) until the user joins or rejects it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteInviteRecord {
    pub event_id: OwnedEventId,
    pub room_version: RoomVersionId,
    /// The invite PDU, signed by the inviting server and by us.
    pub event: serde_json::Value,
    /// The stripped state events the inviting server sent (`invite_room_state`).
    pub invite_room_state: Vec<serde_json::Value>,
    pub stream_pos: u64,
    /// The out-of-band leave PDU (signed by us) once the user rejected the invite locally.
    #[serde(default)]
    pub rejection: Option<(OwnedEventId, serde_json::Value)>,
    /// A knock of the user sent with `send_knock` rather than an invite: `event` is the knock,
    /// `invite_room_state` the `knock_room_state` the resident server answered.
    #[serde(default)]
    pub knock: bool,
}

impl JsonValue for RemoteInviteRecord {}

// Receipts and presence (`src/ephemeral`).

/// `receipts` value: one user's latest receipt of one type in one thread of a room.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReceiptRecord {
    pub event_id: OwnedEventId,
    /// When the receipt was sent, ms since the epoch.
    pub ts: u64,
    /// Stream position of the receipt itself (its row in `receipt_changes`).
    pub stream_pos: u64,
    /// Stream position of the event it acknowledges (timeline order, for unread counts).
    pub event_pos: u64,
}

/// `receipt_changes` value: the `receipts` key that changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReceiptChange {
    pub receipt_type: ReceiptType,
    pub user_id: OwnedUserId,
    /// `""` unthreaded, `main`, or the thread root's event ID.
    pub thread: String,
}

/// `presence` value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PresenceRecord {
    /// `online`, `unavailable` or `offline`.
    pub presence: PresenceState,
    pub status_msg: Option<String>,
    /// Last activity, ms since the epoch (the live value is in memory while the user is active).
    pub last_active_ts: u64,
    /// Stream position of the last change (its row in `presence_changes`).
    pub stream_pos: u64,
    /// The state was chosen with `PUT /presence`: an explicit `unavailable` outlasts syncs that
    /// do not say `set_presence`.
    #[serde(default)]
    pub explicit: bool,
}

impl JsonValue for ReceiptRecord {}
impl JsonValue for ReceiptChange {}
impl JsonValue for PresenceRecord {}

// End-to-end encryption (`src/keys`).

/// `fallback_keys` value: a device's fallback key for one algorithm (spec: "End-to-End
/// Encryption", fallback keys). Claiming it sets `used`; it stays until the device replaces it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FallbackKeyRecord {
    /// The key's `key_id` (the part after `<algorithm>:`).
    pub key_id: String,
    /// The key as uploaded (a string or a signed key object).
    pub key: serde_json::Value,
    /// Whether `/keys/claim` has handed it out since it was uploaded.
    pub used: bool,
}

impl JsonValue for FallbackKeyRecord {}

// Federation sending (`src/federation/sender`).

/// `federation_outgoing_txns` value: the transaction in flight to a destination (spec: Server-Server API
/// "Transactions"), re-sent unchanged, with the same `txn_id`, until the destination accepts it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutgoingTxnRecord {
    pub txn_id: OwnedTransactionId,
    pub origin_server_ts: u64,
    /// The PDUs, as stored (federation format).
    pub pdus: Vec<serde_json::Value>,
    /// The EDUs, `{edu_type, content}`.
    pub edus: Vec<serde_json::Value>,
}

/// `federation_backoff` value: a destination that failed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackoffRecord {
    /// Consecutive failed attempts.
    pub failures: u32,
    /// Do not try before this time, ms since the epoch.
    pub retry_at: u64,
}

/// `federation_device_streams` value: the device list of a local user as other servers last
/// heard it through `m.device_list_update`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeviceStreamRecord {
    /// The `stream_id` of the last EDU sent for the user (0: none yet).
    pub stream_id: u64,
    /// `device_id` → a digest of what was announced (display name and keys).
    pub devices: std::collections::BTreeMap<OwnedDeviceId, String>,
}

impl JsonValue for OutgoingTxnRecord {}
impl JsonValue for BackoffRecord {}
impl JsonValue for DeviceStreamRecord {}

#[cfg(test)]
mod tests {
    use ruma::events::room::member::MembershipState;
    use ruma::{device_id, event_id};

    use super::{EventMeta, MembershipRecord};
    use crate::storage::codec::ValueCodec;

    #[test]
    fn typed_room_records_keep_their_json() {
        let m = MembershipRecord {
            membership: MembershipState::Join,
            event_id: event_id!("$e:x").to_owned(),
            stream_pos: 7,
        };
        let json = br#"{"membership":"join","event_id":"$e:x","stream_pos":7}"#;
        assert_eq!(m.encode_value(), json);
        let back =
            MembershipRecord::decode_value(br#"{"membership":"custom","event_id":"$e:x","stream_pos":7}"#).unwrap();
        assert_eq!(back.membership.as_str(), "custom", "an unknown membership reads back as it was written");
        let meta = EventMeta {
            event_id: event_id!("$e:x").to_owned(),
            shortroomid: 1,
            stream_pos: 2,
            depth: 3,
            state_before: 4,
            state_after: 5,
            outlier: false,
            rejected: false,
            soft_failed: false,
            redacted_by: Some(event_id!("$r:x").to_owned()),
            txn: Some((device_id!("D").to_owned(), "t1".into())),
            room_version: None,
        };
        let json = serde_json::to_value(&meta).unwrap();
        assert_eq!(json["event_id"], "$e:x");
        assert_eq!(json["redacted_by"], "$r:x");
        assert_eq!(json["txn"], serde_json::json!(["D", "t1"]));
        assert!(json.get("room_version").is_none(), "an unknown version is left out");
        let meta = EventMeta { room_version: Some(ruma::RoomVersionId::V10), ..meta };
        assert_eq!(serde_json::to_value(&meta).unwrap()["room_version"], "10", "a version is its string");
        let custom = EventMeta::decode_value(
            &serde_json::to_vec(&serde_json::json!({
                "event_id": "$e:x", "shortroomid": 1, "stream_pos": 2, "depth": 3, "state_before": 4,
                "state_after": 5, "room_version": "org.example.v1"
            }))
            .unwrap(),
        )
        .unwrap();
        let version = custom.room_version.unwrap();
        assert_eq!((version.as_str(), version.rules().is_none()), ("org.example.v1", true), "read back as written");
    }
}
