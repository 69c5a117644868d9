//! `POST /rooms/{roomId}/report/{eventId}`, `POST /rooms/{roomId}/report` and
//! `POST /users/{userId}/report` (spec: "Reporting content").

use ruma::api::client::reporting::report_user;
use ruma::api::client::room::{report_content, report_room};

use crate::api::ruma::Ruma;
use crate::error::Result;
use crate::rooms::info::reports;
use crate::services::State;
use crate::users::reports as user_reports;

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

/// `POST /_matrix/client/v3/users/{userId}/report`: a local user that does not exist is 404.
pub async fn user(s: State, r: Ruma<report_user::v3::Request>) -> Result<report_user::v3::Response> {
    let reporter = r.auth()?.user_id.clone();
    let b = r.body;
    user_reports::report(&s.db, s.is_local(&b.user_id), &b.user_id, &reporter, &b.reason)?;
    Ok(report_user::v3::Response::new())
}
