//! `GET /profile/{userId}`, `GET/PUT/DELETE /profile/{userId}/{keyName}`
//! (spec: "Profiles", with v1.16 extended profile fields). Other servers' users are looked up
//! over federation.

use ruma::api::client::profile::{delete_profile_field, get_profile, get_profile_field, set_profile_field};
use ruma::api::federation::query::get_profile_information::v1 as query_profile;
use ruma::profile::ProfileFieldName;
use ruma::{OwnedUserId, UserId};
use serde_json::{Map, Value, json};

use super::account::ensure_self;
use crate::api::ruma::{RawJson, Ruma};
use crate::error::{Error, Result};
use crate::rooms::membership;
use crate::services::{Services, State};
use crate::users::profile;

/// `GET /_matrix/client/v3/profile/{userId}`
pub async fn get_all(s: State, r: Ruma<get_profile::v3::Request>) -> Result<RawJson> {
    let uid = r.body.user_id;
    if !s.is_local(&uid) {
        return Ok(RawJson(Value::Object(remote(&s, uid, None).await?)));
    }
    let map = profile::get_all(&s.db, &uid)?;
    Ok(RawJson(Value::Object(map)))
}

/// `GET /_matrix/client/v3/profile/{userId}/{keyName}`
pub async fn get_field(s: State, r: Ruma<get_profile_field::v3::Request>) -> Result<RawJson> {
    let (uid, field) = (r.body.user_id, r.body.field.as_str().to_owned());
    if !s.is_local(&uid) {
        let mut map = remote(&s, uid, Some(r.body.field)).await?;
        let value = map.remove(&field).ok_or_else(|| Error::not_found(format!("The user has no {field}")))?;
        return Ok(RawJson(json!({ field: value })));
    }
    let value = profile::get_field(&s.db, &uid, &field)?;
    Ok(RawJson(json!({ field: value })))
}

/// Another server's user: ask their server (`GET /_matrix/federation/v1/query/profile`).
async fn remote(s: &State, user_id: OwnedUserId, field: Option<ProfileFieldName>) -> Result<Map<String, Value>> {
    let server = user_id.server_name().to_owned();
    let mut request = query_profile::Request::new(user_id);
    request.field = field;
    let response = s.federation.send(&server, request).await?;
    Ok(response.into_iter().collect())
}

/// `PUT /_matrix/client/v3/profile/{userId}/{keyName}`
pub async fn set_field(s: State, r: Ruma<set_profile_field::v3::Request>) -> Result<set_profile_field::v3::Response> {
    ensure_self(&r.auth()?.user_id, &r.body.user_id, "the profile")?;
    r.auth()?.ensure_not_suspended()?;
    let uid = r.body.user_id;
    let (field, value) = (r.body.value.field_name().as_str().to_owned(), r.body.value.value().into_owned());
    profile::set_field(&s.db, &uid, &field, value)?;
    propagate(&s, &uid, &field).await?;
    Ok(set_profile_field::v3::Response::new())
}

/// `DELETE /_matrix/client/v3/profile/{userId}/{keyName}`
pub async fn delete_field(
    s: State,
    r: Ruma<delete_profile_field::v3::Request>,
) -> Result<delete_profile_field::v3::Response> {
    ensure_self(&r.auth()?.user_id, &r.body.user_id, "the profile")?;
    r.auth()?.ensure_not_suspended()?;
    let (uid, field) = (r.body.user_id, r.body.field.as_str().to_owned());
    profile::delete_field(&s.db, &uid, &field)?;
    propagate(&s, &uid, &field).await?;
    Ok(delete_profile_field::v3::Response::new())
}

/// A display name or avatar change reaches the user's rooms as new `m.room.member` events.
async fn propagate(s: &Services, user_id: &UserId, field: &str) -> Result<()> {
    if matches!(field, "displayname" | "avatar_url") {
        membership::propagate_profile(s, user_id).await?;
    }
    Ok(())
}
