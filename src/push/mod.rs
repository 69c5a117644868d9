//! Push notifications (spec: Client-Server API "Push Notifications"): each user's push rules
//! ([`rules`]) and what they say about an event ([`eval`]).
//!
//! `ephemeral::unread` counts notifications with [`eval::Evaluator`]; the rules themselves live
//! in the user's global account data `m.push_rules`, so a change reaches every device in `/sync`.

pub mod eval;
pub mod rules;
