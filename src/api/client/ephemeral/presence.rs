//! `PUT /presence/{userId}/status` and `GET /presence/{userId}/status` (spec: "Presence").

use ruma::api::client::presence::{get_presence, set_presence};

use crate::api::ruma::{RawJson, Ruma};
use crate::ephemeral::presence;
use crate::error::{Error, Result};
use crate::services::State;

/// `PUT /_matrix/client/v3/presence/{userId}/status`: only one's own (`M_FORBIDDEN`).
pub async fn put(s: State, r: Ruma<set_presence::v3::Request>) -> Result<set_presence::v3::Response> {
    let user = r.auth()?.user_id.clone();
    let b = r.body;
    if b.user_id != user {
        return Err(Error::forbidden("You may only set your own presence"));
    }
    presence::set(&s, &user, b.presence, b.status_msg)?;
    Ok(set_presence::v3::Response::new())
}

/// `GET /_matrix/client/v3/presence/{userId}/status` (see [`presence::get`]).
pub async fn get(s: State, r: Ruma<get_presence::v3::Request>) -> Result<RawJson> {
    let viewer = r.auth()?.user_id.clone();
    let user = r.body.user_id;
    Ok(RawJson(presence::get(&s, &viewer, &user)?))
}
