//! `GET /user/{userId}/rooms/{roomId}/tags`, `PUT`/`DELETE /user/{userId}/rooms/{roomId}/tags/{tag}`
//! (spec: "Room Tagging"). Only the user may read or change their own tags.

use ruma::api::client::tag::{create_tag, delete_tag, get_tags};
use serde_json::json;

use crate::api::client::account::ensure_self;
use crate::api::ruma::{RawJson, Ruma};
use crate::error::Result;
use crate::rooms::info::tags;
use crate::services::State;

/// `GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags`
pub async fn get(s: State, r: Ruma<get_tags::v3::Request>) -> Result<RawJson> {
    ensure_self(&r.auth()?.user_id, &r.body.user_id, "tags")?;
    let (user, room) = (r.body.user_id, r.body.room_id);
    let tags = tags::get(&s.db, &user, &room)?;
    Ok(RawJson(json!({ "tags": tags })))
}

/// `PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}`
pub async fn put(s: State, r: Ruma<create_tag::v3::Request>) -> Result<create_tag::v3::Response> {
    ensure_self(&r.auth()?.user_id, &r.body.user_id, "tags")?;
    let b = r.body;
    let order = b.tag_info.order;
    tags::set(&s.db, &b.user_id, &b.room_id, &b.tag, order)?;
    Ok(create_tag::v3::Response::new())
}

/// `DELETE /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}`
pub async fn delete(s: State, r: Ruma<delete_tag::v3::Request>) -> Result<delete_tag::v3::Response> {
    ensure_self(&r.auth()?.user_id, &r.body.user_id, "tags")?;
    let b = r.body;
    tags::delete(&s.db, &b.user_id, &b.room_id, &b.tag)?;
    Ok(delete_tag::v3::Response::new())
}
