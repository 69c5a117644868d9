//! `GET /devices`, `GET/PUT/DELETE /devices/{deviceId}`, `POST /delete_devices`
//! (spec: "Device management"). Device objects always carry `last_seen_ip` and `last_seen_ts`.

use ruma::api::client::device::{delete_device, delete_devices, get_device, get_devices, update_device};
use serde_json::{Value, json};

use super::login::uia_reauth;
use crate::api::ruma::{RawJson, Ruma};
use crate::error::{Error, Result};
use crate::services::State;
use crate::users::devices::{self, DeviceView};

fn device_json(d: &DeviceView) -> Value {
    json!({
        "device_id": d.device_id,
        "display_name": d.display_name,
        "last_seen_ip": d.last_seen_ip,
        "last_seen_ts": d.last_seen_ts,
    })
}

/// `GET /_matrix/client/v3/devices`
pub async fn list(s: State, r: Ruma<get_devices::v3::Request>) -> Result<RawJson> {
    let uid = r.auth()?.user_id.clone();
    let list = devices::list_views(&s.db, &uid)?;
    Ok(RawJson(json!({ "devices": list.iter().map(device_json).collect::<Vec<_>>() })))
}

/// `GET /_matrix/client/v3/devices/{deviceId}`
pub async fn get(s: State, r: Ruma<get_device::v3::Request>) -> Result<RawJson> {
    let uid = r.auth()?.user_id.clone();
    let device_id = r.body.device_id;
    let device = devices::get_view(&s.db, &uid, &device_id)?;
    Ok(RawJson(device_json(&device.ok_or_else(|| Error::not_found("Unknown device"))?)))
}

/// `PUT /_matrix/client/v3/devices/{deviceId}`
pub async fn update(s: State, r: Ruma<update_device::v3::Request>) -> Result<update_device::v3::Response> {
    let uid = r.auth()?.user_id.clone();
    let (device_id, name) = (r.body.device_id, r.body.display_name);
    devices::set_display_name(&s.db, &uid, &device_id, name)?;
    Ok(update_device::v3::Response::new())
}

/// `DELETE /_matrix/client/v3/devices/{deviceId}` (User-Interactive Auth). A device that is
/// already gone is 200 too (spec: "removed, or had been removed previously"; as Synapse).
pub async fn delete(s: State, r: Ruma<delete_device::v3::Request>) -> Result<delete_device::v3::Response> {
    let uid = r.auth()?.user_id.clone();
    let device_id = r.body.device_id;
    uia_reauth(&s, r.body.auth.as_ref(), &uid).await?;
    devices::delete(&s.db, &uid, &[&device_id])?;
    Ok(delete_device::v3::Response::new())
}

/// `POST /_matrix/client/v3/delete_devices` (User-Interactive Auth)
pub async fn delete_many(s: State, r: Ruma<delete_devices::v3::Request>) -> Result<delete_devices::v3::Response> {
    let uid = r.auth()?.user_id.clone();
    uia_reauth(&s, r.body.auth.as_ref(), &uid).await?;
    let ids = r.body.devices;
    devices::delete(&s.db, &uid, &ids.iter().map(|d| d.as_ref()).collect::<Vec<_>>())?;
    Ok(delete_devices::v3::Response::new())
}
