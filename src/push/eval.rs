//! Which events notify a user, and which highlight, by the user's push rules
//! (spec: Client-Server API "Push Rules"), evaluated with ruma.
//!
//! The server-default rules are ruma's `Ruleset::server_default` plus the legacy mention rules
//! (`.m.rule.contains_display_name`, `.m.rule.contains_user_name`, `.m.rule.roomnotif`) that
//! clients which do not send `m.mentions` still rely on; ruma skips those for events that carry
//! `m.mentions`, as the spec says. The user's own changes come from [`super::rules`].

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use ruma::events::AnySyncTimelineEvent;
use ruma::events::StateEventType;
use ruma::events::room::member::MembershipState;
use ruma::power_levels::NotificationPowerLevels;
use ruma::push::{
    Action, AnyPushRule, ConditionalPushRule, FlattenedJson, PatternedPushRule, PushCondition,
    PushConditionPowerLevelsCtx, PushConditionRoomCtx, Ruleset,
};
use ruma::room_version_rules::RoomPowerLevelsRules;
use ruma::serde::Raw;
use ruma::{Int, OwnedUserId, RoomId, UInt, UserId};
use serde_json::{Value, json};

use crate::error::Result;
use crate::rooms::{StoredEvent, current_state_content, current_state_event, room, rules_for};
use crate::services::Services;
use crate::storage::catalog::ROOM_MEMBERSHIPS;

/// What the rules say about one event for one user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    pub notify: bool,
    pub highlight: bool,
}

/// The user's rules and the room context they are evaluated in.
pub struct Evaluator {
    /// The rules in evaluation order.
    rules: Vec<AnyPushRule>,
    ctx: PushConditionRoomCtx,
    /// Per event type, the positions in `rules` of the rules that can apply to it: enabled, and
    /// not tied to another type by an exact `event_match` on `type`. Most default rules are for
    /// one type (members, tombstones, calls...), so a message is checked against a third of them.
    candidates: Mutex<HashMap<String, Arc<[usize]>>>,
}

impl Evaluator {
    /// The rules of `user_id` in the room's current state (member count, the user's display
    /// name there, power levels for `@room`).
    pub fn new(s: &Services, room_id: &RoomId, user_id: &UserId) -> Result<Evaluator> {
        let members = s.db.scan_prefix(ROOM_MEMBERSHIPS, room_id)?;
        let joined = members.iter().filter(|(_, m)| m.membership == MembershipState::Join).count();
        let display_name = current_state_content(s, room_id, &StateEventType::RoomMember, user_id.as_str())?
            .and_then(|c| c.get("displayname").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_default();
        let mut ctx = PushConditionRoomCtx::new(
            room_id.to_owned(),
            UInt::try_from(joined).unwrap_or(UInt::MAX),
            user_id.to_owned(),
            display_name,
        );
        ctx.power_levels = Some(power_levels(s, room_id)?);
        let rules = super::rules::ruleset(&s.db, user_id)?.iter().map(|r| r.to_owned()).collect();
        Ok(Evaluator { rules, ctx, candidates: Mutex::default() })
    }

    fn candidates(&self, kind: &str) -> Arc<[usize]> {
        let mut cache = crate::ephemeral::lock(&self.candidates);
        if let Some(found) = cache.get(kind) {
            return found.clone();
        }
        let kind_lower = kind.to_lowercase();
        let found: Arc<[usize]> =
            self.rules.iter().enumerate().filter(|(_, r)| may_apply(r, &kind_lower)).map(|(i, _)| i).collect();
        // Event types are few; a room full of odd ones only costs this map its entries.
        if cache.len() < 256 {
            cache.insert(kind.to_owned(), found.clone());
        }
        found
    }

    /// The outcome for an event flattened with [`flatten`]: the actions of the first rule that
    /// applies (spec: "Push Rules", evaluation order), none for the user's own events.
    pub fn evaluate(&self, event: &FlattenedJson) -> Outcome {
        if event.get_str("sender").is_some_and(|sender| sender == self.ctx.user_id.as_str()) {
            return Outcome::default();
        }
        let candidates = self.candidates(event.get_str("type").unwrap_or_default());
        // Nothing in the default rules awaits (no thread subscriptions): the futures are ready.
        let rule = candidates
            .iter()
            .map(|&i| &self.rules[i])
            .find(|rule| ready(rule.applies(event, &self.ctx)).unwrap_or(false));
        let actions = rule.map(|r| r.actions()).unwrap_or_default();
        Outcome {
            notify: actions.iter().any(Action::should_notify),
            highlight: actions.iter().any(Action::is_highlight),
        }
    }
}

/// Whether `rule` can apply to an event of type `kind_lower` (lowercased): it is enabled and no
/// exact `event_match` on `type` names another type. `event_match` compares case-insensitively
/// and, without `*` or `?` in the pattern, whole values (spec: "Conditions").
fn may_apply(rule: &AnyPushRule, kind_lower: &str) -> bool {
    let conditions = match rule {
        AnyPushRule::Override(r) | AnyPushRule::Underride(r) => &r.conditions,
        _ => return rule.enabled(),
    };
    rule.enabled()
        && conditions.iter().all(|c| match c {
            PushCondition::EventMatch(m) if m.key == "type" && !m.pattern.contains(['*', '?']) => {
                m.pattern.to_lowercase() == kind_lower
            }
            _ => true,
        })
}

/// An event as the push rules see it (dotted keys to values).
pub fn flatten(event: &StoredEvent) -> Option<FlattenedJson> {
    let json = serde_json::value::to_raw_value(&*event.json).ok()?;
    Some(FlattenedJson::from_raw(&Raw::<AnySyncTimelineEvent>::from_json(json)))
}

/// Poll a future that never waits exactly once.
fn ready<F: Future>(f: F) -> Option<F::Output> {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// The server-default rules with the legacy mention rules in their places.
pub fn default_rules(user_id: &UserId) -> Ruleset {
    let mut rules = Ruleset::server_default(user_id);
    let highlight = json!([
        "notify",
        { "set_tweak": "sound", "value": "default" },
        { "set_tweak": "highlight" },
    ]);
    let display_name = json!({
        "rule_id": ".m.rule.contains_display_name", "default": true, "enabled": true,
        "conditions": [{ "kind": "contains_display_name" }],
        "actions": highlight,
    });
    let room_notif = json!({
        "rule_id": ".m.rule.roomnotif", "default": true, "enabled": true,
        "conditions": [
            { "kind": "event_match", "key": "content.body", "pattern": "@room" },
            { "kind": "sender_notification_permission", "key": "room" },
        ],
        "actions": ["notify", { "set_tweak": "highlight" }],
    });
    let (display_name, room_notif) = (conditional(display_name), conditional(room_notif));
    let mut ordered = Vec::new();
    for rule in std::mem::take(&mut rules.override_) {
        let after = match rule.rule_id.as_str() {
            ".m.rule.is_user_mention" => display_name.clone(),
            ".m.rule.is_room_mention" => room_notif.clone(),
            _ => None,
        };
        ordered.push(rule);
        ordered.extend(after);
    }
    rules.override_ = ordered.into_iter().collect();
    let user_name = json!({
        "rule_id": ".m.rule.contains_user_name", "default": true, "enabled": true,
        "pattern": user_id.localpart(),
        "actions": highlight,
    });
    if let Ok(rule) = serde_json::from_value::<PatternedPushRule>(user_name) {
        rules.content.insert(rule);
    }
    rules
}

fn conditional(rule: Value) -> Option<ConditionalPushRule> {
    serde_json::from_value(rule).ok()
}

/// Power levels as the `sender_notification_permission` condition needs them.
fn power_levels(s: &Services, room_id: &RoomId) -> Result<PushConditionPowerLevelsCtx> {
    let rules = rules_for(&room(s, room_id)?.room_version)?;
    let mut creators: Vec<OwnedUserId> = Vec::new();
    if let Some(create) = current_state_event(s, room_id, &StateEventType::RoomCreate, "")? {
        creators.push(create.pdu.sender.clone());
        let content = create.pdu.content_value();
        let extra = content.get("additional_creators").and_then(Value::as_array).into_iter().flatten();
        creators.extend(extra.filter_map(|u| u.as_str().and_then(|u| UserId::parse(u).ok())));
    }
    let int = |v: Option<&Value>| {
        v.and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))).map(Int::new_saturating)
    };
    let mut notifications = NotificationPowerLevels::new();
    let mut users = BTreeMap::new();
    let mut users_default = Int::from(0);
    match current_state_content(s, room_id, &StateEventType::RoomPowerLevels, "")? {
        Some(pl) => {
            for (user, level) in pl.get("users").and_then(Value::as_object).into_iter().flatten() {
                if let (Ok(user), Some(level)) = (UserId::parse(user), int(Some(level))) {
                    users.insert(user, level);
                }
            }
            users_default = int(pl.get("users_default")).unwrap_or(users_default);
            if let Some(room) = int(pl.get("notifications").and_then(|n| n.get("room"))) {
                notifications.room = room;
            }
        }
        // Without power levels the creator has 100 (spec: `m.room.power_levels`).
        None => users.extend(creators.first().map(|c| (c.clone(), Int::from(100)))),
    }
    let pl_rules = RoomPowerLevelsRules::new(&rules.authorization, creators);
    Ok(PushConditionPowerLevelsCtx::new(users, users_default, notifications, pl_rules))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(event: Value) -> FlattenedJson {
        let raw = serde_json::value::to_raw_value(&event).unwrap();
        FlattenedJson::from_raw(&Raw::<AnySyncTimelineEvent>::from_json(raw))
    }

    #[test]
    fn candidates_by_type_give_the_full_rulesets_answer() {
        let user = ruma::user_id!("@alice:x");
        let ruleset = default_rules(user);
        let all: Vec<AnyPushRule> = ruleset.iter().map(|r| r.to_owned()).collect();
        let room = ruma::room_id!("!r:x").to_owned();
        let ctx = PushConditionRoomCtx::new(room, UInt::from(2u32), user.to_owned(), "Alice".into());
        let eval = Evaluator { rules: all.clone(), ctx: ctx.clone(), candidates: Mutex::default() };
        let message = eval.candidates("m.room.message");
        let ids: Vec<&str> = message.iter().map(|&i| all[i].rule_id()).collect();
        assert!(ids.contains(&".m.rule.message") && ids.contains(&".m.rule.contains_display_name"));
        assert!(!ids.contains(&".m.rule.member_event") && !ids.contains(&".m.rule.master"), "{ids:?}");
        assert!(message.len() < all.len() / 2 + 4, "{} of {}", message.len(), all.len());

        let events = [
            json!({ "type": "m.room.message", "sender": "@bob:x", "content": { "msgtype": "m.text", "body": "hi" } }),
            json!({ "type": "m.room.message", "sender": "@bob:x", "content": { "msgtype": "m.text", "body": "hi Alice" } }),
            json!({ "type": "m.room.message", "sender": "@bob:x", "content": { "msgtype": "m.notice", "body": "bot" } }),
            json!({ "type": "m.room.message", "sender": "@bob:x", "content": { "body": "@room", "msgtype": "m.text" } }),
            json!({ "type": "m.room.member", "sender": "@bob:x", "state_key": "@alice:x", "content": { "membership": "invite" } }),
            json!({ "type": "m.room.tombstone", "sender": "@bob:x", "state_key": "", "content": { "body": "moved" } }),
            json!({ "type": "m.reaction", "sender": "@bob:x", "content": {} }),
            json!({ "type": "m.room.encrypted", "sender": "@bob:x", "content": {} }),
            json!({ "type": "m.call.invite", "sender": "@bob:x", "content": {} }),
            json!({ "type": "M.Room.Message", "sender": "@bob:x", "content": { "msgtype": "m.text", "body": "x" } }),
        ];
        for event in events {
            let f = flat(event.clone());
            let full = all.iter().find(|r| ready(r.applies(&f, &ctx)).unwrap_or(false)).map(|r| r.rule_id());
            let kind = f.get_str("type").unwrap_or_default().to_owned();
            let fast =
                eval.candidates(&kind).iter().map(|&i| &all[i]).find(|r| ready(r.applies(&f, &ctx)).unwrap_or(false));
            assert_eq!(fast.map(|r| r.rule_id()), full, "{event}");
        }
    }
}
