//! The key notary (spec: Server-Server API, "Querying Keys Through Another Server"): other
//! servers' key responses, each still signed by its server and now also by us.

use ruma::{CanonicalJsonObject, ServerName};

use super::Federation;
use crate::error::Result;

impl Federation {
    /// Key responses for `server` valid until at least `min_valid_until_ts`: ours for our own
    /// name; for others the stored response, fetched again from the server if it is not valid
    /// long enough (a stale one is still returned when the server cannot be reached). Empty if
    /// nothing is known.
    pub async fn notary_query(&self, server: &ServerName, min_valid_until_ts: u64) -> Result<Vec<CanonicalJsonObject>> {
        if server == self.server_name {
            return Ok(vec![self.own_key_response()?]);
        }
        let mut set = self.cached_keys(server).await?;
        let _turn = if set.response_valid_until() < min_valid_until_ts {
            // Wait for a fetch in flight, then look again.
            let turn = self.fetching.lock(server).await;
            set = self.cached_keys(server).await?;
            Some(turn)
        } else {
            None
        };
        if set.response_valid_until() < min_valid_until_ts && self.may_fetch(server, set.refresh_at()) {
            match self.fetch_direct(server).await {
                Ok(()) => set = self.cached_keys(server).await?,
                Err(e) => tracing::info!(%server, error = %e, "notary: fetching keys failed"),
            }
        }
        let Some(mut response) = set.response else { return Ok(Vec::new()) };
        self.sign(&mut response)?;
        Ok(vec![response])
    }
}
