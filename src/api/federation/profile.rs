//! `GET /_matrix/federation/v1/query/profile` (spec: Server-Server API, "Querying profile
//! information"): a local user's profile, or one field of it, for another server.

use ruma::api::federation::query::get_profile_information::v1 as profile;

use crate::api::ruma::{RawJson, Ruma};
use crate::error::{Error, Result};
use crate::services::State;
use crate::users::profile as profiles;

/// `GET /_matrix/federation/v1/query/profile`
pub async fn query_profile(s: State, r: Ruma<profile::Request>) -> Result<RawJson> {
    let origin = r.origin()?;
    let user_id = &r.body.user_id;
    if !s.is_local(user_id) {
        return Err(Error::invalid_param(format!("{user_id} is not a user of this server")));
    }
    tracing::debug!(%origin, %user_id, "profile query");
    let map = match &r.body.field {
        Some(field) => {
            let value = profiles::get_field(&s.db, user_id, field.as_str())?;
            serde_json::Map::from_iter([(field.as_str().to_owned(), value)])
        }
        None => profiles::get_all(&s.db, user_id)?,
    };
    Ok(RawJson(serde_json::Value::Object(map)))
}
