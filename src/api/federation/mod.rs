//! Server-Server API handlers, one spec area per file, served only on the federation
//! listener. [`routes`] registers each from its ruma request type's metadata, like the client
//! routes; endpoints that require `X-Matrix` get the verified origin in `Ruma::origin`.

pub mod keys;
pub mod notary;
pub mod profile;
pub mod send;
pub mod version;

use axum::Router;
use ruma::api::federation as f;

use super::ruma::route;
use crate::services::State;

pub fn routes(r: Router<State>) -> Router<State> {
    let r = route::<f::discovery::get_server_version::v1::Request, _, _, _>(r, version::version);
    let r = route::<f::discovery::get_server_keys::v2::Request, _, _, _>(r, keys::server_keys);
    let r = route::<f::discovery::get_remote_server_keys::v2::Request, _, _, _>(r, notary::query);
    let r = route::<f::discovery::get_remote_server_keys_batch::v2::Request, _, _, _>(r, notary::query_batch);
    let r = route::<f::query::get_profile_information::v1::Request, _, _, _>(r, profile::query_profile);
    let r = route::<f::transactions::send_transaction_message::v1::Request, _, _, _>(r, send::send_transaction);
    let r = route::<f::membership::create_join_event::v2::Request, _, _, _>(r, send::join);
    let r = route::<f::membership::create_leave_event::v2::Request, _, _, _>(r, send::leave);
    route::<f::membership::create_knock_event::v1::Request, _, _, _>(r, send::knock)
}
