//! Password hashing (argon2id, PHC strings) and the configurable password policy.

use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Argon2, Block, Params};
use rand::RngCore;

use crate::config::PasswordPolicySection;
use crate::error::{Error, ErrorKind, Result};

/// At most this many argon2 computations at once (each takes 19 MiB and a core for ~50 ms).
static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// Hash on the blocking pool: argon2 is deliberately slow.
pub async fn hash(password: String) -> Result<String> {
    let _permit = HASHING.acquire().await.map_err(|e| Error::internal(format!("hash permit: {e}")))?;
    tokio::task::spawn_blocking(move || {
        let mut raw_salt = [0u8; 16];
        rand::rng().fill_bytes(&mut raw_salt);
        let salt = SaltString::encode_b64(&raw_salt).map_err(|e| Error::internal(format!("salt: {e}")))?;
        let argon2 = Argon2::default();
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        compute(&argon2, password.as_bytes(), &raw_salt, &mut out)
            .map_err(|e| Error::internal(format!("argon2: {e}")))?;
        let output = Output::new(&out).map_err(|e| Error::internal(format!("argon2 output: {e}")))?;
        let phc = PasswordHash {
            algorithm: argon2::Algorithm::Argon2id.ident(),
            version: Some(argon2::Version::V0x13.into()),
            params: argon2.params().try_into().map_err(|e| Error::internal(format!("argon2 params: {e}")))?,
            salt: Some(salt.as_salt()),
            hash: Some(output),
        };
        Ok(phc.to_string())
    })
    .await
    .map_err(|e| Error::internal(format!("hash task: {e}")))?
}

/// Verify on the blocking pool; a malformed stored hash counts as a mismatch.
pub async fn verify(password: String, phc: String) -> bool {
    let Ok(_permit) = HASHING.acquire().await else { return false };
    tokio::task::spawn_blocking(move || verify_now(&password, &phc)).await.unwrap_or(false)
}

fn verify_now(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else { return false };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else { return false };
    let Ok(algorithm) = argon2::Algorithm::try_from(parsed.algorithm) else { return false };
    let version = parsed.version.and_then(|v| argon2::Version::try_from(v).ok()).unwrap_or_default();
    let Ok(params) = Params::try_from(&parsed) else { return false };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else { return false };
    let mut out = vec![0u8; expected.len()];
    let argon2 = Argon2::new(algorithm, version, params);
    if compute(&argon2, password.as_bytes(), salt, &mut out).is_err() {
        return false;
    }
    Output::new(&out).is_ok_and(|o| o == expected)
}

/// argon2 over memory mapped for this one computation and unmapped right after, so its 19 MiB
/// go straight back to the OS instead of staying in the allocator's caches.
fn compute(argon2: &Argon2<'_>, password: &[u8], salt: &[u8], out: &mut [u8]) -> argon2::Result<()> {
    match Blocks::map(argon2.params().block_count()) {
        Some(mut blocks) => argon2.hash_password_into_with_memory(password, salt, out, blocks.as_mut()),
        None => argon2.hash_password_into(password, salt, out),
    }
}

/// Anonymous memory for argon2's blocks (`mmap`/`munmap`): with `main.rs`'s `limit_memory`,
/// the only `unsafe` code (`[lints.rust] unsafe_code = "deny"` in `Cargo.toml`).
struct Blocks {
    ptr: *mut Block,
    count: usize,
}

#[allow(unsafe_code)]
impl Blocks {
    fn map(count: usize) -> Option<Blocks> {
        let len = count.checked_mul(size_of::<Block>())?;
        // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        (ptr != libc::MAP_FAILED).then_some(Blocks { ptr: ptr.cast(), count })
    }

    fn as_mut(&mut self) -> &mut [Block] {
        // SAFETY: the mapping is page-aligned (Block needs 64), `count` blocks long, zero-filled
        // (a valid Block is any bit pattern of its u64s) and exclusively ours until drop.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.count) }
    }
}

#[allow(unsafe_code)]
impl Drop for Blocks {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `map`; no reference to it outlives `self`.
        unsafe { libc::munmap(self.ptr.cast(), self.count * size_of::<Block>()) };
    }
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

    #[tokio::test]
    async fn hashes_match_the_argon2_crate() {
        use argon2::password_hash::PasswordHasher;
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let theirs = Argon2::default().hash_password(b"correct horse", &salt).unwrap().to_string();
        assert!(verify("correct horse".into(), theirs).await, "hashes stored before still verify");
        let ours = hash("correct horse".into()).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        use argon2::password_hash::PasswordVerifier;
        assert!(Argon2::default().verify_password(b"correct horse", &parsed).is_ok(), "the argon2 crate reads ours");
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
