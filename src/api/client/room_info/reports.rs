//! `POST /rooms/{roomId}/report/{eventId}` and `POST /rooms/{roomId}/report`
//! (spec: "Reporting content").

use ruma::api::client::room::{report_content, report_room};

use crate::api::ruma::Ruma;
use crate::error::Result;
use crate::rooms::info::reports;
use crate::services::State;

/// `POST /_matrix/client/v3/rooms/{roomId}/report/{eventId}`
pub async fn event(s: State, r: Ruma<report_content::v3::Request>) -> Result<report_content::v3::Response> {
    let user = r.auth()?.user_id.clone();
    let b = r.body;
    reports::report_event(&s, &b.room_id, &b.event_id, &user, b.reason.as_deref())?;
    Ok(report_content::v3::Response::new())
}

/// `POST /_matrix/client/v3/rooms/{roomId}/report`
pub async fn room(s: State, r: Ruma<report_room::v3::Request>) -> Result<report_room::v3::Response> {
    let user = r.auth()?.user_id.clone();
    let b = r.body;
    reports::report_room(&s, &b.room_id, &user, &b.reason)?;
    Ok(report_room::v3::Response::new())
}
