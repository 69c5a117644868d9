//! `GET /admin/whois/{userId}`, `GET/PUT /_matrix/client/v1/admin/suspend/{userId}` and
//! `GET/PUT /_matrix/client/v1/admin/lock/{userId}` (spec: "Server Administration",
//! "Account suspension", "Account locking").
//!
//! Only server admins may call them, except `whois` of oneself (as Synapse). Suspension makes an
//! account read-only ([`crate::users::tokens::Auth::ensure_not_suspended`]); a locked account's
//! every request but logout gets 401 `M_USER_LOCKED`.

use ruma::api::client::admin::{get_user_info, is_user_locked, is_user_suspended, lock_user, suspend_user};
use ruma::{MilliSecondsSinceUnixEpoch, UInt, UserId};

use crate::api::ruma::Ruma;
use crate::error::{Error, Result};
use crate::services::State;
use crate::users::{accounts, devices};

/// `M_FORBIDDEN` unless the caller is a server admin.
fn ensure_admin(s: &State, caller: &UserId) -> Result<()> {
    match accounts::get(&s.db, caller)? {
        Some(u) if u.admin => Ok(()),
        _ => Err(Error::forbidden("Only server admins may do this")),
    }
}

/// The local, existing target of an admin action.
fn local_target(s: &State, target: &UserId) -> Result<()> {
    if target.server_name() != s.server_name {
        return Err(Error::invalid_param("Only local users can be suspended or locked"));
    }
    accounts::get_active(&s.db, target).map(drop)
}

/// `GET /_matrix/client/v3/admin/whois/{userId}`: each device with its last connection.
pub async fn whois(s: State, r: Ruma<get_user_info::v3::Request>) -> Result<get_user_info::v3::Response> {
    let target = &r.body.user_id;
    if r.auth()?.user_id != *target {
        ensure_admin(&s, &r.auth()?.user_id)?;
    }
    if accounts::get(&s.db, target)?.is_none() {
        return Err(Error::not_found("Unknown user"));
    }
    let mut response = get_user_info::v3::Response::new();
    response.user_id = Some(target.clone());
    for device in devices::list_views(&s.db, target)? {
        let mut connection = get_user_info::v3::ConnectionInfo::new();
        connection.ip = device.last_seen_ip;
        connection.last_seen =
            device.last_seen_ts.and_then(|ts| UInt::try_from(ts).ok()).map(MilliSecondsSinceUnixEpoch);
        let mut session = get_user_info::v3::SessionInfo::new();
        session.connections.push(connection);
        let mut info = get_user_info::v3::DeviceInfo::new();
        info.sessions.push(session);
        response.devices.insert(device.device_id.to_string(), info);
    }
    Ok(response)
}

/// `GET /_matrix/client/v1/admin/suspend/{userId}`
pub async fn is_suspended(
    s: State,
    r: Ruma<is_user_suspended::v1::Request>,
) -> Result<is_user_suspended::v1::Response> {
    ensure_admin(&s, &r.auth()?.user_id)?;
    local_target(&s, &r.body.user_id)?;
    let record = accounts::get_active(&s.db, &r.body.user_id)?;
    Ok(is_user_suspended::v1::Response::new(record.suspended))
}

/// `PUT /_matrix/client/v1/admin/suspend/{userId}`
pub async fn suspend(s: State, r: Ruma<suspend_user::v1::Request>) -> Result<suspend_user::v1::Response> {
    ensure_admin(&s, &r.auth()?.user_id)?;
    local_target(&s, &r.body.user_id)?;
    let suspended = accounts::set_suspended(&s.db, &r.body.user_id, r.body.suspended)?;
    Ok(suspend_user::v1::Response::new(suspended))
}

/// `GET /_matrix/client/v1/admin/lock/{userId}`
pub async fn is_locked(s: State, r: Ruma<is_user_locked::v1::Request>) -> Result<is_user_locked::v1::Response> {
    ensure_admin(&s, &r.auth()?.user_id)?;
    local_target(&s, &r.body.user_id)?;
    let record = accounts::get_active(&s.db, &r.body.user_id)?;
    Ok(is_user_locked::v1::Response::new(record.locked))
}

/// `PUT /_matrix/client/v1/admin/lock/{userId}`: an admin cannot lock themselves out.
pub async fn lock(s: State, r: Ruma<lock_user::v1::Request>) -> Result<lock_user::v1::Response> {
    let caller = &r.auth()?.user_id;
    ensure_admin(&s, caller)?;
    local_target(&s, &r.body.user_id)?;
    if r.body.locked && *caller == r.body.user_id {
        return Err(Error::invalid_param("Admins cannot lock their own account"));
    }
    let locked = accounts::set_locked(&s.db, &r.body.user_id, r.body.locked)?;
    Ok(lock_user::v1::Response::new(locked))
}
