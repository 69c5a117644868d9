//! `PUT /sendToDevice/{eventType}/{txnId}` (spec: "Send-to-Device messaging", "Protocol
//! definitions").

use ruma::api::client::to_device::send_event_to_device;

use super::upload::raw_value;
use crate::api::ruma::Ruma;
use crate::error::{Error, Result};
use crate::keys::to_device::{self, Messages};
use crate::services::State;

/// `PUT /_matrix/client/v3/sendToDevice/{eventType}/{txnId}`
pub async fn send(s: State, r: Ruma<send_event_to_device::v3::Request>) -> Result<send_event_to_device::v3::Response> {
    let auth = r.auth()?.clone();
    let b = r.body;
    let mut messages = Messages::new();
    for (user, targets) in &b.messages {
        let per_user = messages.entry(user.clone()).or_default();
        for (target, raw) in targets {
            let content = raw_value(raw)?;
            if !content.is_object() {
                return Err(Error::bad_json("Message content must be a JSON object"));
            }
            per_user.insert(target.clone(), content);
        }
    }
    to_device::send(&s, (&auth.user_id, &auth.device_id), &b.event_type.to_string(), &b.txn_id, &messages)?;
    Ok(send_event_to_device::v3::Response::new())
}
