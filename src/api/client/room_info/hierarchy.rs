//! `GET /_matrix/client/v1/rooms/{roomId}/hierarchy` (spec: "Spaces").

use ruma::api::client::space::get_hierarchy;

use crate::api::ruma::{RawJson, Ruma};
use crate::error::Result;
use crate::federation::lookups;
use crate::services::State;

/// `GET /_matrix/client/v1/rooms/{roomId}/hierarchy?from=&limit=&max_depth=&suggested_only=`
pub async fn get(s: State, r: Ruma<get_hierarchy::v1::Request>) -> Result<RawJson> {
    let user = r.auth()?.user_id.clone();
    let b = r.body;
    let to_usize = |n: ruma::UInt| usize::try_from(u64::from(n)).unwrap_or(usize::MAX);
    let page = (b.from.as_deref(), b.limit.map(to_usize), b.max_depth.map(to_usize), b.suggested_only);
    Ok(RawJson(lookups::hierarchy(&s, &user, &b.room_id, page).await?))
}
