//! `GET/PUT /user/{userId}/account_data/{type}`, `.../rooms/{roomId}/account_data/{type}`
//! (spec: "Client Config"); `POST /user/{userId}/filter`, `GET /user/{userId}/filter/{filterId}`
//! (spec: "Filtering").

use ruma::api::client::config::{
    get_global_account_data, get_room_account_data, set_global_account_data, set_room_account_data,
};
use ruma::api::client::filter::{create_filter, get_filter};
use ruma::{RoomId, UserId};
use serde_json::Value;

use super::account::ensure_self;
use crate::api::ruma::{RawJson, Ruma};
use crate::error::{Error, ErrorKind, Result};
use crate::services::State;
use crate::users::account_data;

async fn get(s: &State, user_id: &UserId, room_id: Option<&RoomId>, data_type: String) -> Result<RawJson> {
    let content = account_data::get(&s.db, user_id, room_id, &data_type)?;
    Ok(RawJson(content))
}

async fn set(s: &State, user_id: &UserId, room_id: Option<&RoomId>, data_type: String, raw: &str) -> Result<()> {
    if account_data::is_server_managed(&data_type) {
        return Err(Error::bad_json(format!("Cannot set {data_type} through this API"))
            .with_status(axum::http::StatusCode::METHOD_NOT_ALLOWED));
    }
    let content: Value = serde_json::from_str(raw).map_err(|e| Error::bad_json(e.to_string()))?;
    if !content.is_object() {
        return Err(Error::new(ErrorKind::BadJson, "Account data content must be a JSON object"));
    }
    account_data::set(&s.db, user_id, room_id, &data_type, content)
}

/// `GET /_matrix/client/v3/user/{userId}/account_data/{type}`
pub async fn get_global(s: State, r: Ruma<get_global_account_data::v3::Request>) -> Result<RawJson> {
    ensure_self(&r.auth()?.user_id, &r.body.user_id, "account data")?;
    get(&s, &r.body.user_id, None, r.body.event_type.to_string()).await
}

/// `PUT /_matrix/client/v3/user/{userId}/account_data/{type}`
pub async fn set_global(
    s: State,
    r: Ruma<set_global_account_data::v3::Request>,
) -> Result<set_global_account_data::v3::Response> {
    ensure_self(&r.auth()?.user_id, &r.body.user_id, "account data")?;
    set(&s, &r.body.user_id, None, r.body.event_type.to_string(), r.body.data.json().get()).await?;
    Ok(set_global_account_data::v3::Response::new())
}

/// `GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}`
pub async fn get_room(s: State, r: Ruma<get_room_account_data::v3::Request>) -> Result<RawJson> {
    ensure_self(&r.auth()?.user_id, &r.body.user_id, "account data")?;
    get(&s, &r.body.user_id, Some(&r.body.room_id), r.body.event_type.to_string()).await
}

/// `PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}`
pub async fn set_room(
    s: State,
    r: Ruma<set_room_account_data::v3::Request>,
) -> Result<set_room_account_data::v3::Response> {
    ensure_self(&r.auth()?.user_id, &r.body.user_id, "account data")?;
    let data_type = r.body.event_type.to_string();
    set(&s, &r.body.user_id, Some(&r.body.room_id), data_type, r.body.data.json().get()).await?;
    Ok(set_room_account_data::v3::Response::new())
}

/// `POST /_matrix/client/v3/user/{userId}/filter`
pub async fn create_filter(s: State, r: Ruma<create_filter::v3::Request>) -> Result<create_filter::v3::Response> {
    ensure_self(&r.auth()?.user_id, &r.body.user_id, "filters")?;
    let filter = serde_json::to_value(&r.body.filter).map_err(Error::internal)?;
    let filter_id = account_data::create_filter(&s.db, &r.body.user_id, filter)?;
    Ok(create_filter::v3::Response::new(filter_id))
}

/// `GET /_matrix/client/v3/user/{userId}/filter/{filterId}`
pub async fn get_filter(s: State, r: Ruma<get_filter::v3::Request>) -> Result<RawJson> {
    ensure_self(&r.auth()?.user_id, &r.body.user_id, "filters")?;
    Ok(RawJson(account_data::get_filter(&s.db, &r.body.user_id, &r.body.filter_id)?))
}
