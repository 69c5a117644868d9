//! OpenID tokens (spec: Client-Server "OpenID", Server-Server "OpenID"): a short-lived token a
//! user hands to another service (a widget, Element Call's LiveKit token service), which asks
//! this server over federation whose token it is. It is good for nothing else.

use ruma::{OwnedUserId, UserId};

use super::tokens::hash;
use super::{now_ms, random_string};
use crate::error::{Error, ErrorKind, Result};
use crate::storage::Storage;
use crate::storage::catalog::OPENID_TOKENS;
use crate::storage::records::OpenIdTokenRecord;

/// How long a token is good for (Synapse's default `openid_token_lifetime`: one hour).
pub const LIFETIME_MS: u64 = 3_600_000;

/// A new token for `user_id`.
pub fn issue(db: &Storage, user_id: &UserId) -> Result<String> {
    let token = random_string(32);
    let record = OpenIdTokenRecord { user_id: user_id.to_owned(), expires_at: now_ms() + LIFETIME_MS };
    let mut batch = db.batch();
    batch.put(OPENID_TOKENS, &hash(&token), &record)?;
    batch.commit()?;
    Ok(token)
}

/// Whose token it is: 401 `M_UNKNOWN_TOKEN` if it is unknown or expired (an expired token is
/// deleted then).
pub fn user_of(db: &Storage, token: &str) -> Result<OwnedUserId> {
    let unknown = || Error::new(ErrorKind::UnknownToken { soft_logout: false }, "Unknown or expired OpenID token");
    let key = hash(token);
    let record = db.get(OPENID_TOKENS, &key)?.ok_or_else(unknown)?;
    if record.expires_at <= now_ms() {
        let mut batch = db.batch();
        batch.delete(OPENID_TOKENS, &key)?;
        batch.commit()?;
        return Err(unknown());
    }
    Ok(record.user_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_user_until_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        let db = Storage::open(dir.path(), 8).unwrap();
        let alice = ruma::user_id!("@alice:x");
        let token = issue(&db, alice).unwrap();
        assert_eq!(user_of(&db, &token).unwrap(), alice);
        assert_eq!(user_of(&db, "nope").unwrap_err().kind().errcode(), "M_UNKNOWN_TOKEN");
        // The key is the token's SHA-256 in hex, the value its owner and expiry.
        let record = db.get(OPENID_TOKENS, &hash(&token)).unwrap().unwrap();
        assert!(record.expires_at > now_ms() + LIFETIME_MS - 60_000);
        let mut batch = db.batch();
        batch
            .put(OPENID_TOKENS, &hash(&token), &OpenIdTokenRecord { user_id: alice.to_owned(), expires_at: 1 })
            .unwrap();
        batch.commit().unwrap();
        assert_eq!(user_of(&db, &token).unwrap_err().kind().errcode(), "M_UNKNOWN_TOKEN");
        assert!(db.get(OPENID_TOKENS, &hash(&token)).unwrap().is_none(), "expired tokens are deleted");
    }
}
