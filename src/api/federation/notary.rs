//! `GET /_matrix/key/v2/query/{serverName}` and `POST /_matrix/key/v2/query` (spec:
//! Server-Server API, "Querying Keys Through Another Server"): other servers' key responses,
//! signed by them and by us.

use ruma::CanonicalJsonObject;
use ruma::api::federation::discovery::{
    get_remote_server_keys::v2 as query_one, get_remote_server_keys_batch::v2 as query_batch,
};
use serde_json::{Value, json};

use crate::api::ruma::{RawJson, Ruma};
use crate::error::{Error, Result};
use crate::services::State;
use crate::users::now_ms;

/// Servers one batch query may ask about.
const MAX_SERVERS: usize = 100;

fn reply(responses: Vec<CanonicalJsonObject>) -> Result<RawJson> {
    let keys: Vec<Value> =
        responses.into_iter().map(serde_json::to_value).collect::<Result<_, _>>().map_err(Error::internal)?;
    Ok(RawJson(json!({ "server_keys": keys })))
}

/// `GET /_matrix/key/v2/query/{serverName}`
pub async fn query(s: State, r: Ruma<query_one::Request>) -> Result<RawJson> {
    let min = u64::from(r.body.minimum_valid_until_ts.get());
    reply(s.federation.notary_query(&r.body.server_name, min).await?)
}

/// `POST /_matrix/key/v2/query`: every server at once; key IDs are not filtered (the spec
/// lets a notary return all of a server's keys).
pub async fn query_batch(s: State, r: Ruma<query_batch::Request>) -> Result<RawJson> {
    if r.body.server_keys.len() > MAX_SERVERS {
        return Err(Error::invalid_param(format!("At most {MAX_SERVERS} servers per query")));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (server, criteria) in r.body.server_keys {
        let min = criteria.values().filter_map(|c| c.minimum_valid_until_ts).map(|t| u64::from(t.get())).max();
        let s = s.clone();
        tasks.spawn(async move { s.federation.notary_query(&server, min.unwrap_or_else(now_ms)).await });
    }
    let mut all = Vec::new();
    while let Some(result) = tasks.join_next().await {
        all.extend(result.map_err(|e| Error::internal(format!("notary task: {e}")))??);
    }
    reply(all)
}
