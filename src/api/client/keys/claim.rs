//! `POST /keys/claim` (spec: "End-to-End Encryption", "Claiming one-time keys").

use std::collections::BTreeMap;

use ruma::api::client::keys::claim_keys;
use serde_json::json;

use crate::api::ruma::{RawJson, Ruma};
use crate::error::Result;
use crate::keys::one_time_keys;
use crate::services::State;

/// `POST /_matrix/client/v3/keys/claim`
pub async fn claim(s: State, r: Ruma<claim_keys::v3::Request>) -> Result<RawJson> {
    r.auth()?;
    let requested: BTreeMap<_, BTreeMap<_, String>> = r
        .body
        .one_time_keys
        .into_iter()
        .map(|(user, devices)| (user, devices.into_iter().map(|(d, alg)| (d, alg.to_string())).collect()))
        .collect();
    let one_time_keys = s.blocking(move |s| one_time_keys::claim(s, &requested)).await?;
    Ok(RawJson(json!({ "one_time_keys": one_time_keys, "failures": {} })))
}
