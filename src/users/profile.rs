//! Profiles: `displayname`, `avatar_url` and extended fields such as `m.tz` (spec: "Profiles",
//! v1.16 extended profiles).
//! Synchronous RocksDB work on `&Storage`; async code calls them directly (see [`crate::storage`]).

use ruma::UserId;
use serde_json::{Map, Value};

use super::accounts;
use crate::error::{Error, ErrorKind, Result};
use crate::storage::Storage;
use crate::storage::catalog::PROFILES;

/// Largest key, in bytes (spec: `M_KEY_TOO_LARGE`).
pub const MAX_KEY_BYTES: usize = 255;
/// Largest whole profile as JSON, in bytes (spec: `M_PROFILE_TOO_LARGE`).
pub const MAX_PROFILE_BYTES: usize = 64 * 1024;

/// The whole profile, or `M_NOT_FOUND` for unknown users.
pub fn get_all(db: &Storage, user_id: &UserId) -> Result<Map<String, Value>> {
    if accounts::get(db, user_id)?.is_none() {
        return Err(Error::not_found("Profile was not found"));
    }
    Ok(db.scan_prefix(PROFILES, user_id)?.into_iter().map(|((_, k), v)| (k, v)).collect())
}

/// One field, or `M_NOT_FOUND` if the user or the field does not exist.
pub fn get_field(db: &Storage, user_id: &UserId, field: &str) -> Result<Value> {
    if accounts::get(db, user_id)?.is_none() {
        return Err(Error::not_found("Profile was not found"));
    }
    db.get(PROFILES, &(user_id, field))?.ok_or_else(|| Error::not_found(format!("The user has no {field}")))
}

/// Set one field, enforcing the spec's key and size limits and the types of the classic fields.
pub fn set_field(db: &Storage, user_id: &UserId, field: &str, value: Value) -> Result<()> {
    if field.len() > MAX_KEY_BYTES {
        return Err(Error::new(ErrorKind::KeyTooLarge, "Profile key exceeds 255 bytes"));
    }
    if field.is_empty() {
        return Err(Error::invalid_param("Invalid profile key."));
    }
    if matches!(field, "displayname" | "avatar_url") && !(value.is_string() || value.is_null()) {
        return Err(Error::bad_json(format!("{field} must be a string")));
    }
    let mut profile = get_all(db, user_id)?;
    let key = (user_id, field);
    let mut batch = db.batch();
    if value.is_null() {
        profile.remove(field);
        batch.delete(PROFILES, &key)?;
    } else {
        profile.insert(field.to_owned(), value.clone());
        batch.put(PROFILES, &key, &value)?;
    }
    if serde_json::to_vec(&profile).map_or(usize::MAX, |v| v.len()) > MAX_PROFILE_BYTES {
        return Err(Error::new(ErrorKind::ProfileTooLarge, "Profile would exceed 64 KiB"));
    }
    batch.commit()
}

pub fn delete_field(db: &Storage, user_id: &UserId, field: &str) -> Result<()> {
    set_field(db, user_id, field, Value::Null)
}
