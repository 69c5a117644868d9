//! The persisted shapes of records (values of the tables in [`super::catalog`]).
//! Fields may be added with `#[serde(default)]`; never renamed or removed.

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
    pub user_id: String,
    pub device_id: String,
    /// Expiry in ms since the epoch; `None` never expires.
    pub expires_at: Option<u64>,
}

/// `refresh_tokens` value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshTokenRecord {
    pub user_id: String,
    pub device_id: String,
}

/// `login_tokens` value: a one-time `m.login.token`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginTokenRecord {
    pub user_id: String,
    pub expires_at: u64,
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
    /// Empty for global account data.
    pub room_id: String,
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

impl JsonValue for UserRecord {}
impl JsonValue for DeviceRecord {}
impl JsonValue for LastSeenRecord {}
impl JsonValue for AccessTokenRecord {}
impl JsonValue for RefreshTokenRecord {}
impl JsonValue for LoginTokenRecord {}
impl JsonValue for AccountDataRecord {}
impl JsonValue for AccountDataChange {}
impl JsonValue for SigningKeyRecord {}
