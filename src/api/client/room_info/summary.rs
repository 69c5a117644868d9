//! `GET /room_summary/{roomIdOrAlias}` (spec v1.15) and its MSC3266 unstable path
//! `/_matrix/client/unstable/im.nheko.summary/rooms/{roomIdOrAlias}/summary`.

use ruma::api::client::room::get_summary;

use crate::api::client::rooms::membership::resolve_room;
use crate::api::ruma::{RawJson, Ruma};
use crate::error::Result;
use crate::rooms::info::summary;
use crate::services::State;

/// `GET /_matrix/client/v1/room_summary/{roomIdOrAlias}`; authentication optional.
pub async fn get(s: State, r: Ruma<get_summary::v1::Request>) -> Result<RawJson> {
    let user = r.auth.map(|a| a.user_id);
    let target = r.body.room_id_or_alias;
    let value = s
        .blocking(move |s| {
            let room_id = resolve_room(s, &target)?;
            summary::summary(s, &room_id, user.as_deref())
        })
        .await?;
    Ok(RawJson(value))
}
