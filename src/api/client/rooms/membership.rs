//! `/join/{roomIdOrAlias}`, `/rooms/{roomId}/join`, `/invite`, `/leave`, `/forget`, `/kick`,
//! `/ban`, `/unban`, `/knock/{roomIdOrAlias}`, `/joined_rooms`, `/v1/mutual_rooms` (spec: "Room
//! membership").

use ruma::RoomOrAliasId;
use ruma::api::client::knock::knock_room;
use ruma::api::client::membership::{
    ban_user, forget_room, get_mutual_rooms, invite_user, join_room_by_id, join_room_by_id_or_alias, joined_rooms,
    kick_user, leave_room, unban_user,
};

use crate::api::ruma::Ruma;
use crate::error::{Error, Result};
use crate::federation;
use crate::rooms::membership;
use crate::services::State;

/// `POST /_matrix/client/v3/rooms/{roomId}/join`: locally, or through another server
/// (`federation::join`).
pub async fn join_by_id(s: State, r: Ruma<join_room_by_id::v3::Request>) -> Result<join_room_by_id::v3::Response> {
    r.auth()?.ensure_not_suspended()?;
    let user = r.auth()?.user_id.clone();
    let (room_id, reason) = (r.body.room_id, r.body.reason);
    let room_id = federation::join::join(&s, &user, <&RoomOrAliasId>::from(&*room_id), Vec::new(), reason).await?;
    Ok(join_room_by_id::v3::Response::new(room_id))
}

/// `POST /_matrix/client/v3/join/{roomIdOrAlias}?via=`
pub async fn join(
    s: State,
    r: Ruma<join_room_by_id_or_alias::v3::Request>,
) -> Result<join_room_by_id_or_alias::v3::Response> {
    r.auth()?.ensure_not_suspended()?;
    let user = r.auth()?.user_id.clone();
    let b = r.body;
    let room_id = federation::join::join(&s, &user, &b.room_id_or_alias, b.via, b.reason).await?;
    Ok(join_room_by_id_or_alias::v3::Response::new(room_id))
}

/// `POST /_matrix/client/v3/rooms/{roomId}/invite`
pub async fn invite(s: State, r: Ruma<invite_user::v3::Request>) -> Result<invite_user::v3::Response> {
    r.auth()?.ensure_not_suspended()?;
    let sender = r.auth()?.user_id.clone();
    let invite_user::v3::InvitationRecipient::UserId(target) = r.body.recipient else {
        return Err(Error::forbidden("Third-party invites are not supported"));
    };
    let room_id = r.body.room_id;
    if !s.is_local(&target.user_id) && s.config.federation.enabled {
        federation::invite::invite_remote(&s, &room_id, &sender, &target.user_id, target.reason, false).await?;
        return Ok(invite_user::v3::Response::new());
    }
    membership::invite(&s, &room_id, &sender, &target.user_id, target.reason.as_deref(), false).await?;
    Ok(invite_user::v3::Response::new())
}

/// `POST /_matrix/client/v3/rooms/{roomId}/leave`
pub async fn leave(s: State, r: Ruma<leave_room::v3::Request>) -> Result<leave_room::v3::Response> {
    let user = r.auth()?.user_id.clone();
    let (room_id, reason) = (r.body.room_id, r.body.reason);
    federation::join::leave(&s, &user, &room_id, reason).await?;
    Ok(leave_room::v3::Response::new())
}

/// `POST /_matrix/client/v3/rooms/{roomId}/forget`
pub async fn forget(s: State, r: Ruma<forget_room::v3::Request>) -> Result<forget_room::v3::Response> {
    let user = r.auth()?.user_id.clone();
    let room_id = r.body.room_id;
    membership::forget(&s, &room_id, &user)?;
    Ok(forget_room::v3::Response::new())
}

/// `POST /_matrix/client/v3/rooms/{roomId}/kick`
pub async fn kick(s: State, r: Ruma<kick_user::v3::Request>) -> Result<kick_user::v3::Response> {
    let sender = r.auth()?.user_id.clone();
    let b = r.body;
    membership::kick(&s, &b.room_id, &sender, &b.user_id, b.reason.as_deref()).await?;
    Ok(kick_user::v3::Response::new())
}

/// `POST /_matrix/client/v3/rooms/{roomId}/ban`
pub async fn ban(s: State, r: Ruma<ban_user::v3::Request>) -> Result<ban_user::v3::Response> {
    let sender = r.auth()?.user_id.clone();
    let b = r.body;
    membership::ban(&s, &b.room_id, &sender, &b.user_id, b.reason.as_deref()).await?;
    Ok(ban_user::v3::Response::new())
}

/// `POST /_matrix/client/v3/rooms/{roomId}/unban`
pub async fn unban(s: State, r: Ruma<unban_user::v3::Request>) -> Result<unban_user::v3::Response> {
    let sender = r.auth()?.user_id.clone();
    let b = r.body;
    membership::unban(&s, &b.room_id, &sender, &b.user_id, b.reason.as_deref()).await?;
    Ok(unban_user::v3::Response::new())
}

/// `POST /_matrix/client/v3/knock/{roomIdOrAlias}?via=`: locally, or through another server
/// (`federation::knock`).
pub async fn knock(s: State, r: Ruma<knock_room::v3::Request>) -> Result<knock_room::v3::Response> {
    r.auth()?.ensure_not_suspended()?;
    let user = r.auth()?.user_id.clone();
    let b = r.body;
    let room_id = federation::knock::knock(&s, &user, &b.room_id_or_alias, b.via, b.reason).await?;
    Ok(knock_room::v3::Response::new(room_id))
}

/// Rooms per page of `GET /mutual_rooms`.
const MUTUAL_ROOMS_PAGE: usize = 100;

/// `GET /_matrix/client/v1/mutual_rooms?user_id=&from=`: rooms shared with another user, 100 a
/// page; `next_batch` is the last room of the page. An unknown user shares no rooms.
pub async fn mutual_rooms(s: State, r: Ruma<get_mutual_rooms::v1::Request>) -> Result<get_mutual_rooms::v1::Response> {
    let user = &r.auth()?.user_id;
    let other = &r.body.user_id;
    if other == user {
        return Err(Error::invalid_param("user_id must be another user"));
    }
    let after = match r.body.from.as_deref() {
        Some(from) => Some(ruma::RoomId::parse(from).map_err(|_| Error::invalid_param("Invalid from token"))?),
        None => None,
    };
    let rooms = membership::mutual_rooms(&s, user, other)?;
    let rest: Vec<_> = rooms.into_iter().filter(|r| after.as_ref().is_none_or(|a| r > a)).collect();
    let count = ruma::UInt::try_from(rest.len()).unwrap_or(ruma::UInt::MAX);
    let page = rest.iter().take(MUTUAL_ROOMS_PAGE).cloned().collect();
    let mut response = get_mutual_rooms::v1::Response::new(count, page);
    if rest.len() > MUTUAL_ROOMS_PAGE {
        response.next_batch = response.joined.last().map(|r| r.to_string());
    }
    Ok(response)
}

/// `GET /_matrix/client/v3/joined_rooms`
pub async fn joined_rooms(s: State, r: Ruma<joined_rooms::v3::Request>) -> Result<joined_rooms::v3::Response> {
    let user = r.auth()?.user_id.clone();
    let rooms = membership::joined_rooms(&s, &user)?;
    Ok(joined_rooms::v3::Response::new(rooms))
}
