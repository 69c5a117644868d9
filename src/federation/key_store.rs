//! Other servers' signing keys (spec: Server-Server API, "Retrieving server keys"): fetched
//! from the server itself (`/_matrix/key/v2/server`), else from the trusted notaries
//! (`federation.trusted_key_servers`); kept only once the response's self-signature verifies
//! and its `server_name` is the server asked about; cached in memory and in the
//! `remote_server_keys` / `remote_key_responses` tables.
//!
//! [`Federation::verify_keys`] and [`Federation::public_key_map`] give the keys in the shapes
//! `ruma::signatures::verify_json` / `verify_event` take.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use ruma::api::federation::discovery::{ServerSigningKeys, get_remote_server_keys, get_server_keys};
use ruma::serde::Base64;
use ruma::signatures::PublicKeyMap;
use ruma::{CanonicalJsonObject, CanonicalJsonValue, MilliSecondsSinceUnixEpoch, OwnedServerName, ServerName};

use super::Federation;
use crate::error::{Error, Result};
use crate::storage::catalog::{REMOTE_KEY_RESPONSES, REMOTE_SERVER_KEYS};
use crate::storage::records::RemoteKeyRecord;
use crate::users::now_ms;

/// A key is trusted at most this long after it was fetched (spec: room version 5+ signing
/// requirements: "the lesser of valid_until_ts and 7 days into the future").
const MAX_KEY_VALIDITY_MS: u64 = 7 * 24 * 3600 * 1000;
/// A server's keys are fetched at most this often when a key is still missing (unless the keys
/// of the last fetch have run out since: see [`Federation::may_fetch`]).
const REFETCH_AFTER: Duration = Duration::from_secs(30);

/// One server's verified keys.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    /// By key ID (`ed25519:abc`).
    pub keys: BTreeMap<String, RemoteKeyRecord>,
    /// The latest verified key response, with the server's own signature only.
    pub response: Option<CanonicalJsonObject>,
}

impl KeySet {
    /// Keys valid until at least `min_valid_until_ts` (old keys: that expired after it).
    pub fn usable(&self, min_valid_until_ts: u64) -> BTreeMap<String, Base64> {
        self.keys
            .iter()
            .filter(|(_, r)| r.valid_until_ts >= min_valid_until_ts)
            .filter_map(|(id, r)| Some((id.clone(), Base64::new(STANDARD_NO_PAD.decode(&r.key).ok()?))))
            .collect()
    }

    /// When the current keys (not the old ones) stop being usable: the latest of their capped
    /// `valid_until_ts` (0 without any). The server says to refresh them then.
    pub fn refresh_at(&self) -> u64 {
        self.keys.values().filter(|r| r.expired_ts.is_none()).map(|r| r.valid_until_ts).max().unwrap_or(0)
    }

    /// `valid_until_ts` of the stored response (0 without one).
    pub fn response_valid_until(&self) -> u64 {
        let ts = self.response.as_ref().and_then(|r| r.get("valid_until_ts"));
        match ts {
            Some(CanonicalJsonValue::Integer(i)) => u64::try_from(i64::from(*i)).unwrap_or(0),
            _ => 0,
        }
    }
}

/// Check `object`'s signatures by `entity` against `keys`, ignoring everyone else's.
pub fn verify_signed_by(object: &CanonicalJsonObject, entity: &str, keys: BTreeMap<String, Base64>) -> Result<()> {
    let signatures = match object.get("signatures") {
        Some(CanonicalJsonValue::Object(s)) => s.get(entity).cloned(),
        _ => None,
    };
    let Some(signatures) = signatures else { return Err(Error::forbidden(format!("Not signed by {entity}"))) };
    let mut only = object.clone();
    only.insert("signatures".into(), CanonicalJsonValue::Object([(entity.to_owned(), signatures)].into()));
    let map: PublicKeyMap = BTreeMap::from([(entity.to_owned(), keys)]);
    ruma::signatures::verify_json(&map, &only).map_err(|e| Error::forbidden(format!("Bad signature of {entity}: {e}")))
}

/// Validate a key response for `server`: its `server_name`, at least one verify key, and the
/// server's signature by those keys. Returns the keys to store and the response with the
/// server's signature only.
pub fn verify_key_response(server: &ServerName, object: CanonicalJsonObject, now: u64) -> Result<KeySet> {
    let bad = |why: String| Error::forbidden(format!("Key response for {server}: {why}"));
    let value = serde_json::to_value(&object).map_err(Error::internal)?;
    let parsed: ServerSigningKeys = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
    if parsed.server_name != server {
        return Err(bad(format!("server_name is {}", parsed.server_name)));
    }
    if parsed.verify_keys.is_empty() {
        return Err(bad("no verify_keys".into()));
    }
    let verify: BTreeMap<String, Base64> =
        parsed.verify_keys.iter().map(|(id, k)| (id.to_string(), k.key.clone())).collect();
    verify_signed_by(&object, server.as_str(), verify)?;

    let valid_until = u64::from(parsed.valid_until_ts.get()).min(now + MAX_KEY_VALIDITY_MS);
    let mut keys = BTreeMap::new();
    for (id, old) in &parsed.old_verify_keys {
        let expired = u64::from(old.expired_ts.get());
        let record = RemoteKeyRecord { key: old.key.encode(), valid_until_ts: expired, expired_ts: Some(expired) };
        keys.insert(id.to_string(), record);
    }
    for (id, key) in &parsed.verify_keys {
        keys.insert(
            id.to_string(),
            RemoteKeyRecord { key: key.key.encode(), valid_until_ts: valid_until, expired_ts: None },
        );
    }
    let mut response = object;
    if let Some(CanonicalJsonValue::Object(signatures)) = response.get_mut("signatures") {
        signatures.retain(|entity, _| entity == server.as_str());
    }
    Ok(KeySet { keys, response: Some(response) })
}

impl Federation {
    /// The keys of `server` usable for signatures made up to `min_valid_until_ts` (ms), by key ID,
    /// fetching them if none is known. Our own name gives our own keys.
    pub async fn verify_keys(&self, server: &ServerName, min_valid_until_ts: u64) -> Result<BTreeMap<String, Base64>> {
        self.keys_for(server, min_valid_until_ts, None, true).await
    }

    /// One key of `server`, fetching the server's keys if it is not known yet.
    pub async fn verify_key(
        &self,
        server: &ServerName,
        key_id: &str,
        min_valid_until_ts: u64,
    ) -> Result<Option<Base64>> {
        Ok(self.keys_for(server, min_valid_until_ts, Some(key_id), true).await?.remove(key_id))
    }

    /// The keys of several servers (server → the `min_valid_until_ts` its signatures need), as
    /// `ruma::signatures::verify_event` takes them. Servers without usable keys are left out.
    pub async fn public_key_map(&self, wanted: &BTreeMap<OwnedServerName, u64>) -> Result<PublicKeyMap> {
        let mut map = PublicKeyMap::new();
        for (server, min) in wanted {
            let keys = self.verify_keys(server, *min).await?;
            if !keys.is_empty() {
                map.insert(server.to_string(), keys);
            }
        }
        Ok(map)
    }

    async fn keys_for(
        &self,
        server: &ServerName,
        min: u64,
        key_id: Option<&str>,
        via_notaries: bool,
    ) -> Result<BTreeMap<String, Base64>> {
        if server == self.server_name {
            return Ok(self.own_verify_keys(min));
        }
        let satisfied =
            |keys: &BTreeMap<String, Base64>| !keys.is_empty() && key_id.is_none_or(|k| keys.contains_key(k));
        let usable = self.cached_keys(server).await?.usable(min);
        if satisfied(&usable) {
            return Ok(usable);
        }
        // A fetch already in flight (e.g. for an X-Matrix check) is waited for, not skipped.
        let _turn = self.fetching.lock(server).await;
        let cached = self.cached_keys(server).await?;
        let usable = cached.usable(min);
        if satisfied(&usable) || !self.may_fetch(server, cached.refresh_at()) {
            return Ok(usable);
        }
        match self.fetch_direct(server).await {
            Ok(()) => {
                let usable = self.cached_keys(server).await?.usable(min);
                if satisfied(&usable) || !via_notaries {
                    return Ok(usable);
                }
            }
            Err(e) => tracing::info!(%server, error = %e, "fetching keys from the server failed"),
        }
        if via_notaries {
            for notary in &self.config.trusted_key_servers {
                let Ok(notary) = ServerName::parse(notary) else { continue };
                if notary == server || notary == self.server_name {
                    continue;
                }
                match self.fetch_via_notary(&notary, server, min).await {
                    Ok(()) => {
                        let usable = self.cached_keys(server).await?.usable(min);
                        if satisfied(&usable) {
                            return Ok(usable);
                        }
                    }
                    Err(e) => tracing::info!(%server, %notary, error = %e, "fetching keys from a notary failed"),
                }
            }
        }
        Ok(self.cached_keys(server).await?.usable(min))
    }

    /// Note a fetch for `server` unless one happened within [`REFETCH_AFTER`] and the keys it
    /// brought are still valid: `refresh_at` (ms, [`KeySet::refresh_at`]) passed after that
    /// fetch means they ran out since, and are fetched again at once (a server may publish keys
    /// valid for a short while). Keys that were expired when fetched do not bypass the limit.
    pub(super) fn may_fetch(&self, server: &ServerName, refresh_at: u64) -> bool {
        if let Some(at) = self.fetched.get(server) {
            let now = now_ms();
            let fetched_ms = now.saturating_sub(u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX));
            let ran_out_since = fetched_ms < refresh_at && refresh_at <= now;
            if at.elapsed() < REFETCH_AFTER && !ran_out_since {
                return false;
            }
        }
        self.fetched.insert(server.to_owned(), Instant::now());
        true
    }

    /// `GET /_matrix/key/v2/server` on the server itself.
    pub(super) async fn fetch_direct(&self, server: &ServerName) -> Result<()> {
        let response = self.send(server, get_server_keys::v2::Request::new()).await?;
        let object: CanonicalJsonObject =
            serde_json::from_str(response.server_key.json().get()).map_err(|e| Error::bad_json(e.to_string()))?;
        let set = verify_key_response(server, object, now_ms())?;
        self.store_keys(server, set).await
    }

    /// `GET /_matrix/key/v2/query/{server}` on a notary, whose own signature must verify too.
    async fn fetch_via_notary(&self, notary: &ServerName, server: &ServerName, min: u64) -> Result<()> {
        let notary_keys = Box::pin(self.keys_for(notary, now_ms(), None, false)).await?;
        let ts = MilliSecondsSinceUnixEpoch(ruma::UInt::try_from(min).unwrap_or(ruma::UInt::MAX));
        let request = get_remote_server_keys::v2::Request::new(server.to_owned(), ts);
        let response = self.send(notary, request).await?;
        let mut stored = false;
        for raw in response.server_keys {
            let Ok(object) = serde_json::from_str::<CanonicalJsonObject>(raw.json().get()) else { continue };
            verify_signed_by(&object, notary.as_str(), notary_keys.clone())?;
            self.store_keys(server, verify_key_response(server, object, now_ms())?).await?;
            stored = true;
        }
        if stored { Ok(()) } else { Err(Error::not_found(format!("{notary} has no keys for {server}"))) }
    }

    /// The keys known for `server` (memory, else the tables).
    pub(super) async fn cached_keys(&self, server: &ServerName) -> Result<KeySet> {
        if let Some(set) = self.keys.get(server) {
            return Ok(set);
        }
        let name = server.to_owned();
        let keys = self.db.scan_prefix(REMOTE_SERVER_KEYS, &name)?.into_iter().map(|((_, id), r)| (id, r)).collect();
        let response = match self.db.get(REMOTE_KEY_RESPONSES, &name)? {
            Some(v) => serde_json::from_value(v).ok(),
            None => None,
        };
        let set = KeySet { keys, response };
        self.remember(server, set.clone());
        Ok(set)
    }

    /// Merge verified keys into the cache and the tables; the response is kept if it is the
    /// newest.
    async fn store_keys(&self, server: &ServerName, new: KeySet) -> Result<()> {
        let mut set = self.cached_keys(server).await?;
        set.keys.extend(new.keys.clone());
        let newer = new.response_valid_until() >= set.response_valid_until();
        if newer {
            set.response = new.response.clone();
        }
        let name = server.to_owned();
        let response =
            if newer { new.response.map(serde_json::to_value).transpose().map_err(Error::internal)? } else { None };
        let mut batch = self.db.batch();
        for (id, record) in &new.keys {
            batch.put(REMOTE_SERVER_KEYS, &(name.clone(), id.clone()), record)?;
        }
        if let Some(response) = &response {
            batch.put(REMOTE_KEY_RESPONSES, &name, response)?;
        }
        batch.commit()?;
        self.remember(server, set);
        Ok(())
    }

    fn remember(&self, server: &ServerName, set: KeySet) {
        self.keys.insert(server.to_owned(), set);
    }
}
