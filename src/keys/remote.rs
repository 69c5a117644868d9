//! `POST /keys/query` and `POST /keys/claim` across servers (spec: Client-Server API "End-to-End
//! Encryption", "Downloading keys", "Claiming one-time keys"; Server-Server API "End-to-End
//! Encryption"): our users are answered from the database, users of other servers by one
//! `POST /_matrix/federation/v1/user/keys/{query,claim}` per server, all servers in parallel,
//! each bounded by the client's `timeout`. A server that fails or times out is listed in
//! `failures` (as Synapse does: `{"status": 503, "message": ...}`).

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::future::join_all;
use ruma::api::federation::keys::{claim_keys::v1 as claim_fed, get_keys::v1 as query_fed};
use ruma::encryption::DeviceKeys;
use ruma::serde::Base64;
use ruma::signatures::{to_canonical_json_string_for_signing, verify_canonical_json_bytes};
use ruma::{
    CanonicalJsonObject, DeviceId, OneTimeKeyAlgorithm, OwnedDeviceId, OwnedServerName, OwnedUserId,
    SigningKeyAlgorithm, UserId,
};
use serde_json::{Map, Value, json};

use super::{device_keys, one_time_keys};
use crate::error::{Error, ErrorKind, Result};
use crate::services::State;

/// The client's `timeout` when it gives none (spec: "defaults to 10 seconds").
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest wait for other servers a client may ask for.
const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// Group the requests for users of other servers by server.
fn by_server<T: Clone>(
    s: &State,
    requested: &BTreeMap<OwnedUserId, T>,
) -> BTreeMap<OwnedServerName, BTreeMap<OwnedUserId, T>> {
    let mut out: BTreeMap<OwnedServerName, BTreeMap<OwnedUserId, T>> = BTreeMap::new();
    for (user, wanted) in requested.iter().filter(|(u, _)| !s.is_local(u)) {
        out.entry(user.server_name().to_owned()).or_default().insert(user.clone(), wanted.clone());
    }
    out
}

/// Send one request per server in parallel, each bounded by `timeout`; the failures map has an
/// entry for each server that did not answer.
async fn fan_out<T, R, F, Fut>(
    s: &State,
    servers: BTreeMap<OwnedServerName, T>,
    timeout: Duration,
    send: F,
) -> (Vec<(OwnedServerName, T, R)>, Map<String, Value>)
where
    T: Clone,
    F: Fn(OwnedServerName, T) -> Fut,
    Fut: Future<Output = Result<R>>,
{
    let timeout = timeout.min(MAX_TIMEOUT);
    let enabled = s.config.federation.enabled;
    let answers = join_all(servers.into_iter().map(|(server, what)| {
        let request = send(server.clone(), what.clone());
        async move {
            let answer = if enabled {
                match tokio::time::timeout(timeout, request).await {
                    Ok(r) => r,
                    Err(_) => {
                        Err(Error::new(ErrorKind::Unknown, format!("{server} did not answer within {timeout:?}")))
                    }
                }
            } else {
                Err(Error::forbidden("Federation is disabled"))
            };
            (server, what, answer)
        }
    }))
    .await;
    let (mut ok, mut failures) = (Vec::new(), Map::new());
    for (server, what, answer) in answers {
        match answer {
            Ok(r) => ok.push((server, what, r)),
            Err(e) => {
                tracing::info!(%server, error = %e, "remote key request failed");
                failures.insert(server.to_string(), json!({ "status": 503, "message": e.to_string() }));
            }
        }
    }
    (ok, failures)
}

/// Whether `keys` (a device keys object from another server) is for `user`'s `device` and signed
/// by the device's own `ed25519:<device>` key (spec: "Downloading keys": clients must check
/// this). Stricter than Synapse, which passes remote keys on unchecked: a key that fails here
/// could only mislead the client, which must drop it anyway.
pub fn self_signed(keys: &Value, user: &UserId, device: &DeviceId) -> bool {
    let Ok(parsed) = serde_json::from_value::<DeviceKeys>(keys.clone()) else { return false };
    if parsed.user_id != user || parsed.device_id != device {
        return false;
    }
    let key_id = format!("ed25519:{device}");
    let (Some(public), Some(signature)) =
        (keys["keys"][&key_id].as_str(), keys["signatures"][user.as_str()][&key_id].as_str())
    else {
        return false;
    };
    let (Ok(public), Ok(signature)) = (
        Base64::<ruma::serde::base64::Standard>::parse(public),
        Base64::<ruma::serde::base64::Standard>::parse(signature),
    ) else {
        return false;
    };
    let Ok(object) = serde_json::from_value::<CanonicalJsonObject>(keys.clone()) else { return false };
    let Ok(canonical) = to_canonical_json_string_for_signing(&object) else { return false };
    verify_canonical_json_bytes(
        &SigningKeyAlgorithm::Ed25519,
        public.as_bytes(),
        signature.as_bytes(),
        canonical.as_bytes(),
    )
    .is_ok()
}

/// The body of `POST /_matrix/client/v3/keys/query`: `device_keys` of our users and of users of
/// other servers (only devices that pass [`self_signed`]), their `master_keys` and
/// `self_signing_keys` when those servers give them, and `failures`.
pub async fn query(
    s: &State,
    requested: BTreeMap<OwnedUserId, Vec<OwnedDeviceId>>,
    timeout: Duration,
) -> Result<Value> {
    let servers = by_server(s, &requested);
    let mut device_keys = device_keys::query(s, &requested, true)?;
    let (answers, failures) = fan_out(s, servers, timeout, |server, users| async move {
        s.federation.send(&server, query_fed::Request::new(users)).await
    })
    .await;
    let (mut master, mut self_signing) = (Map::new(), Map::new());
    let out = device_keys.as_object_mut().ok_or_else(|| Error::internal("device_keys is not an object"))?;
    for (_, users, answer) in answers {
        for (user, wanted) in &users {
            let mut devices = Map::new();
            for (device, raw) in answer.device_keys.get(user).into_iter().flatten() {
                if !wanted.is_empty() && !wanted.contains(device) {
                    continue;
                }
                let Ok(keys) = serde_json::from_str::<Value>(raw.json().get()) else { continue };
                if self_signed(&keys, user, device) {
                    devices.insert(device.to_string(), keys);
                } else {
                    tracing::info!(%user, %device, "dropping remote device keys without a valid self-signature");
                }
            }
            out.insert(user.to_string(), Value::Object(devices));
            for (from, to) in [(&answer.master_keys, &mut master), (&answer.self_signing_keys, &mut self_signing)] {
                let Some(raw) = from.get(user) else { continue };
                let Ok(key) = serde_json::from_str::<Value>(raw.json().get()) else { continue };
                if key["user_id"] == user.as_str() {
                    to.insert(user.to_string(), key);
                }
            }
        }
    }
    let mut body = json!({ "device_keys": device_keys, "failures": failures });
    if !master.is_empty() {
        body["master_keys"] = Value::Object(master);
    }
    if !self_signing.is_empty() {
        body["self_signing_keys"] = Value::Object(self_signing);
    }
    Ok(body)
}

/// The body of `POST /_matrix/client/v3/keys/claim`: one-time (else fallback) keys of our users'
/// devices and, through their servers, of other users' devices (only requested devices, one
/// key of the requested algorithm each), and `failures`.
pub async fn claim(
    s: &State,
    requested: BTreeMap<OwnedUserId, BTreeMap<OwnedDeviceId, String>>,
    timeout: Duration,
) -> Result<Value> {
    let servers = by_server(s, &requested);
    let mut claimed = one_time_keys::claim(s, &requested)?;
    let (answers, failures) = fan_out(s, servers, timeout, |server, users| async move {
        let users = users
            .into_iter()
            .map(|(u, devices)| (u, devices.into_iter().map(|(d, a)| (d, OneTimeKeyAlgorithm::from(a))).collect()))
            .collect();
        s.federation.send(&server, claim_fed::Request::new(users)).await
    })
    .await;
    let out = claimed.as_object_mut().ok_or_else(|| Error::internal("one_time_keys is not an object"))?;
    for (_, users, answer) in answers {
        for (user, devices) in &users {
            let mut found = Map::new();
            for (device, algorithm) in devices {
                let Some(keys) = answer.one_time_keys.get(user).and_then(|d| d.get(device)) else { continue };
                let prefix = format!("{algorithm}:");
                if let Some((id, raw)) = keys.iter().find(|(id, _)| id.as_str().starts_with(&prefix))
                    && let Ok(key) = serde_json::from_str::<Value>(raw.json().get())
                {
                    found.insert(device.to_string(), json!({ id.as_str(): key }));
                }
            }
            if !found.is_empty() {
                out.insert(user.to_string(), Value::Object(found));
            }
        }
    }
    Ok(json!({ "one_time_keys": claimed, "failures": failures }))
}
