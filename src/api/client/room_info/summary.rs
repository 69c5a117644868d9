//! `GET /room_summary/{roomIdOrAlias}?via=` (spec v1.15) and its MSC3266 unstable path
//! `/_matrix/client/unstable/im.nheko.summary/rooms/{roomIdOrAlias}/summary`.

use ruma::RoomId;
use ruma::api::client::room::get_summary;
use ruma::events::room::member::MembershipState;
use serde_json::json;

use crate::api::ruma::{RawJson, Ruma};
use crate::error::Result;
use crate::federation;
use crate::rooms::info::summary;
use crate::rooms::{exists, membership};
use crate::services::State;

/// `GET /_matrix/client/v1/room_summary/{roomIdOrAlias}`; authentication optional. A room we
/// do not hold is asked of other servers (`via`, the alias's servers, the room ID's server).
pub async fn get(s: State, r: Ruma<get_summary::v1::Request>) -> Result<RawJson> {
    let user = r.auth.map(|a| a.user_id);
    let (target, mut servers) = (r.body.room_id_or_alias, r.body.via);
    let room_id = match <&RoomId>::try_from(&*target) {
        Ok(room_id) => room_id.to_owned(),
        Err(alias) => {
            let (room_id, alias_servers) = federation::join::resolve_alias(&s, alias).await?;
            servers.extend(alias_servers);
            room_id
        }
    };
    let known = exists(&s, &room_id)? && federation::access::is_resident(&s, &room_id)?;
    let local = summary::summary(&s, &room_id, user.as_deref());
    if known || !s.config.federation.enabled {
        return local.map(RawJson);
    }
    servers.extend(room_id.server_name().map(ToOwned::to_owned));
    let mut out = match federation::lookups::remote_summary(&s, &room_id, &servers).await {
        Ok(out) => out,
        // What we still know of a room we left, else the remote answer (404).
        Err(e) => return local.map(RawJson).or(Err(e)),
    };
    if let Some(u) = user {
        let mine = membership::membership_of(&s, &room_id, &u)?;
        out["membership"] = json!(mine.unwrap_or(MembershipState::Leave));
    }
    Ok(RawJson(out))
}
