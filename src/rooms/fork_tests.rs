//! State resolution on hand-built forks, per room version 10, 11 and 12: two branches are built
//! on the same event, then a local send merges them through the normal path
//! ([`RoomCtx::current`] resolves the extremities' states with ruma's algorithm).

use ruma::events::StateEventType;
use ruma::events::room::member::MembershipState;
use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde_json::{Value, json};

use super::append::{append, send};
use super::build::{NewEvent, RoomCtx, authorize, build};
use super::create::{CreateRoom, create};
use super::{current_state, current_state_content, membership, resolve, room, rules_for, state};
use crate::config::Config;
use crate::services::{Services, State};

fn services() -> (State, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.database.path = dir.path().join("db");
    (Services::new(config).map_err(|e| e.to_string()).unwrap(), dir)
}

fn user(name: &str) -> OwnedUserId {
    UserId::parse(format!("@{name}:localhost")).unwrap()
}

/// Append an event built on `prev` (not on the room's extremities): one branch of a fork.
async fn on(s: &Services, room_id: &RoomId, prev: &OwnedEventId, sender: &UserId, new: NewEvent) -> OwnedEventId {
    let _guard = s.room_lock(room_id).await;
    let ctx = RoomCtx::at(s, room_id, std::slice::from_ref(prev)).unwrap();
    let (pdu, obj) = build(s, &ctx, sender, &new).unwrap();
    authorize(s, &ctx, &pdu).unwrap();
    append(s, &ctx, &pdu, obj, None).unwrap();
    pdu.event_id
}

fn extremities(s: &Services, room_id: &RoomId) -> usize {
    room(s, room_id).unwrap().forward_extremities.len()
}

/// Alice (creator) and Bob (50) and Carol (25) in a public room where power levels need 50.
async fn setup(s: &Services, version: &str) -> (OwnedRoomId, OwnedEventId) {
    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    let req = CreateRoom {
        room_version: Some(version.parse().unwrap()),
        preset: Some("public_chat".into()),
        ..Default::default()
    };
    let room_id = create(s, &alice, req).await.unwrap();
    membership::join(s, &room_id, &bob, None).await.unwrap();
    membership::join(s, &room_id, &carol, None).await.unwrap();
    let mut pl = current_state_content(s, &room_id, &StateEventType::RoomPowerLevels, "").unwrap().unwrap();
    pl["users"]["@bob:localhost"] = json!(50);
    pl["users"]["@carol:localhost"] = json!(25);
    pl["events"]["m.room.power_levels"] = json!(50);
    pl["state_default"] = json!(50);
    let fork_point =
        send(s, &room_id, &alice, NewEvent::state(StateEventType::RoomPowerLevels, "", pl), None).await.unwrap();
    (room_id, fork_point)
}

fn pl_users(s: &Services, room_id: &RoomId) -> Value {
    current_state_content(s, room_id, &StateEventType::RoomPowerLevels, "").unwrap().unwrap()["users"].clone()
}

#[tokio::test]
async fn concurrent_power_level_changes_resolve_to_the_more_powerful_sender() {
    // A current-thread runtime: the resolution runs inline (`block_in_place` would panic).
    concurrent_power_level_changes().await;
}

/// The same forks on a multi-thread runtime like the server's: each merge resolves the fork
/// with `block_in_place`, off the runtime's workers, and the outcome is the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_multi_thread_runtime_forks_resolve_off_the_workers() {
    let before = resolve::resolutions_off_workers();
    concurrent_power_level_changes().await;
    // Three room versions, one merge each (other tests of this process may add their own).
    assert!(resolve::resolutions_off_workers() >= before + 3, "the merges went through block_in_place");
}

async fn concurrent_power_level_changes() {
    for version in ["10", "11", "12"] {
        let (s, _dir) = services();
        let (room_id, x) = setup(&s, version).await;
        let base = current_state_content(&s, &room_id, &StateEventType::RoomPowerLevels, "").unwrap().unwrap();
        let mut by_alice = base.clone();
        by_alice["users"]["@bob:localhost"] = json!(0);
        let mut by_bob = base.clone();
        by_bob["users"]["@carol:localhost"] = json!(0);
        // Bob's branch first, so "last written wins" would pick Bob: resolution must not.
        on(&s, &room_id, &x, &user("bob"), NewEvent::state(StateEventType::RoomPowerLevels, "", by_bob)).await;
        on(&s, &room_id, &x, &user("alice"), NewEvent::state(StateEventType::RoomPowerLevels, "", by_alice)).await;
        assert_eq!(extremities(&s, &room_id), 2, "v{version}: a real fork");

        send(&s, &room_id, &user("alice"), NewEvent::message("m.room.message", json!({ "body": "merge" })), None)
            .await
            .unwrap();
        assert_eq!(extremities(&s, &room_id), 1, "v{version}: merged");
        let users = pl_users(&s, &room_id);
        assert_eq!(users["@bob:localhost"], json!(0), "v{version}: Alice's change applies first and demotes Bob");
        assert_eq!(users["@carol:localhost"], json!(25), "v{version}: so Bob's change no longer passes auth");
    }
}

#[tokio::test]
async fn a_ban_racing_a_state_change_wins() {
    for version in ["10", "11", "12"] {
        let (s, _dir) = services();
        let (room_id, _) = setup(&s, version).await;
        let topic = send(
            &s,
            &room_id,
            &user("alice"),
            NewEvent::state(StateEventType::RoomTopic, "", json!({ "topic": "original" })),
            None,
        )
        .await
        .unwrap();
        on(
            &s,
            &room_id,
            &topic,
            &user("bob"),
            NewEvent::state(StateEventType::RoomTopic, "", json!({ "topic": "bob was here" })),
        )
        .await;
        on(
            &s,
            &room_id,
            &topic,
            &user("alice"),
            NewEvent::state(StateEventType::RoomMember, "@bob:localhost", json!({ "membership": "ban" })),
        )
        .await;
        send(&s, &room_id, &user("alice"), NewEvent::message("m.room.message", json!({ "body": "merge" })), None)
            .await
            .unwrap();

        let topic_now = current_state_content(&s, &room_id, &StateEventType::RoomTopic, "").unwrap().unwrap();
        assert_eq!(topic_now["topic"], "original", "v{version}: the banned user's concurrent change is dropped");
        assert_eq!(
            membership::membership_of(&s, &room_id, &user("bob")).unwrap(),
            Some(MembershipState::Ban),
            "v{version}"
        );
        let bob_send =
            send(&s, &room_id, &user("bob"), NewEvent::message("m.room.message", json!({ "body": "x" })), None).await;
        assert!(bob_send.is_err(), "v{version}: and Bob is out");
    }
}

#[tokio::test]
async fn resolution_does_not_depend_on_the_order_of_the_forks() {
    for version in ["10", "11", "12"] {
        let (s, _dir) = services();
        let (room_id, x) = setup(&s, version).await;
        let base = current_state_content(&s, &room_id, &StateEventType::RoomPowerLevels, "").unwrap().unwrap();
        let mut a = base.clone();
        a["users"]["@carol:localhost"] = json!(10);
        let mut b = base.clone();
        b["users"]["@carol:localhost"] = json!(20);
        let e1 = on(&s, &room_id, &x, &user("alice"), NewEvent::state(StateEventType::RoomPowerLevels, "", a)).await;
        let e2 = on(&s, &room_id, &x, &user("bob"), NewEvent::state(StateEventType::RoomPowerLevels, "", b)).await;
        let after = |e: &OwnedEventId| {
            let short = super::short::event_get(&s.db, e).unwrap().unwrap();
            let meta = s.db.get(crate::storage::catalog::EVENT_META, &short).unwrap().unwrap();
            state::load(&s.db, &s.state_cache, meta.state_after).unwrap()
        };
        let rules = rules_for(&version.parse().unwrap()).unwrap();
        let one = resolve::resolve(&s, &rules, &[after(&e1), after(&e2)]).unwrap();
        let two = resolve::resolve(&s, &rules, &[after(&e2), after(&e1)]).unwrap();
        assert_eq!(one, two, "v{version}");
        send(&s, &room_id, &user("alice"), NewEvent::message("m.room.message", json!({ "body": "merge" })), None)
            .await
            .unwrap();
        let mut merged = one.clone();
        let message_state = current_state(&s, &room_id).unwrap();
        merged.retain(|k, _| message_state.contains_key(k));
        assert_eq!(*message_state, merged, "v{version}: the merge event's state is the resolved state");
        // Reverse topological power ordering applies Alice's change first; Bob's still passes
        // auth against it (Carol's 25 is below Bob's 50), so it is applied last and stands.
        assert_eq!(pl_users(&s, &room_id)["@carol:localhost"], json!(20), "v{version}");
    }
}

#[test]
fn only_states_that_differ_are_worth_a_thread_hand_off() {
    let a = std::sync::Arc::new(state::ShortState::from([(1, 10), (2, 20)]));
    let same = std::sync::Arc::new(state::ShortState::from([(1, 10), (2, 20)]));
    let other_event = std::sync::Arc::new(state::ShortState::from([(1, 10), (2, 21)]));
    let extra_key = std::sync::Arc::new(state::ShortState::from([(1, 10), (2, 20), (3, 30)]));
    assert!(!resolve::conflicting(&[]));
    assert!(!resolve::conflicting(std::slice::from_ref(&a)));
    assert!(!resolve::conflicting(&[a.clone(), a.clone(), same]));
    assert!(resolve::conflicting(&[a.clone(), other_event]));
    assert!(resolve::conflicting(&[a, extra_key]));
}
