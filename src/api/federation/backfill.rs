//! `GET /_matrix/federation/v1/backfill/{roomId}` and `POST /get_missing_events/{roomId}`
//! (spec: Server-Server API, "Backfilling and retrieving missing events").

use ruma::api::federation::backfill::get_backfill::v1 as backfill;
use ruma::api::federation::event::get_missing_events::v1 as missing;
use serde_json::json;

use crate::api::ruma::{RawJson, Ruma};
use crate::error::Result;
use crate::federation::events;
use crate::services::State;
use crate::users::now_ms;

/// `GET /_matrix/federation/v1/backfill/{roomId}?v=&limit=`
pub async fn get_backfill(s: State, r: Ruma<backfill::Request>) -> Result<RawJson> {
    let origin = r.origin()?;
    let (room_id, v) = (&r.body.room_id, &r.body.v);
    let limit = usize::try_from(u64::from(r.body.limit)).unwrap_or(usize::MAX);
    let pdus = events::backfill(&s, origin, room_id, v, limit)?;
    Ok(RawJson(json!({ "origin": s.server_name, "origin_server_ts": now_ms(), "pdus": pdus })))
}

/// `POST /_matrix/federation/v1/get_missing_events/{roomId}`
pub async fn get_missing_events(s: State, r: Ruma<missing::Request>) -> Result<RawJson> {
    let origin = r.origin()?;
    let b = &r.body;
    let limit = usize::try_from(u64::from(b.limit)).unwrap_or(usize::MAX);
    let min_depth = u64::from(b.min_depth);
    let found =
        events::missing_events(&s, origin, &b.room_id, (&b.earliest_events, &b.latest_events), limit, min_depth)?;
    Ok(RawJson(json!({ "events": found })))
}
