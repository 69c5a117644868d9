//! What `/sync` takes from the E2EE (`crate::keys`) and live-data (`crate::ephemeral`) services.
//! One place, so the sync assembly reads as a list of sections.

use std::collections::BTreeMap;

use ruma::{DeviceId, OwnedUserId, RoomId, UserId};
use serde_json::{Value, json};

use crate::error::Result;
use crate::services::Services;

/// Presence activity while a sync or socket is open (a real guard once presence lands).
pub fn activity(_s: &std::sync::Arc<Services>, _user: &UserId, _set_presence: Option<&str>) -> () {}

pub fn to_device(_s: &Services, _user: &UserId, _device: &DeviceId, _since: u64, _upto: u64) -> Result<Vec<Value>> {
    Ok(Vec::new())
}

pub fn ack_to_device(_s: &Services, _user: &UserId, _device: &DeviceId, _upto: u64) -> Result<()> {
    Ok(())
}

pub fn device_lists(_s: &Services, _user: &UserId, _since: u64, _upto: u64) -> Result<(Vec<OwnedUserId>, Vec<OwnedUserId>)> {
    Ok((Vec::new(), Vec::new()))
}

pub fn one_time_key_counts(_s: &Services, _user: &UserId, _device: &DeviceId) -> Result<BTreeMap<String, u64>> {
    Ok(BTreeMap::new())
}

pub fn unused_fallback_key_types(_s: &Services, _user: &UserId, _device: &DeviceId) -> Result<Vec<String>> {
    Ok(Vec::new())
}

pub fn typing(_s: &Services, _room: &RoomId, _since: u64) -> Option<Value> {
    None
}

pub fn receipts(_s: &Services, _room: &RoomId, _viewer: &UserId, _since: u64, _upto: u64) -> Result<Option<Value>> {
    Ok(None)
}

pub fn presence(_s: &Services, _viewer: &UserId, _since: u64, _upto: u64) -> Result<Vec<Value>> {
    Ok(Vec::new())
}

pub fn unread_counts(_s: &Services, _room: &RoomId, _user: &UserId) -> Result<(Value, Value)> {
    Ok((json!({ "notification_count": 0, "highlight_count": 0 }), json!({})))
}
