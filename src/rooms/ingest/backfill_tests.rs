//! Back-filling on a real (temporary) database from a [`MapPeer`]: a room joined "remotely"
//! (state known only as outliers, the join's prev event missing) gets its 30 earlier messages
//! and its creation as history, in order and with working pagination tokens, without any of
//! them reaching `/sync`'s timeline, the forward extremities or the current state; an
//! unauthorized event in the chunk is rejected; `joined` history visibility hides the messages.

use ruma::{CanonicalJsonObject, OwnedEventId, RoomId, UserId};
use serde_json::{Value, json};

use super::backfill::{backfill_from, backward_extremities};
use super::check;
use super::tests::{Builder, MapPeer, services};
use super::{Outcome, ingest, persist};
use crate::rooms::read::{self, EventFilter};
use crate::rooms::{room, rules_for, short};
use crate::services::{Services, State};
use crate::storage::catalog::{ROOM_TIMELINE, ROOMS};
use crate::storage::records::RoomRecord;

struct Joined {
    s: State,
    _dir: tempfile::TempDir,
    room_id: ruma::OwnedRoomId,
    peer: MapPeer,
    join: OwnedEventId,
    /// The ids of the messages, oldest first.
    messages: Vec<OwnedEventId>,
}

/// A v10 room of alice's with 30 messages (the 15th sent by mallory, who is no member), then
/// bob's join. Locally: the state as outliers, bob's join in the DAG, nothing before it.
async fn joined_room(history_visibility: &str) -> Joined {
    let (s, dir) = services();
    let room_id = RoomId::parse("!history:localhost").unwrap();
    let rules = rules_for(&ruma::RoomVersionId::V10).unwrap();
    let shortroomid = short::room(&s.db, &room_id).unwrap();
    let mut batch = s.db.batch();
    let empty = crate::rooms::state::new_empty(&s.db, &mut batch).unwrap();
    let record = RoomRecord {
        room_version: ruma::RoomVersionId::V10,
        shortroomid,
        current_state_group: empty,
        max_depth: 0,
        forward_extremities: vec![],
        membership_pos: Some(0),
    };
    batch.put(ROOMS, &room_id, &record).unwrap();
    batch.commit().unwrap();

    let b = Builder { s: &s, room_id: room_id.clone(), rules: rules.clone() };
    let (alice, bob) = ("@alice:localhost", "@bob:localhost");
    let mut peer = MapPeer::default();
    let mut add = |(id, obj): (OwnedEventId, CanonicalJsonObject)| {
        peer.events.insert(id.clone(), obj);
        id
    };
    let create =
        add(b.event(alice, "m.room.create", Some(""), json!({"creator": alice, "room_version": "10"}), &[], &[], 1));
    let join_a =
        add(b.event(alice, "m.room.member", Some(alice), json!({"membership": "join"}), &[&create], &[&create], 2));
    let pl = add(b.event(
        alice,
        "m.room.power_levels",
        Some(""),
        json!({"users": {alice: 100}}),
        &[&join_a],
        &[&create, &join_a],
        3,
    ));
    let jr = add(b.event(
        alice,
        "m.room.join_rules",
        Some(""),
        json!({"join_rule": "public"}),
        &[&pl],
        &[&create, &join_a, &pl],
        4,
    ));
    let hv = add(b.event(
        alice,
        "m.room.history_visibility",
        Some(""),
        json!({"history_visibility": history_visibility}),
        &[&jr],
        &[&create, &join_a, &pl],
        5,
    ));
    let state = vec![create.clone(), join_a.clone(), pl.clone(), jr.clone(), hv.clone()];
    let mut prev = hv.clone();
    let mut messages = Vec::new();
    for i in 1..=30u64 {
        let sender = if i == 15 { "@mallory:localhost" } else { alice };
        let body = json!({"msgtype": "m.text", "body": format!("message {i}")});
        let id = add(b.event(sender, "m.room.message", None, body, &[&prev], &[&create, &join_a, &pl], 5 + i));
        messages.push(id.clone());
        prev = id;
    }
    let join = add(b.event(
        bob,
        "m.room.member",
        Some(bob),
        json!({"membership": "join"}),
        &[&prev],
        &[&create, &pl, &jr],
        36,
    ));
    // The state before every message is the room's five state events.
    for id in messages.iter().chain([&hv]) {
        peer.state.insert(id.clone(), (state.clone(), vec![]));
    }

    // What a remote join leaves: the state as outliers, then the join on the missing last message.
    let checked: Vec<check::Checked> = check::verify(
        &s,
        state.iter().map(|id| check::format(peer.events[id].clone(), &rules, &room_id).unwrap()).collect(),
        &rules,
    )
    .await
    .into_iter()
    .map(Result::unwrap)
    .collect();
    persist::store_outliers(&s, &room_id, checked).await.unwrap();
    let full = persist::state_of(&s, &room_id, &state, None).unwrap();
    let mut batch = s.db.batch();
    let group = crate::rooms::state::new_full(&s.db, &mut batch, &full).unwrap();
    batch.put(ROOMS, &room_id, &RoomRecord { current_state_group: group, ..room(&s, &room_id).unwrap() }).unwrap();
    batch.commit().unwrap();
    let outcome = ingest(&s, &peer, &room_id, peer.events[&join].clone()).await.unwrap();
    assert_eq!(outcome, (join.clone(), Outcome::Accepted));
    Joined { s, _dir: dir, room_id, peer, join, messages }
}

/// Every event bob sees paging backwards `limit` at a time, newest first.
fn page_all(s: &Services, room_id: &RoomId, limit: usize) -> Vec<(String, Value)> {
    let bob = UserId::parse("@bob:localhost").unwrap();
    let mut out = Vec::new();
    let mut from: Option<String> = None;
    for _ in 0..100 {
        let page =
            read::messages(s, room_id, &bob, from.as_deref(), None, true, limit, &EventFilter::default()).unwrap();
        out.extend(page.chunk.iter().map(|e| (e.pdu.kind.to_string(), e.pdu.content_value())));
        match page.end {
            Some(end) => from = Some(end),
            None => return out,
        }
    }
    panic!("pagination did not end");
}

/// Back-fill until the room's history reaches its creation (bounded).
async fn backfill_all(j: &Joined, limit: u32) -> usize {
    let mut stored = 0;
    for _ in 0..20 {
        let v = backward_extremities(&j.s, &j.room_id).unwrap();
        if v.is_empty() {
            return stored;
        }
        stored += backfill_from(&j.s, &j.peer, &j.room_id, v, limit).await.unwrap();
    }
    panic!("backfill did not end");
}

#[tokio::test]
async fn history_is_backfilled_in_order_without_reaching_sync() {
    let j = joined_room("shared").await;
    let s = &j.s;
    let before = room(s, &j.room_id).unwrap();
    assert_eq!(page_all(s, &j.room_id, 10).len(), 1, "only the join is known");
    assert_eq!(backward_extremities(s, &j.room_id).unwrap(), vec![j.messages[29].clone()]);

    // 10 events per request: the messages, then the state events down to the creation.
    let stored = backfill_all(&j, 10).await;
    assert_eq!(stored, 29 + 5, "every event but mallory's");
    let meta15 = persist::meta_of(s, &j.messages[14]).unwrap().unwrap();
    assert!(meta15.rejected, "mallory is no member: {meta15:?}");
    let meta1 = persist::meta_of(s, &j.messages[0]).unwrap().unwrap();
    assert!(!meta1.outlier && !meta1.rejected && meta1.stream_pos == 0, "{meta1:?}");

    // Not new events: one timeline row (the join), extremities and current state unchanged.
    let short = before.shortroomid;
    assert_eq!(s.db.scan_prefix(ROOM_TIMELINE, &short).unwrap().len(), 1);
    let after = room(s, &j.room_id).unwrap();
    assert_eq!(after.forward_extremities, before.forward_extremities);
    assert_eq!(after.current_state_group, before.current_state_group);

    // Paged backwards (in pages of 7 and in one page), newest first, down to the creation.
    let mut expected: Vec<String> = vec!["m.room.member".into()];
    expected.extend((1..=30).rev().filter(|i| *i != 15).map(|i| format!("message {i}")));
    expected.extend(
        ["m.room.history_visibility", "m.room.join_rules", "m.room.power_levels", "m.room.member", "m.room.create"]
            .map(String::from),
    );
    for limit in [7, 100] {
        let seen: Vec<String> = page_all(s, &j.room_id, limit)
            .into_iter()
            .map(|(kind, c)| c.get("body").and_then(Value::as_str).map_or(kind, str::to_owned))
            .collect();
        assert_eq!(seen, expected, "limit {limit}");
    }
    // Forwards from the start gives the same events, oldest first.
    let bob = UserId::parse("@bob:localhost").unwrap();
    let fwd = read::messages(s, &j.room_id, &bob, None, None, false, 100, &EventFilter::default()).unwrap();
    assert_eq!(fwd.chunk.len(), expected.len());
    assert_eq!(fwd.chunk[0].pdu.kind.to_string(), "m.room.create");
    assert_eq!(fwd.chunk.last().unwrap().pdu.event_id, j.join);

    // A back-filled event's place (as `/context` uses it): message 9 comes right before 10.
    let ten = crate::rooms::load(s, &j.messages[9]).unwrap().unwrap();
    let at = read::position(s, &ten).unwrap();
    assert!(at.depth == 15 && at.stream > u64::MAX / 2, "{at:?}");
    let earlier =
        read::messages(s, &j.room_id, &bob, Some(&read::before(at).encode()), None, true, 1, &EventFilter::default());
    assert_eq!(earlier.unwrap().chunk[0].pdu.event_id, j.messages[8]);

    // Nothing more to fetch, and a second back-fill of the same events stores nothing.
    assert!(backward_extremities(s, &j.room_id).unwrap().is_empty());
    let again = backfill_from(s, &j.peer, &j.room_id, vec![j.messages[29].clone()], 50).await.unwrap();
    assert_eq!(again, 0);
}

#[tokio::test]
async fn joined_history_visibility_hides_the_backfilled_history() {
    let j = joined_room("joined").await;
    assert_eq!(backfill_all(&j, 50).await, 34);
    // The messages are hidden; the events before `joined` was set were `shared` (the default).
    let kinds: Vec<String> = page_all(&j.s, &j.room_id, 20).into_iter().map(|(kind, _)| kind).collect();
    let expected = ["m.room.member", "m.room.join_rules", "m.room.power_levels", "m.room.member", "m.room.create"];
    assert_eq!(kinds, expected.map(String::from));
}
