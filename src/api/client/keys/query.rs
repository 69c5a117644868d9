//! `POST /keys/query`, `GET /keys/changes` (spec: "End-to-End Encryption", "Downloading keys",
//! "Tracking the device list for a user").

use ruma::api::client::keys::{get_key_changes, get_keys};

use crate::api::ruma::{RawJson, Ruma};
use crate::error::Result;
use crate::keys::{changes, remote};
use crate::services::State;

/// `POST /_matrix/client/v3/keys/query`: users of other servers through their servers.
pub async fn query(s: State, r: Ruma<get_keys::v3::Request>) -> Result<RawJson> {
    r.auth()?;
    let timeout = r.body.timeout.unwrap_or(remote::DEFAULT_TIMEOUT);
    Ok(RawJson(remote::query(&s, r.body.device_keys, timeout).await?))
}

/// `GET /_matrix/client/v3/keys/changes?from=&to=`: `to` beyond what is committed is read as
/// the committed position.
pub async fn changes(s: State, r: Ruma<get_key_changes::v3::Request>) -> Result<get_key_changes::v3::Response> {
    let user = r.auth()?.user_id.clone();
    let from = changes::parse_token(&r.body.from)?;
    let to = changes::parse_token(&r.body.to)?.min(s.db.stream().committed());
    let (changed, left) = changes::device_list_changes(&s, &user, from, to)?;
    Ok(get_key_changes::v3::Response::new(changed, left))
}
