//! `GET /_matrix/federation/v1/query/directory`, `GET`/`POST /publicRooms`,
//! `GET /hierarchy/{roomId}` (spec: Server-Server API, "Room Directory", "Public Room
//! Directory", "Spaces").

use ruma::api::federation::directory::{
    get_public_rooms::v1 as public_get, get_public_rooms_filtered::v1 as public_post,
};
use ruma::api::federation::query::get_room_information::v1 as query_directory;
use ruma::api::federation::space::get_hierarchy::v1 as hierarchy;
use serde_json::json;

use crate::api::ruma::{RawJson, Ruma};
use crate::error::Result;
use crate::federation::queries;
use crate::rooms::directory;
use crate::services::State;

/// `GET /_matrix/federation/v1/query/directory?room_alias=`
pub async fn room_alias(s: State, r: Ruma<query_directory::Request>) -> Result<RawJson> {
    r.origin()?;
    let alias = r.body.room_alias;
    Ok(RawJson(queries::room_alias(&s, &alias)?))
}

async fn public_rooms(s: State, term: Option<String>, since: Option<String>, limit: Option<u64>) -> Result<RawJson> {
    let limit = limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX));
    let (chunk, next, prev, total) = directory::list(&s, term.as_deref(), since.as_deref(), limit)?;
    let mut out = json!({ "chunk": chunk, "total_room_count_estimate": total });
    if let Some(n) = next {
        out["next_batch"] = json!(n);
    }
    if let Some(p) = prev {
        out["prev_batch"] = json!(p);
    }
    Ok(RawJson(out))
}

/// `GET /_matrix/federation/v1/publicRooms`
pub async fn public_rooms_get(s: State, r: Ruma<public_get::Request>) -> Result<RawJson> {
    r.origin()?;
    let b = r.body;
    public_rooms(s, None, b.since, b.limit.map(u64::from)).await
}

/// `POST /_matrix/federation/v1/publicRooms`
pub async fn public_rooms_post(s: State, r: Ruma<public_post::Request>) -> Result<RawJson> {
    r.origin()?;
    let b = r.body;
    public_rooms(s, b.filter.generic_search_term, b.since, b.limit.map(u64::from)).await
}

/// `GET /_matrix/federation/v1/hierarchy/{roomId}`
pub async fn space_hierarchy(s: State, r: Ruma<hierarchy::Request>) -> Result<RawJson> {
    let origin = r.origin()?;
    let (room_id, suggested) = (&r.body.room_id, r.body.suggested_only);
    Ok(RawJson(queries::hierarchy(&s, origin, room_id, suggested)?))
}
