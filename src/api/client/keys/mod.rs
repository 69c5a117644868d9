//! Client-Server API handlers for `src/keys`: end-to-end encryption keys (spec: "End-to-End
//! Encryption") and send-to-device messages (spec: "Send-to-Device messaging").

pub mod claim;
pub mod query;
pub mod to_device;
pub mod upload;

use axum::Router;
use ruma::api::client as c;

use crate::api::ruma::route;
use crate::services::State;

pub fn routes(r: Router<State>) -> Router<State> {
    let r = route::<c::keys::upload_keys::v3::Request, _, _, _>(r, upload::upload);
    let r = route::<c::keys::get_keys::v3::Request, _, _, _>(r, query::query);
    let r = route::<c::keys::claim_keys::v3::Request, _, _, _>(r, claim::claim);
    let r = route::<c::keys::get_key_changes::v3::Request, _, _, _>(r, query::changes);
    route::<c::to_device::send_event_to_device::v3::Request, _, _, _>(r, to_device::send)
}
