//! `GET /_matrix/federation/v1/timestamp_to_event/{roomId}?ts=&dir=` (spec: Server-Server API,
//! "Timestamp to event"): the closest event the requesting server may see.

use ruma::api::Direction;
use ruma::api::federation::event::get_event_by_timestamp::v1 as by_ts;
use serde_json::json;

use crate::api::ruma::{RawJson, Ruma};
use crate::error::Result;
use crate::federation::access::{ServerView, ensure_may_read};
use crate::rooms::info::timestamp::closest_visible;
use crate::services::State;

/// `GET /_matrix/federation/v1/timestamp_to_event/{roomId}`
pub async fn timestamp_to_event(s: State, r: Ruma<by_ts::Request>) -> Result<RawJson> {
    let origin = r.origin()?.to_owned();
    let (room_id, ts, forward) = (r.body.room_id, u64::from(r.body.ts.0), r.body.dir == Direction::Forward);
    let record = ensure_may_read(&s, &room_id, &origin)?;
    let mut view = ServerView::new(&s, &record, &origin)?;
    let (event_id, at) = closest_visible(&s, &room_id, ts, forward, |ev| view.may_see(ev))?;
    Ok(RawJson(json!({ "event_id": event_id, "origin_server_ts": at })))
}
