//! `GET /rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]`, `GET /rooms/{roomId}/threads`
//! (spec: "Relationships", "Threading").

use ruma::api::Direction;
use ruma::api::client::relations::{
    get_relating_events, get_relating_events_with_rel_type, get_relating_events_with_rel_type_and_event_type,
};
use ruma::api::client::threads::get_threads;
use ruma::{OwnedEventId, OwnedRoomId, UInt};
use serde_json::json;

use crate::api::ruma::{RawJson, Ruma};
use crate::error::{Error, Result};
use crate::rooms::format::{Viewer, client_event};
use crate::rooms::relations::{self, RelationsQuery};
use crate::services::State;
use crate::users::tokens::Auth;

/// The parts of the three `/relations` requests.
struct Query {
    room_id: OwnedRoomId,
    event_id: OwnedEventId,
    rel_type: Option<String>,
    event_type: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<UInt>,
    backwards: bool,
    recurse: bool,
}

impl Query {
    /// The fields every `/relations` variant has.
    #[allow(clippy::too_many_arguments)]
    fn common(
        room_id: OwnedRoomId,
        event_id: OwnedEventId,
        from: Option<String>,
        to: Option<String>,
        limit: Option<UInt>,
        dir: Direction,
        recurse: bool,
    ) -> Query {
        let backwards = dir == Direction::Backward;
        Query { room_id, event_id, rel_type: None, event_type: None, from, to, limit, backwards, recurse }
    }
}

async fn relations_page(s: State, auth: Auth, q: Query) -> Result<RawJson> {
    let limit = q.limit.map_or(50, |l| usize::try_from(u64::from(l)).unwrap_or(1000)).clamp(1, 1000);
    let rq = RelationsQuery {
        rel_type: q.rel_type.as_deref(),
        event_type: q.event_type.as_deref(),
        from: q.from.as_deref(),
        to: q.to.as_deref(),
        limit,
        backwards: q.backwards,
        recurse: q.recurse,
    };
    let (chunk, next, depth) = relations::page(&s, &q.room_id, &q.event_id, &auth.user_id, &rq)?;
    let viewer = Viewer { user_id: &auth.user_id, device_id: Some(auth.device_id.as_str()) };
    let chunk: Vec<_> = chunk.iter().map(|e| client_event(&s, e, Some(viewer))).collect::<Result<_>>()?;
    let mut out = json!({ "chunk": chunk });
    if let Some(n) = next {
        out["next_batch"] = json!(n);
    }
    if let Some(d) = depth {
        out["recursion_depth"] = json!(d);
    }
    Ok(RawJson(out))
}

/// `GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}`
pub async fn all(s: State, r: Ruma<get_relating_events::v1::Request>) -> Result<RawJson> {
    let auth = r.auth()?.clone();
    let b = r.body;
    let q = Query::common(b.room_id, b.event_id, b.from, b.to, b.limit, b.dir, b.recurse);
    relations_page(s, auth, q).await
}

/// `GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}`
pub async fn by_rel_type(s: State, r: Ruma<get_relating_events_with_rel_type::v1::Request>) -> Result<RawJson> {
    let auth = r.auth()?.clone();
    let b = r.body;
    let rel_type = Some(b.rel_type.to_string());
    let q = Query { rel_type, ..Query::common(b.room_id, b.event_id, b.from, b.to, b.limit, b.dir, b.recurse) };
    relations_page(s, auth, q).await
}

/// `GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}`
pub async fn by_rel_and_event_type(
    s: State,
    r: Ruma<get_relating_events_with_rel_type_and_event_type::v1::Request>,
) -> Result<RawJson> {
    let auth = r.auth()?.clone();
    let b = r.body;
    let (rel_type, event_type) = (Some(b.rel_type.to_string()), Some(b.event_type.to_string()));
    let q =
        Query { rel_type, event_type, ..Query::common(b.room_id, b.event_id, b.from, b.to, b.limit, b.dir, b.recurse) };
    relations_page(s, auth, q).await
}

/// `GET /_matrix/client/v1/rooms/{roomId}/threads`
pub async fn threads(s: State, r: Ruma<get_threads::v1::Request>) -> Result<RawJson> {
    let auth = r.auth()?.clone();
    let b = r.body;
    // ruma keeps unknown values; the spec's enum is `all` or `participated`.
    if !matches!(b.include.as_str(), "all" | "participated") {
        return Err(Error::invalid_param(format!("Unknown include {}", b.include.as_str())));
    }
    let participated = b.include == get_threads::v1::IncludeThreads::Participated;
    let limit = b.limit.map_or(50, |l| usize::try_from(u64::from(l)).unwrap_or(1000)).clamp(1, 1000);
    let (roots, next) = relations::threads(&s, &b.room_id, &auth.user_id, participated, b.from.as_deref(), limit)?;
    let viewer = Viewer { user_id: &auth.user_id, device_id: Some(auth.device_id.as_str()) };
    let chunk: Vec<_> = roots.iter().map(|e| client_event(&s, e, Some(viewer))).collect::<Result<_>>()?;
    let mut out = json!({ "chunk": chunk });
    if let Some(n) = next {
        out["next_batch"] = json!(n);
    }
    Ok(RawJson(out))
}
