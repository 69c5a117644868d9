//! `GET /_matrix/client/v3/sync` (spec: "Syncing").

use axum::Router;
use ruma::api::client::sync::sync_events::v3 as sync_events;

use crate::api::ruma::{RawJson, Ruma, route};
use crate::error::{Error, Result};
use crate::services::State;
use crate::sync::filter::SyncFilter;
use crate::sync::{SyncRequest, parse_token};

pub fn routes(r: Router<State>) -> Router<State> {
    route::<sync_events::Request, _, _, _>(r, sync)
}

/// `GET /_matrix/client/v3/sync`
pub async fn sync(s: State, r: Ruma<sync_events::Request>) -> Result<RawJson> {
    let auth = r.auth()?.clone();
    let b = r.body;
    let filter = match b.filter {
        None => SyncFilter::default(),
        Some(sync_events::Filter::FilterDefinition(def)) => {
            SyncFilter::from_json(&serde_json::to_value(&def).map_err(Error::internal)?)
        }
        Some(sync_events::Filter::FilterId(id)) => {
            let stored = crate::sync::filter::stored(&s, &auth.user_id, &id)
                .map_err(|_| Error::invalid_param("Unknown filter ID"))?;
            SyncFilter::clone(&stored)
        }
        Some(_) => SyncFilter::default(),
    };
    // ruma keeps unknown values; the spec's enum is these three (as Synapse: M_INVALID_PARAM).
    if !matches!(b.set_presence.as_str(), "online" | "offline" | "unavailable") {
        return Err(Error::invalid_param(format!("Unknown set_presence {}", b.set_presence.as_str())));
    }
    let since = b.since.as_deref().map(|t| parse_token(&s, t)).transpose()?;
    let req = SyncRequest {
        since,
        full_state: b.full_state,
        filter,
        timeout: b.timeout.unwrap_or_default(),
        set_presence: Some(b.set_presence.to_string()),
    };
    let response = crate::sync::sync(&s, &auth.user_id, auth.device_id.as_str(), req).await?;
    Ok(RawJson(response))
}
