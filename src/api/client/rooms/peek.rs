//! `GET /_matrix/client/v3/rooms/{roomId}/initialSync` and `GET /_matrix/client/v3/events?room_id=`
//! (spec: "Room Previews"): reading a room one may see without joining it, or one left.
//!
//! `/events` long-polls up to `timeout` (at most 60 s) for the room's next events after `from`
//! (default: now), like the deprecated `/events` it replaces.

use std::time::Duration;

use ruma::api::client::peeking::{get_current_state, listen_to_new_events};
use serde_json::json;

use crate::api::ruma::{RawJson, Ruma};
use crate::error::Result;
use crate::rooms::format::{Viewer, client_event};
use crate::rooms::peek;
use crate::services::State;

/// Latest messages in `initialSync`.
const INITIAL_LIMIT: usize = 20;
/// Longest `/events` wait.
const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// `GET /_matrix/client/v3/rooms/{roomId}/initialSync`
pub async fn initial_sync(s: State, r: Ruma<get_current_state::v3::Request>) -> Result<RawJson> {
    let auth = r.auth()?;
    let viewer = Viewer { user_id: &auth.user_id, device_id: Some(auth.device_id.as_str()) };
    let snap = peek::snapshot(&s, &r.body.room_id, &auth.user_id, INITIAL_LIMIT)?;
    let chunk: Vec<_> = snap.messages.iter().map(|e| client_event(&s, e, Some(viewer))).collect::<Result<_>>()?;
    let state: Vec<_> = snap.state.iter().map(|e| client_event(&s, e, None)).collect::<Result<_>>()?;
    let mut out = json!({
        "room_id": r.body.room_id,
        "messages": { "chunk": chunk, "start": snap.start, "end": snap.end },
        "state": state,
        "visibility": if snap.published { "public" } else { "private" },
        "presence": [],
        "receipts": [],
        "account_data": [],
    });
    if let Some(m) = snap.membership {
        out["membership"] = json!(m);
    }
    Ok(RawJson(out))
}

/// `GET /_matrix/client/v3/events?room_id=&from=&timeout=`
pub async fn events(s: State, r: Ruma<listen_to_new_events::v3::Request>) -> Result<RawJson> {
    let auth = r.auth()?;
    let timeout = r.body.timeout.unwrap_or(Duration::from_secs(30)).min(MAX_TIMEOUT);
    let (events, start, end) =
        peek::events(&s, &r.body.room_id, &auth.user_id, r.body.from.as_deref(), timeout).await?;
    let viewer = Viewer { user_id: &auth.user_id, device_id: Some(auth.device_id.as_str()) };
    let chunk: Vec<_> = events.iter().map(|e| client_event(&s, e, Some(viewer))).collect::<Result<_>>()?;
    Ok(RawJson(json!({ "chunk": chunk, "start": start, "end": end })))
}
