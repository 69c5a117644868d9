//! Accounts: creation, passwords, deactivation, third-party identifiers.
//! Synchronous RocksDB work on `&Storage`; async code calls them directly (see [`crate::storage`]).

use std::sync::{Mutex, PoisonError};

use ruma::{OwnedUserId, UserId};

use super::{devices, now_ms};
use crate::error::{Error, ErrorKind, Result};
use crate::storage::Storage;
use crate::storage::catalog::{ACCOUNT_DATA, ACCOUNT_DATA_CHANGES, PROFILES, THREEPIDS, USER_THREEPIDS, USERS};
use crate::storage::records::UserRecord;

/// Serialises check-then-create so two registrations of one name cannot both succeed.
static CREATE_LOCK: Mutex<()> = Mutex::new(());

/// What a new account starts with.
#[derive(Debug, Default, Clone)]
pub struct NewAccount {
    pub password_hash: Option<String>,
    pub is_guest: bool,
    pub admin: bool,
    /// Initial display name; the localpart when `None` (as Synapse does).
    pub displayname: Option<String>,
}

pub fn get(db: &Storage, user_id: &UserId) -> Result<Option<UserRecord>> {
    db.get(USERS, user_id)
}

/// The account, which must exist and be active (for admin tools and logins).
pub fn get_active(db: &Storage, user_id: &UserId) -> Result<UserRecord> {
    match get(db, user_id)? {
        None => Err(Error::not_found(format!("User {user_id} does not exist"))),
        Some(u) if u.deactivated => Err(Error::new(ErrorKind::UserDeactivated, "This account has been deactivated")),
        Some(u) => Ok(u),
    }
}

/// Create an account; `M_USER_IN_USE` if the ID was ever taken (deactivated IDs stay taken).
pub fn create(db: &Storage, user_id: &UserId, new: NewAccount) -> Result<()> {
    let _guard = CREATE_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    if get(db, user_id)?.is_some() {
        return Err(Error::new(ErrorKind::UserInUse, "User ID already taken."));
    }
    let record = UserRecord {
        password_hash: new.password_hash,
        created_ts: now_ms(),
        deactivated: false,
        is_guest: new.is_guest,
        admin: new.admin,
        suspended: false,
        locked: false,
    };
    let displayname = new.displayname.unwrap_or_else(|| user_id.localpart().to_owned());
    let mut batch = db.batch();
    batch.put(USERS, user_id, &record)?;
    batch.put(PROFILES, &(user_id, "displayname"), &serde_json::json!(displayname))?;
    batch.commit()
}

pub fn set_password(db: &Storage, user_id: &UserId, password_hash: String) -> Result<()> {
    let mut record = get_active(db, user_id)?;
    record.password_hash = Some(password_hash);
    let mut batch = db.batch();
    batch.put(USERS, user_id, &record)?;
    batch.commit()
}

/// Suspend or unsuspend an account (spec: "Account suspension"); returns the new state.
pub fn set_suspended(db: &Storage, user_id: &UserId, suspended: bool) -> Result<bool> {
    update_active(db, user_id, |r| r.suspended = suspended)?;
    Ok(suspended)
}

/// Lock or unlock an account (spec: "Account locking"); returns the new state. A locked
/// account's tokens stay valid, so unlocking it needs no new login.
pub fn set_locked(db: &Storage, user_id: &UserId, locked: bool) -> Result<bool> {
    update_active(db, user_id, |r| r.locked = locked)?;
    Ok(locked)
}

/// Change an active account's record with `f` and store it.
fn update_active(db: &Storage, user_id: &UserId, f: impl FnOnce(&mut UserRecord)) -> Result<()> {
    let mut record = get_active(db, user_id)?;
    f(&mut record);
    let mut batch = db.batch();
    batch.put(USERS, user_id, &record)?;
    batch.commit()
}

/// Deactivate: no more logins, every device and token gone; `erase` also drops the profile,
/// account data and third-party identifiers (spec: "Account deactivation").
pub fn deactivate(db: &Storage, user_id: &UserId, erase: bool) -> Result<()> {
    let mut record = get_active(db, user_id)?;
    record.deactivated = true;
    record.password_hash = None;
    let mut batch = db.batch();
    batch.put(USERS, user_id, &record)?;
    devices::delete_all_in(db, &mut batch, user_id, None)?;
    for ((_, medium, address), _) in db.scan_prefix(USER_THREEPIDS, user_id)? {
        batch.delete(THREEPIDS, &(&medium, &address))?;
        batch.delete(USER_THREEPIDS, &(user_id, medium, address))?;
    }
    if erase {
        for (key, _) in db.scan_prefix(PROFILES, user_id)? {
            batch.delete(PROFILES, &key)?;
        }
        for (key, _) in db.scan_prefix(ACCOUNT_DATA, user_id)? {
            batch.delete(ACCOUNT_DATA, &key)?;
        }
        for (key, _) in db.scan_prefix(ACCOUNT_DATA_CHANGES, user_id)? {
            batch.delete(ACCOUNT_DATA_CHANGES, &key)?;
        }
    }
    batch.commit()
}

/// Bind a third-party identifier (admin tools; email verification comes with the identity
/// service work). Addresses are matched case-insensitively.
pub fn add_threepid(db: &Storage, user_id: &UserId, medium: &str, address: &str) -> Result<()> {
    let address = address.to_lowercase();
    if let Some(owner) = db.get(THREEPIDS, &(medium, &address))?
        && owner != user_id
    {
        return Err(Error::new(ErrorKind::InvalidParam, "Third-party identifier already in use"));
    }
    let mut batch = db.batch();
    batch.put(THREEPIDS, &(medium, &address), &user_id.to_owned())?;
    batch.put(USER_THREEPIDS, &(user_id, medium, &address), &serde_json::json!(now_ms()))?;
    batch.commit()
}

pub fn find_by_threepid(db: &Storage, medium: &str, address: &str) -> Result<Option<OwnedUserId>> {
    db.get(THREEPIDS, &(medium, address.to_lowercase()))
}

/// `(medium, address, added_at)` of every identifier bound to the user.
pub fn threepids(db: &Storage, user_id: &UserId) -> Result<Vec<(String, String, u64)>> {
    Ok(db
        .scan_prefix(USER_THREEPIDS, user_id)?
        .into_iter()
        .map(|((_, medium, address), added)| (medium, address, added.as_u64().unwrap_or(0)))
        .collect())
}
