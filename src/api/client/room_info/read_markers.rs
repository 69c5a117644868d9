//! `POST /rooms/{roomId}/read_markers` (spec: "Fully read markers").

use ruma::api::client::read_marker::set_read_marker;

use crate::api::ruma::Ruma;
use crate::error::Result;
use crate::rooms::info::markers;
use crate::services::State;

/// `POST /_matrix/client/v3/rooms/{roomId}/read_markers`
///
/// Sets `m.fully_read`. The `m.read` and `m.read.private` receipts are checked like the marker
/// but not stored yet: receipts come with `/sync` (see [`markers::set`]).
pub async fn set(s: State, r: Ruma<set_read_marker::v3::Request>) -> Result<set_read_marker::v3::Response> {
    let user = r.auth()?.user_id.clone();
    let b = r.body;
    s.blocking(move |s| {
        let receipts: Vec<_> = b.read_receipt.iter().chain(&b.private_read_receipt).map(AsRef::as_ref).collect();
        markers::set(s, &b.room_id, &user, b.fully_read.as_deref(), &receipts)
    })
    .await?;
    Ok(set_read_marker::v3::Response::new())
}
