//! Typing, receipts, presence and TURN (spec: Client-Server API "Typing Notifications",
//! "Receipts", "Presence", "Voice over IP"); the services are in `src/ephemeral`.

pub mod presence;
pub mod receipts;
pub mod typing;
pub mod voip;

use axum::Router;
use ruma::api::client as c;

use crate::api::ruma::route;
use crate::services::State;

pub fn routes(r: Router<State>) -> Router<State> {
    let r = route::<c::typing::create_typing_event::v3::Request, _, _, _>(r, typing::put);
    let r = route::<c::receipt::create_receipt::v3::Request, _, _, _>(r, receipts::post);
    let r = route::<c::presence::set_presence::v3::Request, _, _, _>(r, presence::put);
    let r = route::<c::presence::get_presence::v3::Request, _, _, _>(r, presence::get);
    route::<c::voip::get_turn_server_info::v3::Request, _, _, _>(r, voip::turn_server)
}
