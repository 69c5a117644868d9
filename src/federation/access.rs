//! What another server may read of a room (spec: Server-Server API "Server Access Control
//! Lists", "Retrieving events"; Client-Server API "History visibility"): the room's ACL must
//! allow it, it must be in the room (a joined user, or world-readable history), and each event
//! is checked against the history visibility at it for that server's users, like Synapse's
//! `filter_events_for_server`: an event it may not see is sent redacted.

use std::collections::HashMap;

use ruma::canonical_json::redact;
use ruma::events::StateEventType;
use ruma::events::room::member::MembershipState;
use ruma::events::room::server_acl::RoomServerAclEventContent;
use ruma::room_version_rules::RoomVersionRules;
use ruma::{CanonicalJsonObject, RoomId, ServerName, UserId};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::rooms::state::{self, ShortState};
use crate::rooms::{StoredEvent, current_state_content, load_by_short, room, rules_for, short, state_event};
use crate::services::Services;
use crate::storage::catalog::ROOM_MEMBERSHIPS;
use crate::storage::records::RoomRecord;

/// May `server` take part in the room, by its `m.room.server_acl` (spec: Server-Server API
/// "Server Access Control Lists"; ruma's `is_allowed`: host without port, wildcards,
/// `allow_ip_literals`)? Without an ACL, or with one whose content does not parse (as
/// Synapse), yes.
pub fn server_allowed(s: &Services, room_id: &RoomId, server: &ServerName) -> Result<bool> {
    let Some(content) = current_state_content(s, room_id, &StateEventType::RoomServerAcl, "")? else { return Ok(true) };
    match serde_json::from_value::<RoomServerAclEventContent>(content) {
        Ok(acl) => Ok(acl.is_allowed(server)),
        Err(_) => Ok(true),
    }
}

/// 403 `M_FORBIDDEN` when the room's `m.room.server_acl` denies `origin` ([`server_allowed`]).
pub fn check_acl(s: &Services, room_id: &RoomId, origin: &ServerName) -> Result<()> {
    if server_allowed(s, room_id, origin)? {
        Ok(())
    } else {
        Err(Error::forbidden(format!("Server {origin} is denied by the server ACL of {room_id}")))
    }
}

/// Does a user of `server` hold one of `memberships` in the room's current state?
pub fn server_has_member(
    s: &Services,
    room_id: &RoomId,
    server: &ServerName,
    memberships: &[MembershipState],
) -> Result<bool> {
    Ok(s.db
        .scan_prefix(ROOM_MEMBERSHIPS, room_id)?
        .iter()
        .any(|((_, user), m)| memberships.contains(&m.membership) && user.server_name() == server))
}

/// Does a user of `server` hold `join` in the room's current state?
pub fn server_joined(s: &Services, room_id: &RoomId, server: &ServerName) -> Result<bool> {
    server_has_member(s, room_id, server, &[MembershipState::Join])
}

/// Is a user of this server joined to the room?
pub fn is_resident(s: &Services, room_id: &RoomId) -> Result<bool> {
    server_joined(s, room_id, &s.server_name)
}

fn history_visibility(s: &Services, state: &ShortState) -> Result<String> {
    Ok(state_event(s, state, &StateEventType::RoomHistoryVisibility, "")?
        .and_then(|e| e.pdu.content_value().get("history_visibility").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| "shared".into()))
}

/// The room, when `origin` may read it: the room exists (404 `M_NOT_FOUND`), the ACL allows
/// `origin` and one of its users is joined or the history is world-readable (403 `M_FORBIDDEN`).
pub fn ensure_may_read(s: &Services, room_id: &RoomId, origin: &ServerName) -> Result<RoomRecord> {
    let record = room(s, room_id)?;
    check_acl(s, room_id, origin)?;
    if server_joined(s, room_id, origin)? {
        return Ok(record);
    }
    let current = state::load(&s.db, &s.state_cache, record.current_state_group)?;
    if history_visibility(s, &current)? == "world_readable" {
        return Ok(record);
    }
    Err(Error::forbidden(format!("Server {origin} is not in room {room_id}")))
}

/// The stored event of `room_id` with this ID, not rejected: 404 `M_NOT_FOUND` otherwise.
pub fn room_event(s: &Services, room_id: &RoomId, event_id: &ruma::EventId) -> Result<StoredEvent> {
    match crate::rooms::load(s, event_id)? {
        Some(ev) if !ev.meta.rejected && ev.pdu.room()? == *room_id => Ok(ev),
        _ => Err(Error::not_found(format!("Unknown event {event_id} in room {room_id}"))),
    }
}

/// History visibility for one server, with the verdict cached per state group (the events of
/// a page mostly share a few).
pub struct ServerView<'a> {
    s: &'a Services,
    server: &'a ServerName,
    rules: RoomVersionRules,
    verdicts: HashMap<u64, bool>,
}

impl<'a> ServerView<'a> {
    pub fn new(s: &'a Services, room: &RoomRecord, server: &'a ServerName) -> Result<Self> {
        Ok(ServerView { s, server, rules: rules_for(&room.room_version)?, verdicts: HashMap::new() })
    }

    /// May the server see `ev`? `shared` and `world_readable` history: yes; `invited`: if one
    /// of its users was invited or joined at the event; `joined`: if one was joined.
    pub fn may_see(&mut self, ev: &StoredEvent) -> Result<bool> {
        let group = ev.meta.state_after;
        if let Some(v) = self.verdicts.get(&group) {
            return Ok(*v);
        }
        let at = state::load(&self.s.db, &self.s.state_cache, group)?;
        let visibility = history_visibility(self.s, &at)?;
        let verdict = match visibility.as_str() {
            "invited" | "joined" => {
                let memberships = self.memberships(&at)?;
                memberships
                    .iter()
                    .any(|m| *m == MembershipState::Join || (visibility == "invited" && *m == MembershipState::Invite))
            }
            _ => true,
        };
        self.verdicts.insert(group, verdict);
        Ok(verdict)
    }

    /// The memberships of the server's users in a state.
    fn memberships(&self, at: &ShortState) -> Result<Vec<MembershipState>> {
        let mut out = Vec::new();
        for (key, event) in at.iter() {
            let (kind, state_key) = short::statekey_parts(&self.s.db, *key)?;
            if kind != StateEventType::RoomMember
                || !UserId::parse(&state_key).is_ok_and(|u| u.server_name() == self.server)
            {
                continue;
            }
            if let Some(ev) = load_by_short(self.s, *event)?
                && let Some(m) = ev.pdu.content_value().get("membership").and_then(Value::as_str)
            {
                out.push(m.into());
            }
        }
        Ok(out)
    }

    /// The event as this server gets it: its PDU, redacted when it may not see it.
    pub fn pdu(&mut self, ev: &StoredEvent) -> Result<Value> {
        if self.may_see(ev)? {
            return Ok(Value::clone(&ev.json));
        }
        let obj: CanonicalJsonObject = serde_json::from_value(Value::clone(&ev.json)).map_err(Error::internal)?;
        let redacted =
            redact(obj, &self.rules.redaction, None).map_err(|e| Error::internal(format!("redacting: {e}")))?;
        serde_json::to_value(redacted).map_err(Error::internal)
    }
}
