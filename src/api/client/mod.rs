//! Client-Server API handlers, one spec area per file. [`routes`] registers each from its
//! ruma request type's metadata.

pub mod account;
pub mod account_data;
pub mod admin;
pub mod devices;
pub mod discovery;
pub mod ephemeral;
pub mod keys;
pub mod login;
pub mod msisdn;
pub mod openid;
pub mod profile;
pub mod push_rules;
pub mod register;
pub mod room_info;
pub mod rooms;
pub mod session;
pub mod sync;

use axum::Router;
use ruma::api::client as c;
use ruma::api::federation::discovery::discover_homeserver as fed_discovery;

use super::ruma::route;
use crate::services::State;

pub fn routes(r: Router<State>) -> Router<State> {
    let r = route::<c::discovery::get_supported_versions::Request, _, _, _>(r, discovery::versions);
    let r = route::<c::discovery::get_capabilities::v3::Request, _, _, _>(r, discovery::capabilities);
    let r = route::<c::discovery::discover_homeserver::Request, _, _, _>(r, discovery::well_known_client);
    let r = route::<fed_discovery::Request, _, _, _>(r, discovery::well_known_server);
    let r = route::<c::discovery::discover_support::Request, _, _, _>(r, discovery::well_known_support);
    let r = route::<c::discovery::discover_policy_server::Request, _, _, _>(r, discovery::well_known_policy_server);

    let r = route::<c::account::register::v3::Request, _, _, _>(r, register::register);
    let r = route::<c::account::get_username_availability::v3::Request, _, _, _>(r, register::available);
    let r = route::<c::account::check_registration_token_validity::v1::Request, _, _, _>(r, register::token_validity);

    let r = route::<c::session::get_login_types::v3::Request, _, _, _>(r, login::login_types);
    let r = route::<c::session::login::v3::Request, _, _, _>(r, login::login);
    let r = route::<c::session::get_login_token::v1::Request, _, _, _>(r, login::get_token);
    let r = route::<c::session::refresh_token::v3::Request, _, _, _>(r, session::refresh);
    let r = route::<c::session::logout::v3::Request, _, _, _>(r, session::logout);
    let r = route::<c::session::logout_all::v3::Request, _, _, _>(r, session::logout_all);
    let r = route::<c::account::whoami::v3::Request, _, _, _>(r, session::whoami);
    let r = route::<c::account::request_openid_token::v3::Request, _, _, _>(r, openid::request_token);
    let r = route::<c::admin::get_user_info::v3::Request, _, _, _>(r, admin::whois);
    let r = route::<c::admin::is_user_suspended::v1::Request, _, _, _>(r, admin::is_suspended);
    let r = route::<c::admin::suspend_user::v1::Request, _, _, _>(r, admin::suspend);
    let r = route::<c::admin::is_user_locked::v1::Request, _, _, _>(r, admin::is_locked);
    let r = route::<c::admin::lock_user::v1::Request, _, _, _>(r, admin::lock);

    let r = route::<c::account::change_password::v3::Request, _, _, _>(r, account::change_password);
    let r = route::<c::account::deactivate::v3::Request, _, _, _>(r, account::deactivate);
    let r = route::<c::account::get_3pids::v3::Request, _, _, _>(r, account::threepids);
    let r = route::<c::account::request_3pid_management_token_via_msisdn::v3::Request, _, _, _>(r, msisdn::add_token);
    let r = route::<c::account::request_registration_token_via_msisdn::v3::Request, _, _, _>(r, msisdn::register_token);
    let r =
        route::<c::account::request_password_change_token_via_msisdn::v3::Request, _, _, _>(r, msisdn::password_token);

    let r = route::<c::device::get_devices::v3::Request, _, _, _>(r, devices::list);
    let r = route::<c::device::get_device::v3::Request, _, _, _>(r, devices::get);
    let r = route::<c::device::update_device::v3::Request, _, _, _>(r, devices::update);
    let r = route::<c::device::delete_device::v3::Request, _, _, _>(r, devices::delete);
    let r = route::<c::device::delete_devices::v3::Request, _, _, _>(r, devices::delete_many);

    let r = route::<c::profile::get_profile::v3::Request, _, _, _>(r, profile::get_all);
    let r = route::<c::profile::get_profile_field::v3::Request, _, _, _>(r, profile::get_field);
    let r = route::<c::profile::set_profile_field::v3::Request, _, _, _>(r, profile::set_field);
    let r = route::<c::profile::delete_profile_field::v3::Request, _, _, _>(r, profile::delete_field);

    let r = route::<c::config::get_global_account_data::v3::Request, _, _, _>(r, account_data::get_global);
    let r = route::<c::config::set_global_account_data::v3::Request, _, _, _>(r, account_data::set_global);
    let r = route::<c::config::get_room_account_data::v3::Request, _, _, _>(r, account_data::get_room);
    let r = route::<c::config::set_room_account_data::v3::Request, _, _, _>(r, account_data::set_room);
    let r = route::<c::filter::create_filter::v3::Request, _, _, _>(r, account_data::create_filter);
    let r = route::<c::filter::get_filter::v3::Request, _, _, _>(r, account_data::get_filter);
    let r = route::<c::push::get_pushrules_all::v3::Request, _, _, _>(r, push_rules::all);
    let r = route::<c::push::get_pushrules_global_scope::v3::Request, _, _, _>(r, push_rules::global);
    let r = route::<c::push::get_pushrule::v3::Request, _, _, _>(r, push_rules::get);
    let r = route::<c::push::set_pushrule::v3::Request, _, _, _>(r, push_rules::put);
    let r = route::<c::push::delete_pushrule::v3::Request, _, _, _>(r, push_rules::delete);
    let r = route::<c::push::get_pushrule_enabled::v3::Request, _, _, _>(r, push_rules::get_enabled);
    let r = route::<c::push::set_pushrule_enabled::v3::Request, _, _, _>(r, push_rules::set_enabled);
    let r = route::<c::push::get_pushrule_actions::v3::Request, _, _, _>(r, push_rules::get_actions);
    let r = route::<c::push::set_pushrule_actions::v3::Request, _, _, _>(r, push_rules::set_actions);
    let r = rooms::routes(r);
    let r = room_info::routes(r);
    let r = keys::routes(r);
    let r = ephemeral::routes(r);
    sync::routes(r)
}
