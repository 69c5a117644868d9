//! `GET /rooms/{roomId}/timestamp_to_event?ts=&dir=` (spec v1.6: the event closest to a time).

use ruma::api::Direction;
use ruma::api::client::room::get_event_by_timestamp;
use ruma::{MilliSecondsSinceUnixEpoch, UInt};

use crate::api::ruma::Ruma;
use crate::error::{Error, Result};
use crate::rooms::info::timestamp;
use crate::services::State;

/// `GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event`
pub async fn get(
    s: State,
    r: Ruma<get_event_by_timestamp::v1::Request>,
) -> Result<get_event_by_timestamp::v1::Response> {
    let user = r.auth()?.user_id.clone();
    let b = r.body;
    let (ts, forward) = (u64::from(b.ts.0), b.dir == Direction::Forward);
    let (event_id, at) = timestamp::closest(&s, &b.room_id, &user, ts, forward)?;
    let at = UInt::try_from(at).map_err(|_| Error::internal("event timestamp out of range"))?;
    Ok(get_event_by_timestamp::v1::Response::new(event_id, MilliSecondsSinceUnixEpoch(at)))
}
