//! Room endpoints of the Client-Server API, registered from ruma's metadata.

pub mod create;
pub mod directory;
pub mod events;
pub mod membership;
pub mod peek;
pub mod read;
pub mod relations;

use axum::Router;
use ruma::api::client as c;

use crate::api::ruma::route;
use crate::services::State;

pub fn routes(r: Router<State>) -> Router<State> {
    let r = route::<c::room::create_room::v3::Request, _, _, _>(r, create::create_room);
    let r = route::<c::room::upgrade_room::v3::Request, _, _, _>(r, create::upgrade);
    let r = route::<c::membership::join_room_by_id::v3::Request, _, _, _>(r, membership::join_by_id);
    let r = route::<c::membership::join_room_by_id_or_alias::v3::Request, _, _, _>(r, membership::join);
    let r = route::<c::membership::invite_user::v3::Request, _, _, _>(r, membership::invite);
    let r = route::<c::membership::leave_room::v3::Request, _, _, _>(r, membership::leave);
    let r = route::<c::membership::forget_room::v3::Request, _, _, _>(r, membership::forget);
    let r = route::<c::membership::kick_user::v3::Request, _, _, _>(r, membership::kick);
    let r = route::<c::membership::ban_user::v3::Request, _, _, _>(r, membership::ban);
    let r = route::<c::membership::unban_user::v3::Request, _, _, _>(r, membership::unban);
    let r = route::<c::knock::knock_room::v3::Request, _, _, _>(r, membership::knock);
    let r = route::<c::membership::joined_rooms::v3::Request, _, _, _>(r, membership::joined_rooms);
    let r = route::<c::membership::get_mutual_rooms::v1::Request, _, _, _>(r, membership::mutual_rooms);

    let r = route::<c::message::send_message_event::v3::Request, _, _, _>(r, events::send_message);
    let r = route::<c::state::send_state_event::v3::Request, _, _, _>(r, events::put_state);
    let r = route::<c::state::get_state_event_for_key::v3::Request, _, _, _>(r, events::get_state);
    let r = route::<c::state::get_state_events::v3::Request, _, _, _>(r, events::get_all_state);
    let r = route::<c::room::get_room_event::v3::Request, _, _, _>(r, events::get_event);
    let r = route::<c::redact::redact_event::v3::Request, _, _, _>(r, events::redact);

    let r = route::<c::message::get_message_events::v3::Request, _, _, _>(r, read::messages);
    let r = route::<c::context::get_context::v3::Request, _, _, _>(r, read::context);
    let r = route::<c::peeking::get_current_state::v3::Request, _, _, _>(r, peek::initial_sync);
    let r = route::<c::peeking::listen_to_new_events::v3::Request, _, _, _>(r, peek::events);
    let r = route::<c::membership::get_member_events::v3::Request, _, _, _>(r, read::members);
    let r = route::<c::membership::joined_members::v3::Request, _, _, _>(r, read::joined);

    let r = route::<c::relations::get_relating_events::v1::Request, _, _, _>(r, relations::all);
    let r = route::<c::relations::get_relating_events_with_rel_type::v1::Request, _, _, _>(r, relations::by_rel_type);
    let r = route::<c::relations::get_relating_events_with_rel_type_and_event_type::v1::Request, _, _, _>(
        r,
        relations::by_rel_and_event_type,
    );
    let r = route::<c::threads::get_threads::v1::Request, _, _, _>(r, relations::threads);

    let r = route::<c::alias::get_alias::v3::Request, _, _, _>(r, directory::get);
    let r = route::<c::alias::create_alias::v3::Request, _, _, _>(r, directory::put);
    let r = route::<c::alias::delete_alias::v3::Request, _, _, _>(r, directory::delete);
    let r = route::<c::room::aliases::v3::Request, _, _, _>(r, directory::list);
    let r = route::<c::directory::get_room_visibility::v3::Request, _, _, _>(r, directory::get_visibility);
    let r = route::<c::directory::set_room_visibility::v3::Request, _, _, _>(r, directory::set_visibility);
    let r = route::<c::directory::get_public_rooms::v3::Request, _, _, _>(r, directory::public_rooms);
    route::<c::directory::get_public_rooms_filtered::v3::Request, _, _, _>(r, directory::public_rooms_filtered)
}
