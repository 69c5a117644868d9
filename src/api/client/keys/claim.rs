//! `POST /keys/claim` (spec: "End-to-End Encryption", "Claiming one-time keys").

use std::collections::BTreeMap;

use ruma::api::client::keys::claim_keys;

use crate::api::ruma::{RawJson, Ruma};
use crate::error::Result;
use crate::keys::remote;
use crate::services::State;

/// `POST /_matrix/client/v3/keys/claim`: users of other servers through their servers.
pub async fn claim(s: State, r: Ruma<claim_keys::v3::Request>) -> Result<RawJson> {
    r.auth()?;
    let timeout = r.body.timeout.unwrap_or(remote::DEFAULT_TIMEOUT);
    let requested: BTreeMap<_, BTreeMap<_, String>> = r
        .body
        .one_time_keys
        .into_iter()
        .map(|(user, devices)| (user, devices.into_iter().map(|(d, alg)| (d, alg.to_string())).collect()))
        .collect();
    Ok(RawJson(remote::claim(&s, requested, timeout).await?))
}
