//! Fan-out: what local activity queues for a server with a member in the room. Joins over
//! federation do not exist yet, so the remote member's join is authored locally for the test
//! (its sender is remote, so it is not itself sent anywhere).

use std::collections::BTreeMap;
use std::time::Duration;

use ruma::to_device::DeviceIdOrAllDevices;
use ruma::{DeviceId, UserId};
use serde_json::{Value, json};

use super::tests::{Peer, eventually, local, services_on};
use crate::ephemeral::receipts::{self, Thread};
use crate::ephemeral::{presence, typing};
use crate::keys::to_device;
use crate::rooms::append::send;
use crate::rooms::build::NewEvent;
use crate::rooms::create::{CreateRoom, create};
use crate::rooms::membership;

fn all_edus(peer: &Peer) -> Vec<Value> {
    peer.received()
        .iter()
        .flat_map(|r| r.body.get("edus").and_then(Value::as_array).cloned().unwrap_or_default())
        .collect()
}

fn of_type(edus: &[Value], t: &str) -> Vec<Value> {
    edus.iter().filter(|e| e["edu_type"] == t).map(|e| e["content"].clone()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn local_events_typing_receipts_presence_devices_and_to_device_reach_the_room_s_servers() {
    let mut peer = Peer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let s = services_on(dir.path(), &peer);
    let alice = local("alice");
    let bob = UserId::parse(format!("@bob:{}", peer.name)).unwrap();
    let room =
        create(&s, &alice, CreateRoom { preset: Some("public_chat".into()), ..Default::default() }).await.unwrap();
    membership::join(&s, &room, &bob, None).await.unwrap();
    s.sender.start().unwrap();

    let hello =
        send(&s, &room, &alice, NewEvent::message("m.room.message", json!({ "body": "hello" })), None).await.unwrap();
    typing::set(&s, &room, &alice, Some(Duration::from_secs(30))).unwrap();
    receipts::post(&s, &room, &alice, "m.read.private".into(), &hello, Thread::Unthreaded).unwrap();
    receipts::post(&s, &room, &alice, "m.read".into(), &hello, Thread::Unthreaded).unwrap();
    presence::set(&s, &alice, "online".into(), Some("hi".into())).unwrap();
    let messages = BTreeMap::from([(
        bob.clone(),
        BTreeMap::from([(DeviceIdOrAllDevices::DeviceId("BOBDEV".into()), json!({ "secret": 1 }))]),
    )]);
    let alice_device = <&DeviceId>::from("ALICEDEV");
    to_device::send(&s, (&alice, alice_device), "m.test", "t1".into(), &messages).unwrap();
    to_device::send(&s, (&alice, alice_device), "m.test", "t1".into(), &messages).unwrap();
    crate::users::accounts::create(&s.db, &alice, Default::default()).unwrap();
    let new_device: ruma::OwnedDeviceId = "NEWDEV".into();
    crate::users::tokens::create_session(&s.db, &alice, Some(&new_device), None, false, s.token_lifetimes(), None)
        .unwrap();

    eventually("every EDU", || {
        let edus = all_edus(&peer);
        ["m.typing", "m.receipt", "m.presence", "m.direct_to_device", "m.device_list_update"]
            .iter()
            .all(|t| !of_type(&edus, t).is_empty())
    })
    .await;
    eventually("the queue to drain", || super::queue::destinations_with_work(&s.db).unwrap().is_empty()).await;
    let pdus: Vec<Value> =
        peer.received().iter().flat_map(|r| r.body["pdus"].as_array().cloned().unwrap_or_default()).collect();
    let bodies: Vec<&Value> = pdus.iter().map(|p| &p["content"]["body"]).collect();
    assert_eq!(bodies, [&json!("hello")], "only alice's event after bob joined; bob's own join is not echoed");
    assert_eq!(pdus[0]["sender"], alice.as_str());

    let edus = all_edus(&peer);
    assert_eq!(of_type(&edus, "m.typing"), [json!({ "room_id": room, "user_id": alice, "typing": true })]);
    let receipts = of_type(&edus, "m.receipt");
    assert_eq!(receipts.len(), 1, "m.read.private stays here: {receipts:?}");
    assert_eq!(receipts[0][room.as_str()]["m.read"][alice.as_str()]["event_ids"], json!([hello]));
    let presence = of_type(&edus, "m.presence");
    assert_eq!(presence[0]["push"][0]["user_id"], alice.as_str());
    assert_eq!(presence[0]["push"][0]["presence"], "online");
    assert_eq!(presence[0]["push"][0]["status_msg"], "hi");
    let to_device = of_type(&edus, "m.direct_to_device");
    assert_eq!(to_device.len(), 1, "a repeated client transaction is sent once");
    assert_eq!(to_device[0]["sender"], alice.as_str());
    assert_eq!(to_device[0]["type"], "m.test");
    assert_eq!(to_device[0]["messages"][bob.as_str()]["BOBDEV"], json!({ "secret": 1 }));
    assert!(to_device[0]["message_id"].as_str().is_some_and(|m| !m.is_empty()));
    let devices = of_type(&edus, "m.device_list_update");
    assert_eq!(devices[0]["user_id"], alice.as_str());
    assert_eq!(devices[0]["device_id"], "NEWDEV");
    assert_eq!(devices[0]["stream_id"], 1);
    assert!(devices[0].get("prev_id").is_none_or(|p| p == &json!([])));

    // The next change names the previous EDU in prev_id; a deleted device says so.
    crate::users::devices::delete(&s.db, &alice, &[&new_device]).unwrap();
    eventually("the deletion", || of_type(&all_edus(&peer), "m.device_list_update").len() == 2).await;
    let devices = of_type(&all_edus(&peer), "m.device_list_update");
    assert_eq!(devices[1]["stream_id"], 2);
    assert_eq!(devices[1]["prev_id"], json!([1]));
    assert_eq!(devices[1]["deleted"], true);
    peer.stop().await;
}
