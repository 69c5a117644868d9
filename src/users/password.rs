//! Password hashing (argon2id, PHC strings) and the configurable password policy.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;

use crate::config::PasswordPolicySection;
use crate::error::{Error, ErrorKind, Result};

/// At most this many argon2 computations at once (each takes 19 MiB and a core for ~50 ms).
static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// Hash on the blocking pool: argon2 is deliberately slow.
pub async fn hash(password: String) -> Result<String> {
    let _permit = HASHING.acquire().await.map_err(|e| Error::internal(format!("hash permit: {e}")))?;
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt).map_err(|e| Error::internal(format!("salt: {e}")))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::internal(format!("argon2: {e}")))
    })
    .await
    .map_err(|e| Error::internal(format!("hash task: {e}")))?
}

/// Verify on the blocking pool; a malformed stored hash counts as a mismatch.
pub async fn verify(password: String, phc: String) -> bool {
    let Ok(_permit) = HASHING.acquire().await else { return false };
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
    })
    .await
    .unwrap_or(false)
}

/// `M_WEAK_PASSWORD` unless the password meets the policy.
pub fn check_policy(password: &str, policy: &PasswordPolicySection) -> Result<()> {
    let weak = |why: &str| Err(Error::new(ErrorKind::WeakPassword, why));
    if password.chars().count() < policy.minimum_length {
        return weak(&format!("Password must be at least {} characters", policy.minimum_length));
    }
    if policy.require_digit && !password.chars().any(|c| c.is_ascii_digit()) {
        return weak("Password must contain a digit");
    }
    if policy.require_symbol && !password.chars().any(|c| !c.is_alphanumeric()) {
        return weak("Password must contain a symbol");
    }
    if policy.require_uppercase && !password.chars().any(char::is_uppercase) {
        return weak("Password must contain an uppercase letter");
    }
    if policy.require_lowercase && !password.chars().any(char::is_lowercase) {
        return weak("Password must contain a lowercase letter");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify() {
        let h = hash("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse".into(), h.clone()).await);
        assert!(!verify("wrong horse".into(), h).await);
        assert!(!verify("x".into(), "not a hash".into()).await);
    }

    #[test]
    fn policy() {
        let p = PasswordPolicySection {
            minimum_length: 8,
            require_digit: true,
            require_symbol: true,
            require_uppercase: true,
            require_lowercase: true,
        };
        assert!(check_policy("Sh0rt!", &p).is_err());
        assert!(check_policy("NoDigits!!", &p).is_err());
        assert!(check_policy("NoSymbol123", &p).is_err());
        assert!(check_policy("nouppercase1!", &p).is_err());
        assert!(check_policy("NOLOWERCASE1!", &p).is_err());
        assert!(check_policy("Good1Pass!", &p).is_ok());
    }
}
