//! `GET /pushrules/`, `GET /pushrules/global/`, `GET/PUT/DELETE /pushrules/global/{kind}/{ruleId}`
//! and its `/enabled` and `/actions` (spec: "Push Rules: API").
//!
//! Every change is stored as the `m.push_rules` account data, so the user's other devices get it
//! in `/sync`. Rule IDs starting with `.` are the server's: they can be disabled or given other
//! actions, not created or deleted (400 `M_INVALID_PARAM`).

use ruma::api::client::push::{
    delete_pushrule, get_pushrule, get_pushrule_actions, get_pushrule_enabled, get_pushrules_all,
    get_pushrules_global_scope, set_pushrule, set_pushrule_actions, set_pushrule_enabled,
};

use crate::api::ruma::Ruma;
use crate::error::Result;
use crate::push::rules;
use crate::services::State;

/// `GET /_matrix/client/v3/pushrules/`
pub async fn all(s: State, r: Ruma<get_pushrules_all::v3::Request>) -> Result<get_pushrules_all::v3::Response> {
    let rules = rules::ruleset(&s.db, &r.auth()?.user_id)?;
    Ok(get_pushrules_all::v3::Response::new((*rules).clone()))
}

/// `GET /_matrix/client/v3/pushrules/global/`
pub async fn global(
    s: State,
    r: Ruma<get_pushrules_global_scope::v3::Request>,
) -> Result<get_pushrules_global_scope::v3::Response> {
    let rules = rules::ruleset(&s.db, &r.auth()?.user_id)?;
    Ok(get_pushrules_global_scope::v3::Response::new((*rules).clone()))
}

/// `GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}`
pub async fn get(s: State, r: Ruma<get_pushrule::v3::Request>) -> Result<get_pushrule::v3::Response> {
    let rule = rules::get(&s.db, &r.auth()?.user_id, &r.body.kind, &r.body.rule_id)?;
    Ok(get_pushrule::v3::Response::new(rule))
}

/// `PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}`: a new rule goes first of its kind
/// unless `before`/`after` place it; an existing one keeps its place.
pub async fn put(s: State, r: Ruma<set_pushrule::v3::Request>) -> Result<set_pushrule::v3::Response> {
    let user_id = r.auth()?.user_id.clone();
    let body = r.body;
    rules::put(&s.db, &user_id, body.rule, body.before.as_deref(), body.after.as_deref())?;
    Ok(set_pushrule::v3::Response::new())
}

/// `DELETE /_matrix/client/v3/pushrules/global/{kind}/{ruleId}`
pub async fn delete(s: State, r: Ruma<delete_pushrule::v3::Request>) -> Result<delete_pushrule::v3::Response> {
    rules::delete(&s.db, &r.auth()?.user_id, &r.body.kind, &r.body.rule_id)?;
    Ok(delete_pushrule::v3::Response::new())
}

/// `GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/enabled`
pub async fn get_enabled(
    s: State,
    r: Ruma<get_pushrule_enabled::v3::Request>,
) -> Result<get_pushrule_enabled::v3::Response> {
    let (enabled, _) = rules::state(&s.db, &r.auth()?.user_id, &r.body.kind, &r.body.rule_id)?;
    Ok(get_pushrule_enabled::v3::Response::new(enabled))
}

/// `PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/enabled`
pub async fn set_enabled(
    s: State,
    r: Ruma<set_pushrule_enabled::v3::Request>,
) -> Result<set_pushrule_enabled::v3::Response> {
    rules::set_enabled(&s.db, &r.auth()?.user_id, &r.body.kind, &r.body.rule_id, r.body.enabled)?;
    Ok(set_pushrule_enabled::v3::Response::new())
}

/// `GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions`
pub async fn get_actions(
    s: State,
    r: Ruma<get_pushrule_actions::v3::Request>,
) -> Result<get_pushrule_actions::v3::Response> {
    let (_, actions) = rules::state(&s.db, &r.auth()?.user_id, &r.body.kind, &r.body.rule_id)?;
    Ok(get_pushrule_actions::v3::Response::new(actions))
}

/// `PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions`
pub async fn set_actions(
    s: State,
    r: Ruma<set_pushrule_actions::v3::Request>,
) -> Result<set_pushrule_actions::v3::Response> {
    let user_id = r.auth()?.user_id.clone();
    let body = r.body;
    rules::set_actions(&s.db, &user_id, &body.kind, &body.rule_id, body.actions)?;
    Ok(set_pushrule_actions::v3::Response::new())
}
