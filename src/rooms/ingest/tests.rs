//! The pipeline on a real (temporary) database, with a [`Peer`] that serves hand-built events
//! from a map: closing a gap with `get_missing_events` (oldest first), the `/state_ids`
//! fallback (prev event stored as an outlier, two forward extremities), missing auth events
//! fetched with `event_auth`, rejection and soft failure.

use std::collections::HashMap;

use ruma::events::StateEventType;
use ruma::events::room::member::MembershipState;
use ruma::room_version_rules::RoomVersionRules;
use ruma::signatures::{hash_and_sign_event, reference_hash};
use ruma::{CanonicalJsonObject, EventId, OwnedEventId, OwnedRoomId, RoomId, UserId};
use serde_json::{Value, json};

use super::remote::Peer;
use super::{Outcome, ingest, persist};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::rooms::build::NewEvent;
use crate::rooms::create::{CreateRoom, create};
use crate::rooms::{current_state_event, room, rules_for};
use crate::services::{Services, State};
use crate::users::accounts;

pub(super) fn services() -> (State, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.database.path = dir.path().join("db");
    (Services::new(config).map_err(|e| e.to_string()).unwrap(), dir)
}

/// Serves a fixed set of events; `missing` is the answer to `get_missing_events` (an error when
/// `None`), `state` the answers to `/state_ids`.
#[derive(Default)]
pub(super) struct MapPeer {
    pub(super) events: HashMap<OwnedEventId, CanonicalJsonObject>,
    pub(super) missing: Option<Vec<OwnedEventId>>,
    pub(super) state: HashMap<OwnedEventId, (Vec<OwnedEventId>, Vec<OwnedEventId>)>,
    pub(super) auth: HashMap<OwnedEventId, Vec<OwnedEventId>>,
}

impl Peer for MapPeer {
    async fn missing_events(
        &self,
        _room: &RoomId,
        _earliest: Vec<OwnedEventId>,
        _latest: Vec<OwnedEventId>,
        _limit: u32,
    ) -> Result<Vec<CanonicalJsonObject>> {
        let ids = self.missing.as_ref().ok_or_else(|| Error::not_found("no get_missing_events"))?;
        Ok(ids.iter().map(|id| self.events[id].clone()).collect())
    }
    async fn state_ids(&self, _room: &RoomId, id: &EventId) -> Result<(Vec<OwnedEventId>, Vec<OwnedEventId>)> {
        self.state.get(id).cloned().ok_or_else(|| Error::not_found("no state"))
    }
    async fn event(&self, id: &EventId) -> Result<CanonicalJsonObject> {
        self.events.get(id).cloned().ok_or_else(|| Error::not_found("no event"))
    }
    async fn event_auth(&self, _room: &RoomId, id: &EventId) -> Result<Vec<CanonicalJsonObject>> {
        let ids = self.auth.get(id).ok_or_else(|| Error::not_found("no auth chain"))?;
        Ok(ids.iter().map(|i| self.events[i].clone()).collect())
    }
    /// Like `/backfill`: `v` and their ancestors in the map, deepest first.
    async fn backfill(&self, _room: &RoomId, v: Vec<OwnedEventId>, limit: u32) -> Result<Vec<CanonicalJsonObject>> {
        let depth = |o: &CanonicalJsonObject| match o.get("depth") {
            Some(ruma::CanonicalJsonValue::Integer(d)) => i64::from(*d),
            _ => 0,
        };
        let mut queue = std::collections::BinaryHeap::new();
        let mut seen = std::collections::HashSet::new();
        for id in v {
            if let Some(o) = self.events.get(&id) {
                seen.insert(id.clone());
                queue.push((depth(o), id));
            }
        }
        let mut out = Vec::new();
        while let Some((_, id)) = queue.pop() {
            if out.len() >= limit as usize {
                break;
            }
            let obj = self.events[&id].clone();
            let prevs: Vec<OwnedEventId> =
                serde_json::from_value(serde_json::to_value(&obj["prev_events"]).unwrap()).unwrap();
            for prev in prevs {
                if let Some(o) = self.events.get(&prev)
                    && seen.insert(prev.clone())
                {
                    queue.push((depth(o), prev));
                }
            }
            out.push(obj);
        }
        Ok(out)
    }
}

/// Builds events signed by the server's own key (so no key fetch is needed).
pub(super) struct Builder<'a> {
    pub(super) s: &'a Services,
    pub(super) room_id: OwnedRoomId,
    pub(super) rules: RoomVersionRules,
}

impl Builder<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn event(
        &self,
        sender: &str,
        kind: &str,
        key: Option<&str>,
        content: Value,
        prev: &[&EventId],
        auth: &[&EventId],
        depth: u64,
    ) -> (OwnedEventId, CanonicalJsonObject) {
        let mut v = json!({
            "room_id": self.room_id, "sender": sender, "type": kind, "content": content, "depth": depth,
            "origin_server_ts": 1_700_000_000_000u64, "prev_events": prev, "auth_events": auth,
        });
        if let Some(k) = key {
            v["state_key"] = json!(k);
        }
        let mut obj: CanonicalJsonObject = serde_json::from_value(v).unwrap();
        hash_and_sign_event(self.s.server_name.as_str(), &self.s.signing_key.key_pair, &mut obj, &self.rules.redaction)
            .unwrap();
        let id = EventId::parse(format!("${}", reference_hash(&obj, &self.rules).unwrap())).unwrap();
        (id, obj)
    }
}

fn state_id(s: &Services, room: &RoomId, kind: &StateEventType, key: &str) -> OwnedEventId {
    current_state_event(s, room, kind, key).unwrap().unwrap().meta.event_id
}

fn extremities(s: &Services, room_id: &RoomId) -> Vec<String> {
    let mut e: Vec<String> =
        room(s, room_id).unwrap().forward_extremities.into_iter().map(|(_, id)| id.to_string()).collect();
    e.sort();
    e
}

#[tokio::test]
async fn gaps_are_filled_oldest_first_then_by_state_ids() {
    let (s, _dir) = services();
    let bob = UserId::parse("@bob:localhost").unwrap();
    accounts::create(&s.db, &bob, Default::default()).unwrap();
    let room_id =
        create(&s, &bob, CreateRoom { preset: Some("public_chat".into()), ..Default::default() }).await.unwrap();
    let rules = rules_for(&room(&s, &room_id).unwrap().room_version).unwrap();
    let head = extremities(&s, &room_id);
    let head = EventId::parse(&head[0]).unwrap();
    let head_depth = persist::meta_of(&s, &head).unwrap().unwrap().depth;
    let (pl, jr) = (
        state_id(&s, &room_id, &StateEventType::RoomPowerLevels, ""),
        state_id(&s, &room_id, &StateEventType::RoomJoinRules, ""),
    );
    let b = Builder { s: &s, room_id: room_id.clone(), rules };
    let alice = "@alice:localhost";

    // 2 (join) and 3 (message) are missing when 4 arrives: get_missing_events gives them newest first.
    let (j, join) = b.event(
        alice,
        "m.room.member",
        Some(alice),
        json!({"membership": "join"}),
        &[&head],
        &[&pl, &jr],
        head_depth + 1,
    );
    let (m3, msg3) =
        b.event(alice, "m.room.message", None, json!({"body": "three"}), &[&j], &[&pl, &j], head_depth + 2);
    let (m4, msg4) =
        b.event(alice, "m.room.message", None, json!({"body": "four"}), &[&m3], &[&pl, &j], head_depth + 3);
    let mut peer = MapPeer { missing: Some(vec![m3.clone(), j.clone()]), ..Default::default() };
    peer.events.extend([(j.clone(), join), (m3.clone(), msg3)]);
    let (id, outcome) = ingest(&s, &peer, &room_id, msg4).await.unwrap();
    assert_eq!((id.clone(), outcome), (m4.clone(), Outcome::Accepted));
    for e in [&j, &m3, &m4] {
        let meta = persist::meta_of(&s, e).unwrap().unwrap();
        assert!(!meta.outlier && !meta.rejected && !meta.soft_failed && meta.stream_pos > 0, "{e}: {meta:?}");
    }
    assert_eq!(extremities(&s, &room_id), vec![m4.to_string()]);
    assert_eq!(
        crate::rooms::membership::membership_of(&s, &room_id, &UserId::parse(alice).unwrap()).unwrap(),
        Some(MembershipState::Join)
    );

    // 5 is missing and get_missing_events fails: /state_ids at 5 gives the state, 5 is fetched
    // and stored as an outlier, 6 is accepted beside 4.
    let (m5, msg5) =
        b.event(alice, "m.room.message", None, json!({"body": "five"}), &[&m4], &[&pl, &j], head_depth + 4);
    let (m6, msg6) = b.event(alice, "m.room.message", None, json!({"body": "six"}), &[&m5], &[&pl, &j], head_depth + 5);
    let state: Vec<OwnedEventId> =
        [StateEventType::RoomCreate, StateEventType::RoomPowerLevels, StateEventType::RoomJoinRules]
            .iter()
            .map(|k| state_id(&s, &room_id, k, ""))
            .chain([j.clone(), state_id(&s, &room_id, &StateEventType::RoomMember, bob.as_str())])
            .collect();
    let mut peer = MapPeer::default();
    peer.events.insert(m5.clone(), msg5);
    peer.state.insert(m5.clone(), (state, vec![]));
    assert_eq!(ingest(&s, &peer, &room_id, msg6).await.unwrap(), (m6.clone(), Outcome::Accepted));
    let meta5 = persist::meta_of(&s, &m5).unwrap().unwrap();
    assert!(meta5.outlier && meta5.stream_pos == 0, "{meta5:?}");
    let mut expected = vec![m4.to_string(), m6.to_string()];
    expected.sort();
    assert_eq!(extremities(&s, &room_id), expected);

    // Without any way to learn the state at a missing prev event, the event is dropped.
    let ghost = EventId::parse("$ghostghostghostghostghostghostghostghostgho").unwrap();
    let (m7, msg7) =
        b.event(alice, "m.room.message", None, json!({"body": "seven"}), &[&ghost], &[&pl, &j], head_depth + 6);
    let err = ingest(&s, &MapPeer::default(), &room_id, msg7).await.unwrap_err();
    assert!(err.to_string().contains("missing prev event"), "{err}");
    assert!(persist::meta_of(&s, &m7).unwrap().is_none());
}

#[tokio::test]
async fn auth_events_are_fetched_and_failures_rejected_or_soft_failed() {
    let (s, _dir) = services();
    let bob = UserId::parse("@bob:localhost").unwrap();
    accounts::create(&s.db, &bob, Default::default()).unwrap();
    let room_id =
        create(&s, &bob, CreateRoom { preset: Some("public_chat".into()), ..Default::default() }).await.unwrap();
    let rules = rules_for(&room(&s, &room_id).unwrap().room_version).unwrap();
    let head = EventId::parse(&extremities(&s, &room_id)[0]).unwrap();
    let depth = persist::meta_of(&s, &head).unwrap().unwrap().depth;
    let (pl, jr) = (
        state_id(&s, &room_id, &StateEventType::RoomPowerLevels, ""),
        state_id(&s, &room_id, &StateEventType::RoomJoinRules, ""),
    );
    let b = Builder { s: &s, room_id: room_id.clone(), rules };
    let carol = "@carol:localhost";

    // Carol's join is only known to the peer: her message's auth event comes from event_auth and
    // is stored as an outlier (it is the prev event too, so the message then needs /state_ids).
    let (j, join) =
        b.event(carol, "m.room.member", Some(carol), json!({"membership": "join"}), &[&head], &[&pl, &jr], depth + 1);
    let (m, msg) = b.event(carol, "m.room.message", None, json!({"body": "hi"}), &[&head], &[&pl, &j], depth + 1);
    let mut peer = MapPeer::default();
    peer.events.insert(j.clone(), join);
    peer.auth.insert(m.clone(), vec![j.clone()]);
    // Carol is not a member in the state before the message (its prev is the old head): rejected.
    let (_, outcome) = ingest(&s, &peer, &room_id, msg).await.unwrap();
    assert!(matches!(&outcome, Outcome::Rejected(why) if why.contains("state before")), "{outcome:?}");
    assert!(persist::meta_of(&s, &j).unwrap().unwrap().outlier);
    let meta = persist::meta_of(&s, &m).unwrap().unwrap();
    assert!(meta.rejected && !meta.outlier && meta.stream_pos == 0);
    assert_eq!(extremities(&s, &room_id), vec![head.to_string()], "a rejected event is no extremity");

    // The join itself, then bob bans carol locally; a message of hers on the pre-ban head is
    // authorized by the state before it but not by the current state: soft-failed.
    let (join_id, join_obj) = (j.clone(), peer.events[&j].clone());
    assert_eq!(
        ingest(&s, &MapPeer::default(), &room_id, join_obj).await.unwrap(),
        (join_id.clone(), Outcome::Accepted)
    );
    assert!(!persist::meta_of(&s, &j).unwrap().unwrap().outlier, "the outlier joined the DAG");
    let ban = NewEvent::state(StateEventType::RoomMember, carol, json!({"membership": "ban"}));
    crate::rooms::append::send(&s, &room_id, &bob, ban, None).await.unwrap();
    let (late, late_obj) =
        b.event(carol, "m.room.message", None, json!({"body": "late"}), &[&j], &[&pl, &j], depth + 2);
    assert_eq!(ingest(&s, &MapPeer::default(), &room_id, late_obj).await.unwrap(), (late.clone(), Outcome::SoftFailed));
    let meta = persist::meta_of(&s, &late).unwrap().unwrap();
    assert!(meta.soft_failed && !meta.rejected && meta.stream_pos == 0);
    assert!(!extremities(&s, &room_id).contains(&late.to_string()));
}

/// Another server's `/state_ids` (or `send_join` state) cannot put an event of another room, or
/// one we rejected, into this room's state.
#[tokio::test]
async fn received_state_leaves_out_other_rooms_and_rejected_events() {
    let (s, _dir) = services();
    let bob = UserId::parse("@bob:localhost").unwrap();
    accounts::create(&s.db, &bob, Default::default()).unwrap();
    let public = CreateRoom { preset: Some("public_chat".into()), ..Default::default() };
    let room_id = create(&s, &bob, public.clone()).await.unwrap();
    let other = create(&s, &bob, public).await.unwrap();
    let rules = rules_for(&room(&s, &room_id).unwrap().room_version).unwrap();
    let (create_ev, pl) = (
        state_id(&s, &room_id, &StateEventType::RoomCreate, ""),
        state_id(&s, &room_id, &StateEventType::RoomPowerLevels, ""),
    );
    let foreign_pl = state_id(&s, &other, &StateEventType::RoomPowerLevels, "");

    // Mallory's power levels, not authorized by their auth events: stored as a rejected outlier.
    let b = Builder { s: &s, room_id: room_id.clone(), rules: rules.clone() };
    let mallory = "@mallory:localhost";
    let (bad, bad_obj) =
        b.event(mallory, "m.room.power_levels", Some(""), json!({ "users": { mallory: 100 } }), &[&pl], &[&pl], 10);
    let checked = super::check::format(bad_obj, &rules, &room_id).unwrap();
    persist::store_outliers(&s, &room_id, vec![checked]).await.unwrap();
    assert!(persist::meta_of(&s, &bad).unwrap().unwrap().rejected);

    let state = persist::state_of(&s, &room_id, &[create_ev.clone(), foreign_pl, bad], None).unwrap();
    let ids: Vec<u64> = state.values().copied().collect();
    assert_eq!(ids, [crate::rooms::short::event(&s.db, &create_ev).unwrap()], "only the room's own create event");
}
