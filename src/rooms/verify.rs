//! Full verification of a stored event (spec: Server-Server API "Checks performed on receipt of
//! a PDU", "Validating hashes and signatures on received events"): event ID = reference hash,
//! content hash, signatures, the DAG shape, and the authorization rules against its
//! `auth_events` and against the state before it. Federation will run the same checks on
//! arrival; tests run them over whole rooms.

use std::collections::BTreeMap;

use ruma::serde::Base64;
use ruma::signatures::{PublicKeyMap, Verified, verify_event};
use ruma::state_res::{check_state_dependent_auth_rules, check_state_independent_auth_rules};
use ruma::{CanonicalJsonObject, EventId};

use super::{StoredEvent, load, room, rules_for, state, state_event};
use crate::error::{Error, Result};
use crate::services::Services;

/// Keys to verify this server's events with; other servers' come from
/// `Federation::public_key_map`, in the same `PublicKeyMap` shape.
pub fn local_keys(s: &Services) -> PublicKeyMap {
    let key = Base64::new(s.signing_key.key_pair.public_key().to_vec());
    BTreeMap::from([(s.server_name.to_string(), BTreeMap::from([(s.signing_key.key_id(), key)]))])
}

/// Every check an event must pass; the error says which failed.
pub fn verify_stored(s: &Services, ev: &StoredEvent, keys: &PublicKeyMap) -> Result<()> {
    let fail = |what: String| Error::internal(format!("{}: {what}", ev.meta.event_id));
    let rules = rules_for(&room(s, &ev.pdu.room()?)?.room_version)?;
    let obj: CanonicalJsonObject =
        serde_json::from_value(serde_json::Value::clone(&ev.json)).map_err(|e| fail(e.to_string()))?;

    // The reference hash; in room versions 1 and 2 the event's own `event_id` field.
    let id = super::ingest::check::event_id(&obj, &rules).map_err(|e| fail(e.to_string()))?;
    if ev.meta.event_id != id.as_str() {
        return Err(fail(format!("event ID is not the event's ID {id}")));
    }
    match verify_event(keys, &obj, &rules).map_err(|e| fail(format!("signature: {e}")))? {
        Verified::All => {}
        Verified::Signatures if ev.meta.redacted_by.is_some() => {}
        Verified::Signatures => return Err(fail("content hash mismatch".into())),
    }

    let mut max_prev_depth = None;
    for prev in &ev.pdu.prev_events {
        let p = load(s, prev)?.ok_or_else(|| fail(format!("prev event {prev} missing")))?;
        max_prev_depth = max_prev_depth.max(Some(p.pdu.depth));
    }
    let expected_depth = max_prev_depth.map_or(1, |d| d + 1);
    if ev.pdu.depth != expected_depth {
        return Err(fail(format!("depth {} but prev events give {expected_depth}", ev.pdu.depth)));
    }
    for auth in &ev.pdu.auth_events {
        load(s, auth)?.ok_or_else(|| fail(format!("auth event {auth} missing")))?;
    }

    let fetch_event = |id: &EventId| load(s, id).ok().flatten().map(|e| e.pdu);
    check_state_independent_auth_rules(&rules.authorization, &ev.pdu, fetch_event)
        .map_err(|e| fail(format!("auth events: {e}")))?;
    let before = state::load(&s.db, &s.state_cache, ev.meta.state_before)?;
    let fetch_state =
        |ty: &ruma::events::StateEventType, key: &str| state_event(s, &before, ty, key).ok().flatten().map(|e| e.pdu);
    check_state_dependent_auth_rules(&rules.authorization, &ev.pdu, fetch_state)
        .map_err(|e| fail(format!("state before: {e}")))
}
