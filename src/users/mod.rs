//! Local accounts and everything hanging off them: devices and tokens, profiles, account data,
//! filters. Spec: Client-Server API, "Client Authentication", "Account registration and
//! management", "Device management", "Profiles", "Client Config", "Filtering".

pub mod account_data;
pub mod accounts;
pub mod devices;
pub mod jwt;
pub mod openid;
pub mod password;
pub mod profile;
pub mod reports;
pub mod tokens;

use rand::Rng;
use rand::distr::Alphanumeric;

use crate::error::{Error, ErrorKind, Result};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A random alphanumeric string (tokens, session ids, nonces).
pub fn random_string(len: usize) -> String {
    rand::rng().sample_iter(&Alphanumeric).take(len).map(char::from).collect()
}

/// Check a localpart requested at registration (spec: "User Identifiers": the new-style
/// grammar `[a-z0-9._=\-/+]`), plus the server's own rules.
pub fn validate_localpart(localpart: &str, server_name: &str, reserved_prefixes: &[String]) -> Result<()> {
    let invalid = |why: &str| Err(Error::new(ErrorKind::InvalidUsername, why));
    if localpart.is_empty() {
        return invalid("User ID cannot be empty");
    }
    if !localpart.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'=' | b'-' | b'/' | b'+')) {
        return invalid("User ID can only contain characters a-z, 0-9, or '=_-./+'");
    }
    if localpart.starts_with('_') {
        return invalid("User ID may not begin with _");
    }
    if localpart.bytes().all(|b| b.is_ascii_digit()) {
        return invalid("Numeric user IDs are reserved for guest users");
    }
    if localpart.len() + server_name.len() + 2 > 255 {
        return invalid("User ID may not be longer than 255 characters");
    }
    if reserved_prefixes.iter().any(|p| !p.is_empty() && localpart.starts_with(p.as_str())) {
        return Err(Error::new(ErrorKind::Exclusive, "User ID is in a namespace reserved by this server"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localpart_rules() {
        let ok = |l: &str| validate_localpart(l, "example.org", &["bridge_".into()]).map_err(|e| e.kind().errcode());
        assert_eq!(ok("alice.b-c=d/e+f"), Ok(()));
        assert_eq!(ok("Alice"), Err("M_INVALID_USERNAME"));
        assert_eq!(ok("al ice"), Err("M_INVALID_USERNAME"));
        assert_eq!(ok("_alice"), Err("M_INVALID_USERNAME"));
        assert_eq!(ok("12345"), Err("M_INVALID_USERNAME"));
        assert_eq!(ok(&"a".repeat(250)), Err("M_INVALID_USERNAME"));
        assert_eq!(ok("bridge_irc"), Err("M_EXCLUSIVE"));
    }
}
