//! `POST /rooms/{roomId}/read_markers` (spec: "Fully read markers").

use ruma::api::client::read_marker::set_read_marker;

use crate::api::ruma::Ruma;
use crate::error::Result;
use crate::rooms::info::markers;
use crate::services::State;

/// `POST /_matrix/client/v3/rooms/{roomId}/read_markers`
///
/// Sets `m.fully_read` and the (unthreaded) `m.read` / `m.read.private` receipts (see
/// [`markers::set`]).
pub async fn set(s: State, r: Ruma<set_read_marker::v3::Request>) -> Result<set_read_marker::v3::Response> {
    let user = r.auth()?.user_id.clone();
    let b = r.body;
    markers::set(
        &s,
        &b.room_id,
        &user,
        b.fully_read.as_deref(),
        b.read_receipt.as_deref(),
        b.private_read_receipt.as_deref(),
    )?;
    Ok(set_read_marker::v3::Response::new())
}
