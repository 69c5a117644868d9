//! Which events notify a user, and which highlight, by the spec's predefined push rules
//! (spec: Client-Server API "Push Rules", "Predefined Rules"), evaluated with ruma.
//!
//! Users cannot edit push rules yet, so everyone has the server defaults: ruma's
//! `Ruleset::server_default`, plus the legacy mention rules (`.m.rule.contains_display_name`,
//! `.m.rule.contains_user_name`, `.m.rule.roomnotif`) that clients which do not send `m.mentions`
//! still rely on. ruma skips those for events that carry `m.mentions`, as the spec says.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use ruma::events::AnySyncTimelineEvent;
use ruma::power_levels::NotificationPowerLevels;
use ruma::push::{
    Action, ConditionalPushRule, FlattenedJson, PatternedPushRule, PushConditionPowerLevelsCtx, PushConditionRoomCtx,
    Ruleset,
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
    rules: Ruleset,
    ctx: PushConditionRoomCtx,
}

impl Evaluator {
    /// The default rules of `user_id` in the room's current state (member count, the user's
    /// display name there, power levels for `@room`).
    pub fn new(s: &Services, room_id: &RoomId, user_id: &UserId) -> Result<Evaluator> {
        let members = s.db.scan_prefix(ROOM_MEMBERSHIPS, &room_id.to_string())?;
        let joined = members.iter().filter(|(_, m)| m.membership == "join").count();
        let display_name = current_state_content(s, room_id, "m.room.member", user_id.as_str())?
            .and_then(|c| c.get("displayname").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_default();
        let mut ctx = PushConditionRoomCtx::new(
            room_id.to_owned(),
            UInt::try_from(joined).unwrap_or(UInt::MAX),
            user_id.to_owned(),
            display_name,
        );
        ctx.power_levels = Some(power_levels(s, room_id)?);
        Ok(Evaluator { rules: default_rules(user_id), ctx })
    }

    /// The outcome for an event flattened with [`flatten`]: the actions of the first rule that
    /// applies (spec: "Push Rules", evaluation order), none for the user's own events.
    pub fn evaluate(&self, event: &FlattenedJson) -> Outcome {
        if event.get_str("sender").is_some_and(|sender| sender == self.ctx.user_id.as_str()) {
            return Outcome::default();
        }
        // Nothing in the default rules awaits (no thread subscriptions): the futures are ready.
        let rule = self.rules.iter().find(|rule| ready(rule.applies(event, &self.ctx)).unwrap_or(false));
        let actions = rule.map(|r| r.actions()).unwrap_or_default();
        Outcome {
            notify: actions.iter().any(Action::should_notify),
            highlight: actions.iter().any(Action::is_highlight),
        }
    }
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
    if let Some(create) = current_state_event(s, room_id, "m.room.create", "")? {
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
    match current_state_content(s, room_id, "m.room.power_levels", "")? {
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
