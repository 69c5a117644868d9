//! Room information and per-user room data: tags, read markers, reports, timestamp lookup,
//! room summary, space hierarchy, user directory. Registered from ruma's metadata like every endpoint.

pub mod hierarchy;
pub mod read_markers;
pub mod reports;
pub mod summary;
pub mod tags;
pub mod timestamp;
pub mod user_directory;

use axum::Router;
use ruma::api::client as c;

use crate::api::ruma::route;
use crate::services::State;

pub fn routes(r: Router<State>) -> Router<State> {
    let r = route::<c::tag::get_tags::v3::Request, _, _, _>(r, tags::get);
    let r = route::<c::tag::create_tag::v3::Request, _, _, _>(r, tags::put);
    let r = route::<c::tag::delete_tag::v3::Request, _, _, _>(r, tags::delete);
    let r = route::<c::read_marker::set_read_marker::v3::Request, _, _, _>(r, read_markers::set);
    let r = route::<c::room::report_content::v3::Request, _, _, _>(r, reports::event);
    let r = route::<c::room::report_room::v3::Request, _, _, _>(r, reports::room);
    let r = route::<c::reporting::report_user::v3::Request, _, _, _>(r, reports::user);
    let r = route::<c::room::get_event_by_timestamp::v1::Request, _, _, _>(r, timestamp::get);
    let r = route::<c::room::get_summary::v1::Request, _, _, _>(r, summary::get);
    let r = route::<c::space::get_hierarchy::v1::Request, _, _, _>(r, hierarchy::get);
    route::<c::user_directory::search_users::v3::Request, _, _, _>(r, user_directory::search)
}
