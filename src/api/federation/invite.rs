//! `PUT /_matrix/federation/v2/invite/{roomId}/{eventId}` (spec: Server-Server API, "Inviting
//! to a room"): another server invites one of our users; `federation::invite` checks,
//! countersigns and keeps it.

use ruma::api::federation::membership::create_invite::v2 as invite;
use serde_json::json;

use crate::api::ruma::{RawJson, Ruma};
use crate::error::Result;
use crate::federation::invite::{IncomingInvite, receive};
use crate::services::State;

/// `PUT /_matrix/federation/v2/invite/{roomId}/{eventId}`
pub async fn invite_v2(s: State, r: Ruma<invite::Request>) -> Result<RawJson> {
    let origin = r.origin()?;
    let b = &r.body;
    let incoming = IncomingInvite {
        room_id: &b.room_id,
        event_id: &b.event_id,
        room_version: &b.room_version,
        event: &b.event,
        invite_room_state: &b.invite_room_state,
    };
    let event = receive(&s, origin, incoming).await?;
    Ok(RawJson(json!({ "event": event })))
}
