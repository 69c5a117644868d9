//! `GET /_matrix/key/v2/server` (spec: Server-Server API, "Publishing Keys"): our keys,
//! self-signed.

use ruma::api::federation::discovery::get_server_keys::v2 as server_keys;

use crate::api::ruma::{RawJson, Ruma};
use crate::error::{Error, Result};
use crate::services::State;

/// `GET /_matrix/key/v2/server`
pub async fn server_keys(s: State, _r: Ruma<server_keys::Request>) -> Result<RawJson> {
    let object = s.federation.own_key_response()?;
    Ok(RawJson(serde_json::to_value(object).map_err(Error::internal)?))
}
