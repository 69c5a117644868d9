//! Server-Server API handlers, one spec area per file, served only on the federation
//! listener. [`routes`] registers each from its ruma request type's metadata, like the client
//! routes; endpoints that require `X-Matrix` get the verified origin in `Ruma::origin`.

pub mod backfill;
pub mod directory;
pub mod events;
pub mod invite;
pub mod keys;
pub mod membership;
pub mod notary;
pub mod openid;
pub mod profile;
pub mod send;
pub mod timestamp;
pub mod user_keys;
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
    let r = route::<f::openid::get_openid_userinfo::v1::Request, _, _, _>(r, openid::userinfo);
    let r = route::<f::transactions::send_transaction_message::v1::Request, _, _, _>(r, send::send_transaction);
    let r = route::<f::membership::create_join_event::v2::Request, _, _, _>(r, send::join);
    let r = route::<f::membership::create_leave_event::v2::Request, _, _, _>(r, send::leave);
    let r = route::<f::membership::create_knock_event::v1::Request, _, _, _>(r, send::knock);
    serving(r)
}

/// Endpoints that serve rooms, users and keys to other servers, and membership templates.
fn serving(r: Router<State>) -> Router<State> {
    let r = route::<f::event::get_event::v1::Request, _, _, _>(r, events::event);
    let r = route::<f::event::get_room_state::v1::Request, _, _, _>(r, events::room_state);
    let r = route::<f::event::get_room_state_ids::v1::Request, _, _, _>(r, events::room_state_ids);
    let r = route::<f::authorization::get_event_authorization::v1::Request, _, _, _>(r, events::auth_chain);
    let r = route::<f::backfill::get_backfill::v1::Request, _, _, _>(r, backfill::get_backfill);
    let r = route::<f::event::get_missing_events::v1::Request, _, _, _>(r, backfill::get_missing_events);
    let r = route::<f::event::get_event_by_timestamp::v1::Request, _, _, _>(r, timestamp::timestamp_to_event);
    let r = route::<f::membership::prepare_join_event::v1::Request, _, _, _>(r, membership::join);
    let r = route::<f::membership::prepare_leave_event::v1::Request, _, _, _>(r, membership::leave);
    let r = route::<f::membership::prepare_knock_event::v1::Request, _, _, _>(r, membership::knock);
    let r = route::<f::membership::create_invite::v2::Request, _, _, _>(r, invite::invite_v2);
    let r = route::<f::query::get_room_information::v1::Request, _, _, _>(r, directory::room_alias);
    let r = route::<f::directory::get_public_rooms::v1::Request, _, _, _>(r, directory::public_rooms_get);
    let r = route::<f::directory::get_public_rooms_filtered::v1::Request, _, _, _>(r, directory::public_rooms_post);
    let r = route::<f::space::get_hierarchy::v1::Request, _, _, _>(r, directory::space_hierarchy);
    let r = route::<f::device::get_devices::v1::Request, _, _, _>(r, user_keys::user_devices);
    let r = route::<f::keys::get_keys::v1::Request, _, _, _>(r, user_keys::keys_query);
    route::<f::keys::claim_keys::v1::Request, _, _, _>(r, user_keys::keys_claim)
}
