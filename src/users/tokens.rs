//! Access, refresh and login tokens: opaque random strings, stored only as SHA-256 hashes.
//! Spec: "Using access tokens", "Refreshing access tokens", "Login" (`m.login.token`).
//! Synchronous RocksDB work on `&Storage`; async code calls them directly (see [`crate::storage`]).

use ruma::{DeviceId, OwnedDeviceId, OwnedUserId, UserId};
use std::sync::{Mutex, PoisonError};

use sha2::{Digest, Sha256};

use super::{accounts, now_ms, random_string};
use crate::cache::BoundedCache;
use crate::error::{Error, ErrorKind, Result};
use crate::services::Services;
use crate::storage::Storage;
use crate::storage::catalog::{ACCESS_TOKENS, DEVICES, LOGIN_TOKENS, REFRESH_TOKENS, USERS};
use crate::storage::records::{AccessTokenRecord, DeviceRecord, LoginTokenRecord, RefreshTokenRecord};

pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Who a valid access token belongs to.
#[derive(Debug, Clone)]
pub struct Auth {
    pub user_id: OwnedUserId,
    pub device_id: OwnedDeviceId,
    pub is_guest: bool,
    /// The account is suspended: see [`Auth::ensure_not_suspended`].
    pub suspended: bool,
    /// The account is locked: only logging out is allowed (checked in `api::ruma::prepare`).
    pub locked: bool,
}

impl Auth {
    /// `M_USER_SUSPENDED` for what a suspended account may not do: send messages or state,
    /// create, join, knock on or invite to rooms, change its profile (spec: "Account
    /// suspension"; as Synapse). Reading, leaving, redacting and logging out stay allowed.
    pub fn ensure_not_suspended(&self) -> Result<()> {
        if self.suspended {
            return Err(Error::new(ErrorKind::UserSuspended, "Your account is suspended"));
        }
        Ok(())
    }
}

/// Resolve an access token: unknown or revoked → `M_UNKNOWN_TOKEN`; expired → the same with
/// `soft_logout: true` (the client may refresh). Answers come from [`AuthCache`] while no write
/// has touched the rows they were read from.
pub fn authenticate(s: &Services, token: &str) -> Result<Auth> {
    let token_hash = hash(token);
    if let Some(c) = s.auth_cache.get(&token_hash).filter(|c| c.marks == marks(s, &token_hash, &c.auth.user_id)) {
        return check_expiry(c.expires_at).map(|()| c.auth);
    }
    let unknown = || Error::new(ErrorKind::UnknownToken { soft_logout: false }, "Unknown access token");
    // Each write mark is read before the rows it covers (see `storage::marks`).
    let token_mark = s.db.mark(ACCESS_TOKENS, &token_hash);
    let record = s.db.get(ACCESS_TOKENS, &token_hash)?.ok_or_else(unknown)?;
    let owner_marks = marks(s, &token_hash, &record.user_id);
    let (auth, expires_at) = resolve(&s.db, &token_hash, record)?;
    let marks = [token_mark, owner_marks[1], owner_marks[2]];
    s.auth_cache.insert(token_hash, CachedAuth { marks, auth: auth.clone(), expires_at });
    check_expiry(expires_at).map(|()| auth)
}

/// The write marks of the token's row, its owner's account and its owner's devices.
fn marks(s: &Services, token_hash: &str, user_id: &UserId) -> [u64; 3] {
    [s.db.mark(ACCESS_TOKENS, token_hash), s.db.mark(USERS, user_id), s.db.mark(DEVICES, user_id)]
}

/// Tokens recently resolved, by hash, with the write marks of the rows they were read from
/// (the token, its owner's account and devices): a logout, a deleted device or a deactivation
/// makes the owner's entries stale, and nobody else's.
pub type AuthCache = BoundedCache<String, CachedAuth>;

#[derive(Clone)]
pub struct CachedAuth {
    marks: [u64; 3],
    auth: Auth,
    expires_at: Option<u64>,
}

fn check_expiry(expires_at: Option<u64>) -> Result<()> {
    if expires_at.is_some_and(|at| at <= now_ms()) {
        return Err(Error::new(ErrorKind::UnknownToken { soft_logout: true }, "Access token has expired"));
    }
    Ok(())
}

/// The owner and expiry of the token behind `record` (expiry not yet checked).
fn resolve(db: &Storage, token_hash: &str, record: AccessTokenRecord) -> Result<(Auth, Option<u64>)> {
    let unknown = || Error::new(ErrorKind::UnknownToken { soft_logout: false }, "Unknown access token");
    let AccessTokenRecord { user_id, device_id, expires_at } = record;
    let user = accounts::get(db, &user_id)?.ok_or_else(unknown)?;
    if user.deactivated {
        return Err(unknown());
    }
    // The device must still hold this very token: a token that lost a race with logout or
    // rotation is dead even if its row lingered.
    let device = super::devices::get(db, &user_id, &device_id)?.ok_or_else(unknown)?;
    if device.access_token_hash.as_deref() != Some(token_hash) {
        return Err(unknown());
    }
    let auth = Auth { user_id, device_id, is_guest: user.is_guest, suspended: user.suspended, locked: user.locked };
    Ok((auth, expires_at))
}

/// Token lifetimes from `[login]`.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub refreshable_ms: u64,
    /// 0: tokens without a refresh token never expire.
    pub plain_ms: u64,
}

/// What a login or registration hands to the client.
#[derive(Debug, Clone)]
pub struct Session {
    pub device_id: OwnedDeviceId,
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in_ms: Option<u64>,
}

/// Give the device a fresh token pair (creating the device if new), revoking its old tokens.
pub fn create_session(
    db: &Storage,
    user_id: &UserId,
    device_id: Option<&DeviceId>,
    display_name: Option<String>,
    want_refresh: bool,
    lifetimes: Lifetimes,
    ip: Option<String>,
) -> Result<Session> {
    let device_id: OwnedDeviceId = match device_id {
        Some(d) => d.to_owned(),
        None => random_string(10).to_uppercase().as_str().into(),
    };
    let now = now_ms();
    let existing = super::devices::get(db, user_id, &device_id)?;
    let mut record = existing.clone().unwrap_or(DeviceRecord { created_ts: now, ..Default::default() });
    if existing.is_none() || display_name.is_some() {
        record.display_name = display_name.or(record.display_name);
    }
    let mut batch = db.batch();
    // A new device, or a login renaming an existing one: `/keys/query` answers differently.
    let renamed = existing.as_ref().is_some_and(|e| e.display_name != record.display_name);
    if existing.is_none() || renamed {
        crate::keys::changes::record_in(db, &mut batch, user_id)?;
    }
    super::devices::touch_in(&mut batch, user_id, &device_id, ip, now)?;
    let session = issue_tokens(&mut batch, user_id, &device_id, &mut record, want_refresh, lifetimes, now)?;
    batch.commit()?;
    Ok(session)
}

/// Revoke the device's tokens and write a new pair into `batch` (the device record included).
fn issue_tokens(
    batch: &mut crate::storage::Batch<'_>,
    user_id: &UserId,
    device_id: &DeviceId,
    record: &mut DeviceRecord,
    want_refresh: bool,
    lifetimes: Lifetimes,
    now: u64,
) -> Result<Session> {
    if let Some(old) = record.access_token_hash.take() {
        batch.delete(ACCESS_TOKENS, &old)?;
    }
    if let Some(old) = record.refresh_token_hash.take() {
        batch.delete(REFRESH_TOKENS, &old)?;
    }
    let lifetime =
        if want_refresh { Some(lifetimes.refreshable_ms) } else { Some(lifetimes.plain_ms).filter(|&ms| ms > 0) };
    let access_token = format!("trl_{}", random_string(40));
    let access = AccessTokenRecord {
        user_id: user_id.to_owned(),
        device_id: device_id.to_owned(),
        expires_at: lifetime.map(|ms| now + ms),
    };
    record.access_token_hash = Some(hash(&access_token));
    batch.put(ACCESS_TOKENS, &hash(&access_token), &access)?;
    let refresh_token = if want_refresh {
        let token = format!("trr_{}", random_string(40));
        record.refresh_token_hash = Some(hash(&token));
        let r = RefreshTokenRecord { user_id: user_id.to_owned(), device_id: device_id.to_owned() };
        batch.put(REFRESH_TOKENS, &hash(&token), &r)?;
        Some(token)
    } else {
        None
    };
    batch.put(DEVICES, &(user_id, device_id), record)?;
    Ok(Session { device_id: device_id.to_owned(), access_token, refresh_token, expires_in_ms: lifetime })
}

/// Exchange a refresh token for a new pair; the old access and refresh tokens stop working.
pub fn refresh(db: &Storage, refresh_token: &str, lifetimes: Lifetimes) -> Result<Session> {
    let unknown = || Error::new(ErrorKind::UnknownToken { soft_logout: false }, "Unknown refresh token");
    let RefreshTokenRecord { user_id, device_id } =
        db.get(REFRESH_TOKENS, &hash(refresh_token))?.ok_or_else(unknown)?;
    let mut record = super::devices::get(db, &user_id, &device_id)?.ok_or_else(unknown)?;
    let mut batch = db.batch();
    let session = issue_tokens(&mut batch, &user_id, &device_id, &mut record, true, lifetimes, now_ms())?;
    batch.commit()?;
    Ok(session)
}

/// A one-time `m.login.token` for the user.
pub fn create_login_token(db: &Storage, user_id: &UserId, lifetime_ms: u64) -> Result<String> {
    let token = random_string(32);
    let record = LoginTokenRecord { user_id: user_id.to_owned(), expires_at: now_ms() + lifetime_ms };
    let mut batch = db.batch();
    batch.put(LOGIN_TOKENS, &hash(&token), &record)?;
    batch.commit()?;
    Ok(token)
}

/// Serialises consumption so a login token is used at most once.
static CONSUME_LOCK: Mutex<()> = Mutex::new(());

/// Use up a login token: `M_FORBIDDEN` if unknown, used or expired.
pub fn consume_login_token(db: &Storage, token: &str) -> Result<OwnedUserId> {
    let key = hash(token);
    let invalid = || Error::forbidden("Invalid login token");
    let _guard = CONSUME_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    let record = db.get(LOGIN_TOKENS, &key)?.ok_or_else(invalid)?;
    let mut batch = db.batch();
    batch.delete(LOGIN_TOKENS, &key)?;
    batch.commit()?;
    if record.expires_at <= now_ms() {
        return Err(invalid());
    }
    Ok(record.user_id)
}
