//! `GET /_matrix/federation/v1/event/{eventId}`, `/state/{roomId}`, `/state_ids/{roomId}`,
//! `/event_auth/{roomId}/{eventId}` (spec: Server-Server API, "Retrieving events",
//! "Authentication"): events served to another server through `federation::events`.

use ruma::api::federation::authorization::get_event_authorization::v1 as event_auth;
use ruma::api::federation::event::{
    get_event::v1 as get_event, get_room_state::v1 as state, get_room_state_ids::v1 as state_ids,
};
use serde_json::json;

use crate::api::ruma::{RawJson, Ruma};
use crate::error::Result;
use crate::federation::events;
use crate::services::State;
use crate::users::now_ms;

/// `GET /_matrix/federation/v1/event/{eventId}`
pub async fn event(s: State, r: Ruma<get_event::Request>) -> Result<RawJson> {
    let origin = r.origin()?;
    let event_id = &r.body.event_id;
    let pdu = events::event(&s, origin, event_id)?;
    Ok(RawJson(json!({ "origin": s.server_name, "origin_server_ts": now_ms(), "pdus": [pdu] })))
}

/// `GET /_matrix/federation/v1/state/{roomId}?event_id=`
pub async fn room_state(s: State, r: Ruma<state::Request>) -> Result<RawJson> {
    let origin = r.origin()?;
    let (room_id, event_id) = (&r.body.room_id, &r.body.event_id);
    let (pdus, chain) = events::state(&s, origin, room_id, event_id)?;
    Ok(RawJson(json!({ "pdus": pdus, "auth_chain": chain })))
}

/// `GET /_matrix/federation/v1/state_ids/{roomId}?event_id=`
pub async fn room_state_ids(s: State, r: Ruma<state_ids::Request>) -> Result<state_ids::Response> {
    let origin = r.origin()?;
    let (room_id, event_id) = (&r.body.room_id, &r.body.event_id);
    let (pdu_ids, chain_ids) = events::state_ids(&s, origin, room_id, event_id)?;
    Ok(state_ids::Response::new(chain_ids, pdu_ids))
}

/// `GET /_matrix/federation/v1/event_auth/{roomId}/{eventId}`
pub async fn auth_chain(s: State, r: Ruma<event_auth::Request>) -> Result<RawJson> {
    let origin = r.origin()?;
    let (room_id, event_id) = (&r.body.room_id, &r.body.event_id);
    let chain = events::event_auth(&s, origin, room_id, event_id)?;
    Ok(RawJson(json!({ "auth_chain": chain })))
}
