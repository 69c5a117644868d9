//! `GET /voip/turnServer` (spec: "Voice over IP", "TURN server").

use ruma::api::client::voip::get_turn_server_info::v3::Request;

use crate::api::ruma::{RawJson, Ruma};
use crate::ephemeral::voip;
use crate::error::Result;
use crate::services::State;

/// `GET /_matrix/client/v3/voip/turnServer`: time-limited credentials, or `{}` without a TURN
/// server configured (`[voip]`).
pub async fn turn_server(s: State, r: Ruma<Request>) -> Result<RawJson> {
    let user = r.auth()?.user_id.clone();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    Ok(RawJson(voip::turn_server(&s.config.voip, &user, now)))
}
