//! `GET /_matrix/federation/v1/make_join/{roomId}/{userId}`, `/make_leave/...`,
//! `/make_knock/...` (spec: Server-Server API, "Joining Rooms", "Leaving Rooms", "Knocking
//! upon a room"): unsigned membership templates from `federation::templates`.

use ruma::api::federation::membership::{
    prepare_join_event::v1 as make_join, prepare_knock_event::v1 as make_knock, prepare_leave_event::v1 as make_leave,
};
use serde_json::json;

use crate::api::ruma::{RawJson, Ruma};
use crate::error::Result;
use crate::federation::templates::{self, Template};
use crate::services::State;

fn reply(t: Template) -> RawJson {
    RawJson(json!({ "room_version": t.room_version, "event": t.event }))
}

/// `GET /_matrix/federation/v1/make_join/{roomId}/{userId}?ver=`
pub async fn join(s: State, r: Ruma<make_join::Request>) -> Result<RawJson> {
    let origin = r.origin()?;
    let b = &r.body;
    Ok(reply(templates::make_join(&s, origin, &b.room_id, &b.user_id, &b.ver)?))
}

/// `GET /_matrix/federation/v1/make_leave/{roomId}/{userId}`
pub async fn leave(s: State, r: Ruma<make_leave::Request>) -> Result<RawJson> {
    let origin = r.origin()?;
    let b = &r.body;
    Ok(reply(templates::make_leave(&s, origin, &b.room_id, &b.user_id)?))
}

/// `GET /_matrix/federation/v1/make_knock/{roomId}/{userId}?ver=`
pub async fn knock(s: State, r: Ruma<make_knock::Request>) -> Result<RawJson> {
    let origin = r.origin()?;
    let b = &r.body;
    Ok(reply(templates::make_knock(&s, origin, &b.room_id, &b.user_id, &b.ver)?))
}
