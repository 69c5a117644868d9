//! `GET /_matrix/federation/v1/user/devices/{userId}`, `POST /user/keys/query`,
//! `POST /user/keys/claim` (spec: Server-Server API, "Device Management", "End-to-End
//! Encryption"): our users' devices and keys for other servers, through `keys/`.

use std::collections::BTreeMap;

use ruma::api::federation::device::get_devices::v1 as devices;
use ruma::api::federation::keys::{claim_keys::v1 as claim, get_keys::v1 as query};
use serde_json::json;

use crate::api::ruma::{RawJson, Ruma};
use crate::error::Result;
use crate::federation::queries;
use crate::keys::{device_keys, one_time_keys};
use crate::services::State;

/// `GET /_matrix/federation/v1/user/devices/{userId}`
pub async fn user_devices(s: State, r: Ruma<devices::Request>) -> Result<RawJson> {
    r.origin()?;
    let user = r.body.user_id;
    Ok(RawJson(queries::user_devices(&s, &user)?))
}

/// `POST /_matrix/federation/v1/user/keys/query`: keys of our users only.
pub async fn keys_query(s: State, r: Ruma<query::Request>) -> Result<RawJson> {
    r.origin()?;
    let requested = r.body.device_keys;
    let names = s.config.federation.allow_device_name_lookup;
    let keys = device_keys::query(&s, &requested, names)?;
    Ok(RawJson(json!({ "device_keys": keys })))
}

/// `POST /_matrix/federation/v1/user/keys/claim`: one-time (else fallback) keys of our users.
pub async fn keys_claim(s: State, r: Ruma<claim::Request>) -> Result<RawJson> {
    r.origin()?;
    let requested: BTreeMap<_, BTreeMap<_, String>> = r
        .body
        .one_time_keys
        .into_iter()
        .map(|(user, devices)| (user, devices.into_iter().map(|(d, alg)| (d, alg.to_string())).collect()))
        .collect();
    let keys = one_time_keys::claim(&s, &requested)?;
    Ok(RawJson(json!({ "one_time_keys": keys })))
}
