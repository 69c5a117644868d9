//! Incoming invites (`PUT /_matrix/federation/v2/invite`) and the queries other servers make
//! (`/query/directory`, `/user/devices`, `/user/keys/query|claim`, `/publicRooms`,
//! `/hierarchy`). The test signs as A and calls B, like `serve.rs`.

use std::collections::BTreeMap;

use reqwest::Method;
use ruma::room_version_rules::RoomVersionRules;
use ruma::serde::Base64;
use ruma::signatures::{Ed25519KeyPair, PublicKeyMap, Verified, hash_and_sign_event, reference_hash, verify_event};
use serde_json::{Value, json};

use super::{Fed, Pki, now_ms, x_matrix};
use crate::server::{Resp, urlencode};

async fn signed(key: &Ed25519KeyPair, a: &Fed, b: &Fed, method: Method, path: &str, body: Option<Value>) -> Resp {
    let auth = x_matrix(key, &a.name, &b.name, method.as_str(), path, body.as_ref());
    b.request(method, path, Some(&auth), body.as_ref()).await
}

/// `server → key_id → key` of a server's key response, for `verify_event`.
async fn keys_of(map: &mut PublicKeyMap, server: &Fed) {
    let r = server.get("/_matrix/key/v2/server").await;
    let keys = r.body["verify_keys"].as_object().unwrap();
    let set = keys.iter().map(|(id, k)| (id.clone(), Base64::parse(k["key"].as_str().unwrap()).unwrap())).collect();
    map.insert(server.name.to_string(), set);
}

/// An invite event from `sender` for `target` in a room "on A", hashed and signed with A's key.
fn invite_event(
    key: &Ed25519KeyPair,
    a: &Fed,
    sender: &str,
    room: &str,
    target: &str,
    content: Value,
) -> (String, Value) {
    let rules = RoomVersionRules::V10;
    let event = json!({
        "type": "m.room.member",
        "room_id": room,
        "sender": sender,
        "state_key": target,
        "content": content,
        "origin_server_ts": now_ms(),
        "depth": 7,
        "prev_events": ["$prevprevprevprevprevprevprevprevprevprevpre"],
        "auth_events": ["$authauthauthauthauthauthauthauthauthauthaut"],
    });
    let mut obj: ruma::CanonicalJsonObject = serde_json::from_value(event).unwrap();
    hash_and_sign_event(a.name.as_str(), key, &mut obj, &rules.redaction).unwrap();
    let id = format!("${}", reference_hash(&obj, &rules).unwrap());
    (id, serde_json::to_value(&obj).unwrap())
}

/// A invites bob@B: B checks A's signature, adds its own and keeps the invite; bob's `/sync`
/// lists the room under `invite` with the stripped state A sent; bob rejects it locally and the
/// room moves to `leave`. Broken invites are refused.
#[tokio::test]
async fn a_remote_invite_reaches_sync_and_can_be_rejected() {
    let pki = Pki::new();
    let mut a = Fed::start(&pki);
    let b = Fed::start(&pki);
    let key = a.signing_key();
    let bob = b.server.register("bob", "password-bob").await;
    let room = format!("!lounge:{}", a.name);
    let x = format!("@x:{}", a.name);
    let (id, event) = invite_event(&key, &a, &x, &room, &bob.user_id, json!({ "membership": "invite" }));
    let stripped = json!([
        { "type": "m.room.create", "state_key": "", "sender": format!("@x:{}", a.name), "content": { "room_version": "10" } },
        { "type": "m.room.name", "state_key": "", "sender": format!("@x:{}", a.name), "content": { "name": "A's lounge" } },
    ]);
    let path = format!("/_matrix/federation/v2/invite/{}/{}", urlencode(&room), urlencode(&id));
    let body = json!({ "room_version": "10", "event": event, "invite_room_state": stripped });
    let r = signed(&key, &a, &b, Method::PUT, &path, Some(body.clone())).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let returned = &r.body["event"];
    let mut without_sigs = returned.clone();
    without_sigs.as_object_mut().unwrap().remove("signatures");
    let mut original = event.clone();
    original.as_object_mut().unwrap().remove("signatures");
    assert_eq!(without_sigs, original, "only signatures change");
    assert_eq!(returned["signatures"][a.name.as_str()], event["signatures"][a.name.as_str()]);
    let mut keys = PublicKeyMap::new();
    keys_of(&mut keys, &a).await;
    keys_of(&mut keys, &b).await;
    let obj: ruma::CanonicalJsonObject = serde_json::from_value(returned.clone()).unwrap();
    assert_eq!(verify_event(&keys, &obj, &RoomVersionRules::V10).unwrap(), Verified::All);
    // B's own signature, over the redacted event (spec: "Signing events").
    let only_b = BTreeMap::from([(b.name.to_string(), keys[b.name.as_str()].clone())]);
    let mut b_signed = returned.clone();
    b_signed["signatures"] = json!({ b.name.as_str(): returned["signatures"][b.name.as_str()].clone() });
    let b_obj: ruma::CanonicalJsonObject = serde_json::from_value(b_signed).unwrap();
    let redacted = ruma::canonical_json::redact(b_obj, &RoomVersionRules::V10.redaction, None).unwrap();
    ruma::signatures::verify_json(&only_b, &redacted).expect("B's signature verifies");
    assert!(returned["signatures"][b.name.as_str()].as_object().is_some_and(|s| s.len() == 1));

    // bob sees the invite with the stripped state.
    let r = b.server.get("/_matrix/client/v3/sync", bob.token()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let events = r.body["rooms"]["invite"][&room]["invite_state"]["events"].as_array().cloned().unwrap_or_default();
    let name = events.iter().find(|e| e["type"] == "m.room.name").unwrap();
    assert_eq!(name["content"]["name"], "A's lounge");
    let member = events.iter().find(|e| e["type"] == "m.room.member").unwrap();
    assert_eq!(
        (member["sender"].as_str(), member["state_key"].as_str()),
        (Some(format!("@x:{}", a.name).as_str()), Some(bob.user_id.as_str()))
    );
    assert_eq!(member["content"]["membership"], "invite");
    let since = r.body["next_batch"].as_str().unwrap().to_owned();

    // Broken invites: a wrong event ID, content changed after signing, a sender not on A,
    // a user B does not have, an unknown room version.
    let wrong_id = format!("/_matrix/federation/v2/invite/{}/{}", urlencode(&room), urlencode("$wrong"));
    let r = signed(&key, &a, &b, Method::PUT, &wrong_id, Some(body.clone())).await;
    assert_eq!((r.status, r.errcode()), (400, "M_INVALID_PARAM"), "{:?}", r.body);
    let mut tampered = body.clone();
    tampered["event"]["content"]["displayname"] = json!("Mallory");
    let r = signed(&key, &a, &b, Method::PUT, &path, Some(tampered)).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "content hash: {:?}", r.body);
    let on_b = format!("@x:{}", b.name);
    let (id2, ev2) = invite_event(&key, &a, &on_b, &room, &bob.user_id, json!({ "membership": "invite" }));
    let p2 = format!("/_matrix/federation/v2/invite/{}/{}", urlencode(&room), urlencode(&id2));
    let r = signed(
        &key,
        &a,
        &b,
        Method::PUT,
        &p2,
        Some(json!({ "room_version": "10", "event": ev2, "invite_room_state": [] })),
    )
    .await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "sender not on A: {:?}", r.body);
    let ghost = format!("@ghost:{}", b.name);
    let (id3, ev3) = invite_event(&key, &a, &x, &room, &ghost, json!({ "membership": "invite" }));
    let p3 = format!("/_matrix/federation/v2/invite/{}/{}", urlencode(&room), urlencode(&id3));
    let r = signed(
        &key,
        &a,
        &b,
        Method::PUT,
        &p3,
        Some(json!({ "room_version": "10", "event": ev3, "invite_room_state": [] })),
    )
    .await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"), "{:?}", r.body);
    let mut odd = body.clone();
    odd["room_version"] = json!("nope");
    let r = signed(&key, &a, &b, Method::PUT, &path, Some(odd)).await;
    assert_eq!((r.status, r.errcode()), (400, "M_INCOMPATIBLE_ROOM_VERSION"), "{:?}", r.body);

    // bob rejects: locally only (telling A needs make_leave/send_leave), and /sync says `leave`.
    let r = b.server.room_post(bob.token().unwrap(), &urlencode(&room), "leave", json!({})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = b.server.get(&format!("/_matrix/client/v3/sync?since={since}&timeout=0"), bob.token()).await;
    let left = &r.body["rooms"]["leave"][&room];
    assert_eq!(left["timeline"]["events"][0]["content"]["membership"], "leave", "{:?}", r.body);
    assert_eq!(left["timeline"]["events"][0]["sender"], bob.user_id.as_str());
    assert!(r.body["rooms"]["invite"].get(&room).is_none());
    let r = b.server.get("/_matrix/client/v3/sync", bob.token()).await;
    assert!(r.body["rooms"]["invite"].get(&room).is_none(), "{:?}", r.body["rooms"]);
    let r = b.server.room_post(bob.token().unwrap(), &urlencode(&room), "leave", json!({})).await;
    assert_eq!(r.status, 404, "nothing left to reject: {:?}", r.body);
}

/// Alias lookup, devices and keys of a user, the public room list and a space's hierarchy.
#[tokio::test]
async fn directory_devices_keys_and_hierarchy_are_served() {
    let pki = Pki::new();
    let mut a = Fed::start(&pki);
    let b = Fed::start(&pki);
    let key = a.signing_key();
    let bob = b.server.register("bob", "password-bob").await;
    let tok = bob.access_token.as_str();
    let lobby = b
        .server
        .create_room(
            tok,
            json!({ "preset": "public_chat", "visibility": "public", "room_alias_name": "lobby", "name": "The lobby" }),
        )
        .await;
    let get = |path: String| {
        let (key, a, b) = (&key, &a, &b);
        async move { signed(key, a, b, Method::GET, &path, None).await }
    };

    let alias = format!("#lobby:{}", b.name);
    let r = get(format!("/_matrix/federation/v1/query/directory?room_alias={}", urlencode(&alias))).await;
    assert_eq!((r.status, r.body.clone()), (200, json!({ "room_id": lobby, "servers": [b.name.as_str()] })));
    let r =
        get(format!("/_matrix/federation/v1/query/directory?room_alias={}", urlencode(&format!("#nope:{}", b.name))))
            .await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));

    // Devices and keys.
    let dev = bob.device_id.as_str();
    let device_keys = json!({
        "user_id": bob.user_id, "device_id": dev,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": { format!("curve25519:{dev}"): "curve-key", format!("ed25519:{dev}"): "ed-key" },
        "signatures": { bob.user_id.as_str(): { format!("ed25519:{dev}"): "sig" } },
    });
    let otk = json!({ "key": "one-time", "signatures": { bob.user_id.as_str(): { format!("ed25519:{dev}"): "sig" } } });
    let upload = json!({ "device_keys": device_keys, "one_time_keys": { "signed_curve25519:K1": otk } });
    assert_eq!(b.server.post("/_matrix/client/v3/keys/upload", bob.token(), upload).await.status, 200);
    let r = get(format!("/_matrix/federation/v1/user/devices/{}", urlencode(&bob.user_id))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["user_id"], bob.user_id.as_str());
    assert!(r.body["stream_id"].as_u64().unwrap() > 0);
    assert_eq!(r.body["devices"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["devices"][0]["device_id"], dev);
    assert_eq!(r.body["devices"][0]["keys"], device_keys);
    let body = json!({ "device_keys": { bob.user_id.as_str(): [] } });
    let r = signed(&key, &a, &b, Method::POST, "/_matrix/federation/v1/user/keys/query", Some(body)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["device_keys"][bob.user_id.as_str()][dev]["keys"], device_keys["keys"]);
    let body = json!({ "one_time_keys": { bob.user_id.as_str(): { dev: "signed_curve25519" } } });
    let r = signed(&key, &a, &b, Method::POST, "/_matrix/federation/v1/user/keys/claim", Some(body.clone())).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["one_time_keys"][bob.user_id.as_str()][dev]["signed_curve25519:K1"], otk);
    let r = signed(&key, &a, &b, Method::POST, "/_matrix/federation/v1/user/keys/claim", Some(body)).await;
    assert_eq!(r.body["one_time_keys"], json!({}), "claimed once");

    // The public room directory.
    let r = get("/_matrix/federation/v1/publicRooms?limit=10".to_owned()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["chunk"].as_array().unwrap().len(), 1);
    assert_eq!(
        (r.body["chunk"][0]["room_id"].as_str(), r.body["chunk"][0]["name"].as_str()),
        (Some(lobby.as_str()), Some("The lobby"))
    );
    assert_eq!(r.body["chunk"][0]["canonical_alias"], alias.as_str());
    let body = json!({ "filter": { "generic_search_term": "nothing like it" } });
    let r = signed(&key, &a, &b, Method::POST, "/_matrix/federation/v1/publicRooms", Some(body)).await;
    assert_eq!((r.status, r.body["chunk"].clone()), (200, json!([])));
    let body = json!({ "filter": { "generic_search_term": "LOBBY" } });
    let r = signed(&key, &a, &b, Method::POST, "/_matrix/federation/v1/publicRooms", Some(body)).await;
    assert_eq!(r.body["chunk"][0]["room_id"], lobby.as_str());

    // A public space with the lobby and a private room as children.
    let private = b.server.create_room(tok, json!({ "preset": "private_chat" })).await;
    let space = b
        .server
        .create_room(
            tok,
            json!({ "preset": "public_chat", "creation_content": { "type": "m.space" }, "name": "Space" }),
        )
        .await;
    for child in [&lobby, &private] {
        let r = b
            .server
            .set_state(tok, &space, "m.space.child", &urlencode(child), json!({ "via": [b.name.as_str()] }))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    let r = get(format!("/_matrix/federation/v1/hierarchy/{}", urlencode(&space))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        (r.body["room"]["room_id"].as_str(), r.body["room"]["room_type"].as_str()),
        (Some(space.as_str()), Some("m.space"))
    );
    assert_eq!(r.body["room"]["children_state"].as_array().unwrap().len(), 2);
    let children: Vec<&str> =
        r.body["children"].as_array().unwrap().iter().map(|c| c["room_id"].as_str().unwrap()).collect();
    assert_eq!(children, [lobby.as_str()]);
    assert_eq!(r.body["inaccessible_children"], json!([private]));
    let r = get(format!("/_matrix/federation/v1/hierarchy/{}", urlencode(&private))).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"), "a private room is not shown");
}
