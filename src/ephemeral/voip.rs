//! TURN credentials (spec: Client-Server API "Voice over IP", `GET /voip/turnServer`), in the
//! time-limited style of coturn's `use-auth-secret`: the username is `<expiry>:<user_id>` and the
//! password the base64 HMAC-SHA1 of the username under the shared secret.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use ruma::UserId;
use serde_json::{Value, json};
use sha1::Sha1;

use crate::config::VoipSection;

/// The `/voip/turnServer` body for `user` at `now_secs`: `{username, password, uris, ttl}`, or
/// `{}` when no TURN server is configured (no `turn_shared_secret` or no `turn_uris`).
pub fn turn_server(voip: &VoipSection, user: &UserId, now_secs: u64) -> Value {
    let Some(secret) = voip.turn_shared_secret.as_deref().filter(|s| !s.is_empty()) else { return json!({}) };
    if voip.turn_uris.is_empty() {
        return json!({});
    }
    let username = format!("{}:{user}", now_secs.saturating_add(voip.turn_ttl_secs));
    let password = match Hmac::<Sha1>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(username.as_bytes());
            STANDARD.encode(mac.finalize().into_bytes())
        }
        // HMAC takes keys of any length; this cannot happen.
        Err(_) => return json!({}),
    };
    json!({ "username": username, "password": password, "uris": voip.turn_uris, "ttl": voip.turn_ttl_secs })
}
