//! `PUT /rooms/{roomId}/typing/{userId}` (spec: "Typing Notifications").

use ruma::api::client::typing::create_typing_event::v3::{Request, Response, Typing};

use crate::api::ruma::Ruma;
use crate::ephemeral::typing;
use crate::error::{Error, Result};
use crate::services::State;

/// `PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId}`: only for oneself (`M_FORBIDDEN`),
/// in a room one is joined to (`M_FORBIDDEN`; `M_NOT_FOUND` for an unknown room).
pub async fn put(s: State, r: Ruma<Request>) -> Result<Response> {
    let user = r.auth()?.user_id.clone();
    let b = r.body;
    if b.user_id != user {
        return Err(Error::forbidden("You may only set your own typing state"));
    }
    let timeout = match b.state {
        Typing::Yes(info) => Some(info.timeout),
        Typing::No => None,
    };
    typing::set(&s, &b.room_id, &user, timeout)?;
    Ok(Response::new())
}
