//! A user's push rules (spec: "Push Rules"): the global ruleset, stored as the global account
//! data `m.push_rules` (`{"global": ruleset}`), the content Synapse sends in `/sync` too.
//!
//! What is stored is the whole ruleset as last changed; every read refreshes its server-default
//! rules from [`eval::default_rules`] (ruma's `update_with_server_default`: a user's `enabled` and
//! `actions` of a default rule stay, rules ruma added since appear, rules it dropped go). A user
//! who never changed a rule has nothing stored and gets the defaults.

use std::sync::{Arc, Mutex, PoisonError};

use ruma::UserId;
use ruma::events::GlobalAccountDataEventType;
use ruma::push::RuleKind;
use ruma::push::{Action, AnyPushRuleRef, InsertPushRuleError, NewPushRule, RemovePushRuleError, Ruleset};
use serde_json::json;

use super::eval;
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::storage::catalog::ACCOUNT_DATA;
use crate::users::account_data;

/// The account-data type the rules are stored under.
fn data_type() -> String {
    GlobalAccountDataEventType::PushRules.to_string()
}

/// The user's ruleset in evaluation order, kept in memory while their account data is unchanged.
pub fn ruleset(db: &Storage, user_id: &UserId) -> Result<Arc<Ruleset>> {
    db.derived(ACCOUNT_DATA, user_id, "push_rules", || Ok(Arc::new(load(db, user_id)?)))
}

fn load(db: &Storage, user_id: &UserId) -> Result<Ruleset> {
    let stored = db.get(ACCOUNT_DATA, &(user_id, None::<&ruma::RoomId>, data_type().as_str()))?;
    let mut rules = match stored.map(|r| serde_json::from_value::<Ruleset>(r.content["global"].clone())) {
        Some(Ok(rules)) => rules,
        Some(Err(e)) => {
            tracing::warn!(%user_id, error = %e, "stored push rules do not parse; serving the defaults");
            Ruleset::new()
        }
        None => return Ok(eval::default_rules(user_id)),
    };
    rules.update_with_server_default(eval::default_rules(user_id));
    Ok(rules)
}

/// Serialises read-modify-write of one ruleset (two clients editing rules at once keep both
/// edits).
static MODIFY: Mutex<()> = Mutex::new(());

/// Change the user's ruleset with `f` and store it (one account-data write, so the user's other
/// devices see the new rules in `/sync`). Nothing is stored if `f` fails.
fn modify<T>(db: &Storage, user_id: &UserId, f: impl FnOnce(&mut Ruleset) -> Result<T>) -> Result<T> {
    let _guard = MODIFY.lock().unwrap_or_else(PoisonError::into_inner);
    let mut rules = load(db, user_id)?;
    let out = f(&mut rules)?;
    let content = json!({ "global": rules });
    account_data::set(db, user_id, None, &data_type(), content)?;
    Ok(out)
}

fn not_found() -> Error {
    Error::not_found("Unknown push rule")
}

/// One rule (`GET /pushrules/global/{kind}/{ruleId}`).
pub fn get(
    db: &Storage,
    user_id: &UserId,
    kind: &RuleKind,
    rule_id: &str,
) -> Result<ruma::api::client::push::PushRule> {
    let rules = ruleset(db, user_id)?;
    let rule = rules.get(kind.clone(), rule_id).ok_or_else(not_found)?;
    Ok(rule.into())
}

/// A rule's `enabled` and `actions`.
pub fn state(db: &Storage, user_id: &UserId, kind: &RuleKind, rule_id: &str) -> Result<(bool, Vec<Action>)> {
    let rules = ruleset(db, user_id)?;
    let rule: AnyPushRuleRef<'_> = rules.get(kind.clone(), rule_id).ok_or_else(not_found)?;
    Ok((rule.enabled(), rule.actions().to_vec()))
}

/// Add or replace a user-defined rule, placed by `before`/`after` (spec: `PUT
/// /pushrules/global/{kind}/{ruleId}`). Rule IDs starting with `.` are the server's.
pub fn put(db: &Storage, user_id: &UserId, rule: NewPushRule, before: Option<&str>, after: Option<&str>) -> Result<()> {
    if let NewPushRule::Content(r) = &rule
        && r.pattern.is_empty()
    {
        return Err(Error::invalid_param("A content rule needs a non-empty pattern"));
    }
    modify(db, user_id, |rules| {
        rules.insert(rule, after, before).map_err(|e| match e {
            InsertPushRuleError::UnknownRuleId => Error::not_found("The before or after rule does not exist"),
            e => Error::invalid_param(e.to_string()),
        })
    })
}

/// Remove a user-defined rule; the server's rules cannot be removed, only disabled.
pub fn delete(db: &Storage, user_id: &UserId, kind: &RuleKind, rule_id: &str) -> Result<()> {
    modify(db, user_id, |rules| {
        rules.remove(kind.clone(), rule_id).map_err(|e| match e {
            RemovePushRuleError::ServerDefault => {
                Error::invalid_param("Server-default push rules cannot be deleted; disable them instead")
            }
            _ => not_found(),
        })
    })
}

/// Enable or disable a rule (the server's too).
pub fn set_enabled(db: &Storage, user_id: &UserId, kind: &RuleKind, rule_id: &str, enabled: bool) -> Result<()> {
    modify(db, user_id, |rules| rules.set_enabled(kind.clone(), rule_id, enabled).map_err(|_| not_found()))
}

/// Replace a rule's actions (the server's too).
pub fn set_actions(db: &Storage, user_id: &UserId, kind: &RuleKind, rule_id: &str, actions: Vec<Action>) -> Result<()> {
    modify(db, user_id, |rules| rules.set_actions(kind.clone(), rule_id, actions).map_err(|_| not_found()))
}
