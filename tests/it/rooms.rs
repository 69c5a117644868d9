//! Rooms: creation, chat, versions, state, idempotent sends.

use serde_json::json;

use crate::server::{TestServer, urlencode};

#[tokio::test]
async fn create_a_room_and_chat() {
    let s = TestServer::start();
    let alice = s.register("alice", "password1").await;
    let bob = s.register("bob", "password1").await;
    let room = s
        .create_room(
            &alice.access_token,
            json!({ "name": "Garden", "topic": "Plants", "preset": "public_chat", "room_alias_name": "garden" }),
        )
        .await;
    assert!(room.starts_with('!') && !room.contains(':'), "v12 room IDs are hashes: {room}");

    let r = s.get(&format!("/_matrix/client/v3/directory/room/{}", urlencode("#garden:localhost")), None).await;
    assert_eq!(r.body["room_id"], json!(room));
    let r = s.join(&bob.access_token, "#garden:localhost").await;
    assert_eq!((r.status, r.body["room_id"].clone()), (200, json!(room)));

    let m1 = s.send_text(&alice.access_token, &room, "hello bob").await;
    s.send_text(&bob.access_token, &room, "hi alice").await;
    assert_eq!(s.message_bodies(&bob.access_token, &room).await, ["hello bob", "hi alice"]);

    let r = s.get(&format!("/_matrix/client/v3/rooms/{room}/state/m.room.name/"), Some(&bob.access_token)).await;
    assert_eq!(r.body, json!({ "name": "Garden" }));
    let r = s.get(&format!("/_matrix/client/v3/rooms/{room}/state/m.room.topic"), Some(&bob.access_token)).await;
    assert_eq!(r.body, json!({ "topic": "Plants" }));
    let r = s.get(&format!("/_matrix/client/v3/rooms/{room}/state/m.room.avatar/"), Some(&bob.access_token)).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));
    let r = s.get(&format!("/_matrix/client/v3/rooms/{room}/state"), Some(&bob.access_token)).await;
    let types: Vec<&str> = r.body.as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    for t in [
        "m.room.create",
        "m.room.power_levels",
        "m.room.join_rules",
        "m.room.name",
        "m.room.topic",
        "m.room.canonical_alias",
    ] {
        assert!(types.contains(&t), "{t} in {types:?}");
    }

    let r = s.get(&format!("/_matrix/client/v3/rooms/{room}/joined_members"), Some(&alice.access_token)).await;
    let joined = r.body["joined"].as_object().unwrap();
    assert_eq!(joined.len(), 2);
    assert_eq!(joined["@bob:localhost"]["display_name"], "bob");
    let r = s.get("/_matrix/client/v3/joined_rooms", Some(&bob.access_token)).await;
    assert_eq!(r.body["joined_rooms"], json!([room]));

    let r = s.get(&format!("/_matrix/client/v3/rooms/{room}/event/{m1}"), Some(&alice.access_token)).await;
    assert_eq!(r.body["content"]["body"], "hello bob");
    assert_eq!(r.body["sender"], "@alice:localhost");
    assert!(r.body["unsigned"]["age"].as_u64().is_some());
    assert!(r.body["unsigned"]["transaction_id"].is_string(), "sender's device sees its txn id");
    let r = s.get(&format!("/_matrix/client/v3/rooms/{room}/event/{m1}"), Some(&bob.access_token)).await;
    assert!(r.body["unsigned"].get("transaction_id").is_none(), "others do not");
    let r = s.get(&format!("/_matrix/client/v3/rooms/{room}/event/$nope"), Some(&bob.access_token)).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));

    let r = s.get(&format!("/_matrix/client/v3/rooms/{room}/members?membership=join"), Some(&bob.access_token)).await;
    assert_eq!(r.body["chunk"].as_array().unwrap().len(), 2);
    let r =
        s.get(&format!("/_matrix/client/v3/rooms/{room}/members?not_membership=join"), Some(&bob.access_token)).await;
    assert_eq!(r.body["chunk"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn sends_are_idempotent_per_transaction() {
    let s = TestServer::start();
    let a = s.register("alice", "password1").await;
    let room = s.create_room(&a.access_token, json!({})).await;
    let path = format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/txn1");
    let first = s.put(&path, a.token(), json!({ "msgtype": "m.text", "body": "once" })).await;
    let second = s.put(&path, a.token(), json!({ "msgtype": "m.text", "body": "once" })).await;
    assert_eq!(first.body["event_id"], second.body["event_id"]);
    assert_eq!(s.message_bodies(&a.access_token, &room).await, ["once"]);
    let other_device = crate::server::Session::from(&s.login("alice", "password1").await.body);
    let third = s.put(&path, other_device.token(), json!({ "msgtype": "m.text", "body": "once" })).await;
    assert_ne!(third.body["event_id"], first.body["event_id"], "transaction IDs are per device");
}

#[tokio::test]
async fn room_versions_and_errors() {
    let s = TestServer::start();
    let a = s.register("alice", "password1").await;
    for v in ["1", "2", "10", "11", "12"] {
        let room = s.create_room(&a.access_token, json!({ "room_version": v })).await;
        let r = s.get(&format!("/_matrix/client/v3/rooms/{room}/state/m.room.create/"), a.token()).await;
        assert_eq!(r.body["room_version"], json!(v));
        assert_eq!(room.contains(":localhost"), v != "12", "{room}");
        if matches!(v, "1" | "2" | "10") {
            assert_eq!(r.body["creator"], "@alice:localhost");
        }
    }
    for bad in ["0", "99"] {
        let r = s.post("/_matrix/client/v3/createRoom", a.token(), json!({ "room_version": bad })).await;
        assert_eq!((r.status, r.errcode()), (400, "M_UNSUPPORTED_ROOM_VERSION"), "{bad}");
    }
    let r = s.post("/_matrix/client/v3/createRoom", a.token(), json!({ "room_alias_name": "x y" })).await;
    assert_eq!((r.status, r.errcode()), (400, "M_INVALID_PARAM"));
    s.create_room(&a.access_token, json!({ "room_alias_name": "taken" })).await;
    let r = s.post("/_matrix/client/v3/createRoom", a.token(), json!({ "room_alias_name": "taken" })).await;
    assert_eq!((r.status, r.errcode()), (400, "M_ROOM_IN_USE"));
    let r = s.post("/_matrix/client/v3/createRoom", a.token(), json!({ "preset": "party" })).await;
    assert_eq!(r.status, 400);

    let room = s.create_room(&a.access_token, json!({})).await;
    let r = s.set_state(&a.access_token, &room, "m.room.name", "", json!({ "name": 42 })).await;
    assert_eq!((r.status, r.errcode()), (400, "M_BAD_JSON"), "malformed state content");
    // An unknown room is one the user is not in: nothing tells whether it exists.
    let r = s.get("/_matrix/client/v3/rooms/!unknown:localhost/messages?dir=b", a.token()).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"));
    let r = s
        .put("/_matrix/client/v3/rooms/!unknown:localhost/send/m.room.message/x", a.token(), json!({ "body": "x" }))
        .await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"));

    let caps = s.get("/_matrix/client/v3/capabilities", a.token()).await;
    let available = caps.body["capabilities"]["m.room_versions"]["available"].as_object().unwrap().clone();
    assert!(
        ["1", "2", "3", "11", "12"].iter().all(|v| available.get(*v) == Some(&json!("stable")))
            && available.len() == 12,
        "{available:?}"
    );
}

#[tokio::test]
async fn outsiders_cannot_send_or_read() {
    let s = TestServer::start();
    let a = s.register("alice", "password1").await;
    let eve = s.register("eve", "password1").await;
    let room = s.create_room(&a.access_token, json!({ "preset": "private_chat" })).await;
    s.send_text(&a.access_token, &room, "secret").await;
    let r = s
        .put(&format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/1"), eve.token(), json!({ "body": "x" }))
        .await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"));
    let r = s.get(&format!("/_matrix/client/v3/rooms/{room}/messages?dir=b"), eve.token()).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"));
    let r = s.get(&format!("/_matrix/client/v3/rooms/{room}/state"), eve.token()).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"));
    let r = s.join(&eve.access_token, &room).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "invite-only");
}

#[tokio::test]
async fn the_same_transaction_id_in_two_rooms_is_two_events() {
    let s = TestServer::start();
    let a = s.register("alice", "password1").await;
    let r1 = s.create_room(&a.access_token, json!({})).await;
    let r2 = s.create_room(&a.access_token, json!({})).await;
    let body = json!({ "msgtype": "m.text", "body": "same txn" });
    let e1 = s.put(&format!("/_matrix/client/v3/rooms/{r1}/send/m.room.message/dup"), a.token(), body.clone()).await;
    let e2 = s.put(&format!("/_matrix/client/v3/rooms/{r2}/send/m.room.message/dup"), a.token(), body).await;
    assert_ne!(e1.body["event_id"], e2.body["event_id"]);
    assert_eq!(s.message_bodies(&a.access_token, &r2).await, ["same txn"]);
}

#[tokio::test]
async fn upgrading_a_room() {
    let s = TestServer::start();
    let alice = s.register("alice", "password1").await;
    let bob = s.register("bob", "password1").await;
    let carol = s.register("carol", "password1").await;
    let old = s
        .create_room(&alice.access_token, json!({ "room_version": "10", "preset": "public_chat", "name": "Old", "topic": "T", "room_alias_name": "up", "visibility": "public" }))
        .await;
    s.join(&bob.access_token, &old).await;
    s.join(&carol.access_token, &old).await;
    s.room_post(&alice.access_token, &old, "ban", json!({ "user_id": "@carol:localhost", "reason": "spam" })).await;

    let r = s.room_post(&bob.access_token, &old, "upgrade", json!({ "new_version": "12" })).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "needs tombstone power");
    let r = s.room_post(&alice.access_token, &old, "upgrade", json!({ "new_version": "99" })).await;
    assert_eq!((r.status, r.errcode()), (400, "M_UNSUPPORTED_ROOM_VERSION"));
    let r = s.room_post(&alice.access_token, &old, "upgrade", json!({ "new_version": "12" })).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let new = r.body["replacement_room"].as_str().unwrap().to_owned();

    let t = s.get(&format!("/_matrix/client/v3/rooms/{old}/state/m.room.tombstone/"), alice.token()).await;
    assert_eq!(t.body["replacement_room"], json!(new));
    let c = s.get(&format!("/_matrix/client/v3/rooms/{new}/state/m.room.create/"), alice.token()).await;
    assert_eq!(c.body["predecessor"]["room_id"], json!(old));
    assert_eq!(c.body["room_version"], "12");
    for (kind, field, value) in
        [("m.room.name", "name", "Old"), ("m.room.topic", "topic", "T"), ("m.room.join_rules", "join_rule", "public")]
    {
        let r = s.get(&format!("/_matrix/client/v3/rooms/{new}/state/{kind}/"), alice.token()).await;
        assert_eq!(r.body[field], value, "{kind} carried over");
    }
    let r = s.get(&format!("/_matrix/client/v3/directory/room/{}", urlencode("#up:localhost")), None).await;
    assert_eq!(r.body["room_id"], json!(new), "aliases move");
    let ban =
        s.get(&format!("/_matrix/client/v3/rooms/{new}/state/m.room.member/@carol:localhost"), alice.token()).await;
    assert_eq!(ban.body["membership"], "ban", "bans carry over");
    assert_eq!(s.join(&bob.access_token, &new).await.status, 200);
    let r = s
        .put(&format!("/_matrix/client/v3/rooms/{old}/send/m.room.message/late"), bob.token(), json!({ "body": "x" }))
        .await;
    assert_eq!(r.status, 403, "the old room is restricted");
}

#[tokio::test]
async fn ignored_users_and_direct_chats() {
    let s = TestServer::start();
    let alice = s.register("alice", "password1").await;
    let bob = s.register("bob", "password1").await;
    let troll = s.register("troll", "password1").await;
    let room = s.create_room(&alice.access_token, json!({ "preset": "public_chat" })).await;
    s.join(&bob.access_token, &room).await;
    s.join(&troll.access_token, &room).await;
    s.send_text(&troll.access_token, &room, "troll 1").await;
    s.send_text(&bob.access_token, &room, "bob 1").await;
    let r = s
        .put(
            "/_matrix/client/v3/user/@alice:localhost/account_data/m.ignored_user_list",
            alice.token(),
            json!({ "ignored_users": { "@troll:localhost": {} } }),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(s.message_bodies(&alice.access_token, &room).await, ["bob 1"], "ignored users' events are hidden");
    assert_eq!(s.message_bodies(&bob.access_token, &room).await, ["troll 1", "bob 1"], "only for the ignoring user");

    let dm = s
        .create_room(
            &alice.access_token,
            json!({ "preset": "trusted_private_chat", "is_direct": true, "invite": ["@bob:localhost"] }),
        )
        .await;
    let invite =
        s.get(&format!("/_matrix/client/v3/rooms/{dm}/state/m.room.member/@bob:localhost"), alice.token()).await;
    assert_eq!(invite.body["membership"], "invite");
    assert_eq!(invite.body["is_direct"], json!(true), "is_direct invites carry the flag");
    let create = s.get(&format!("/_matrix/client/v3/rooms/{dm}/state/m.room.create/"), alice.token()).await;
    assert_eq!(
        create.body["additional_creators"],
        json!(["@bob:localhost"]),
        "v12 trusted chats make invitees co-creators"
    );
    let r = s
        .put(
            "/_matrix/client/v3/user/@alice:localhost/account_data/m.direct",
            alice.token(),
            json!({ "@bob:localhost": [dm] }),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = s.get("/_matrix/client/v3/user/@alice:localhost/account_data/m.direct", alice.token()).await;
    assert_eq!(r.body["@bob:localhost"], json!([dm]));
}

#[tokio::test]
async fn oversized_events_and_the_default_version() {
    let s = TestServer::start_with(&[("TRELLIS_ROOMS__DEFAULT_ROOM_VERSION", "11")]);
    let a = s.register("alice", "password1").await;
    let room = s.create_room(&a.access_token, json!({})).await;
    let r = s.get(&format!("/_matrix/client/v3/rooms/{room}/state/m.room.create/"), a.token()).await;
    assert_eq!(r.body["room_version"], "11", "rooms.default_room_version");
    let caps = s.get("/_matrix/client/v3/capabilities", a.token()).await;
    assert_eq!(caps.body["capabilities"]["m.room_versions"]["default"], "11");

    let big = "x".repeat(70_000);
    let r = s
        .put(
            &format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/big"),
            a.token(),
            json!({ "msgtype": "m.text", "body": big }),
        )
        .await;
    assert_eq!((r.status, r.errcode()), (413, "M_TOO_LARGE"), "PDUs over 65536 bytes are refused");
    let fits = "y".repeat(60_000);
    let r = s
        .put(
            &format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/fits"),
            a.token(),
            json!({ "msgtype": "m.text", "body": fits }),
        )
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn aliases_and_canonical_alias_validation() {
    let s = TestServer::start();
    let a = s.register("alice", "password1").await;
    let b = s.register("bob", "password1").await;
    let room = s.create_room(&a.access_token, json!({ "preset": "public_chat" })).await;
    let other = s.create_room(&a.access_token, json!({})).await;
    let alias = urlencode("#main:localhost");
    assert_eq!(
        s.put(&format!("/_matrix/client/v3/directory/room/{alias}"), a.token(), json!({ "room_id": room }))
            .await
            .status,
        200
    );
    let r = s.put(&format!("/_matrix/client/v3/directory/room/{alias}"), a.token(), json!({ "room_id": other })).await;
    assert_eq!((r.status, r.errcode()), (409, "M_UNKNOWN"));
    let r = s
        .put(
            &format!("/_matrix/client/v3/directory/room/{}", urlencode("#x:elsewhere.org")),
            a.token(),
            json!({ "room_id": room }),
        )
        .await;
    assert_eq!((r.status, r.errcode()), (400, "M_INVALID_PARAM"));
    let r = s.get(&format!("/_matrix/client/v3/rooms/{room}/aliases"), a.token()).await;
    assert_eq!(r.body["aliases"], json!(["#main:localhost"]));

    let r =
        s.set_state(&a.access_token, &room, "m.room.canonical_alias", "", json!({ "alias": "#main:localhost" })).await;
    assert_eq!(r.status, 200);
    let r =
        s.set_state(&a.access_token, &other, "m.room.canonical_alias", "", json!({ "alias": "#main:localhost" })).await;
    assert_eq!((r.status, r.errcode()), (400, "M_BAD_ALIAS"), "the alias points elsewhere");
    let r = s
        .set_state(
            &a.access_token,
            &room,
            "m.room.canonical_alias",
            "",
            json!({ "alias": "#main:localhost", "alt_aliases": ["#nope:localhost"] }),
        )
        .await;
    assert_eq!((r.status, r.errcode()), (400, "M_BAD_ALIAS"));

    let r = s.delete(&format!("/_matrix/client/v3/directory/room/{alias}"), b.token(), json!({})).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "neither creator nor moderator");
    assert_eq!(s.delete(&format!("/_matrix/client/v3/directory/room/{alias}"), a.token(), json!({})).await.status, 200);
    let r = s.get(&format!("/_matrix/client/v3/directory/room/{alias}"), None).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));

    // Publication in the public room directory.
    let r = s.get(&format!("/_matrix/client/v3/directory/list/room/{room}"), None).await;
    assert_eq!(r.body["visibility"], "private");
    assert_eq!(
        s.put(&format!("/_matrix/client/v3/directory/list/room/{room}"), b.token(), json!({ "visibility": "public" }))
            .await
            .status,
        403
    );
    assert_eq!(
        s.put(&format!("/_matrix/client/v3/directory/list/room/{room}"), a.token(), json!({ "visibility": "public" }))
            .await
            .status,
        200
    );
    let r = s.get("/_matrix/client/v3/publicRooms", None).await;
    assert_eq!(r.body["chunk"][0]["room_id"], json!(room));
    assert_eq!(r.body["chunk"][0]["num_joined_members"], json!(1));
}

/// Fifty `createRoom`s at once by one user with one body: in v12 the room ID is the create
/// event's hash, and create events with the same sender, content and millisecond hash alike.
/// Every creation must still get a room of its own.
#[tokio::test]
async fn concurrent_creations_by_one_user_get_distinct_rooms() {
    let s = std::sync::Arc::new(TestServer::start());
    let alice = s.register("alice", "password1").await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (s, token) = (s.clone(), alice.access_token.clone());
        tasks.push(tokio::spawn(async move {
            let r = s.post("/_matrix/client/v3/createRoom", Some(&token), json!({ "name": "Same" })).await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            r.body["room_id"].as_str().unwrap().to_owned()
        }));
    }
    let mut rooms = Vec::new();
    for t in tasks {
        rooms.push(t.await.unwrap());
    }
    let distinct: std::collections::BTreeSet<&String> = rooms.iter().collect();
    assert_eq!(distinct.len(), 50, "{rooms:?}");
    let r = s.get("/_matrix/client/v3/joined_rooms", Some(&alice.access_token)).await;
    assert_eq!(r.body["joined_rooms"].as_array().unwrap().len(), 50, "{:?}", r.body);
    for room in &rooms {
        let r = s.get(&format!("/_matrix/client/v3/rooms/{room}/state"), Some(&alice.access_token)).await;
        let state = r.body.as_array().unwrap();
        let count = |t: &str| state.iter().filter(|e| e["type"] == t).count();
        assert_eq!((count("m.room.create"), count("m.room.member"), count("m.room.name")), (1, 1, 1), "{room}");
        let create = state.iter().find(|e| e["type"] == "m.room.create").unwrap();
        assert_eq!(format!("!{}", &create["event_id"].as_str().unwrap()[1..]), *room, "the ID is the create event's");
        let r =
            s.get(&format!("/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=50"), Some(&alice.access_token)).await;
        let creates = r.body["chunk"].as_array().unwrap().iter().filter(|e| e["type"] == "m.room.create").count();
        assert_eq!(creates, 1, "{room}: one create event in its timeline");
    }
}

/// `/members?at=`: the membership as of a pagination token (the state after the last event at
/// or before it), not the current one.
#[tokio::test]
async fn members_at_a_pagination_token() {
    let s = TestServer::start();
    let alice = s.register("alice", "password1").await;
    let bob = s.register("bob", "password1").await;
    let room = s.create_room(&alice.access_token, json!({ "preset": "public_chat" })).await;
    let r = s.get(&format!("/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=1"), Some(&alice.access_token)).await;
    let before_bob = r.body["start"].as_str().unwrap().to_owned();
    assert_eq!(s.join(&bob.access_token, &room).await.status, 200);

    assert_eq!(member_keys(&s, &alice.access_token, &room, "").await, ["@alice:localhost", "@bob:localhost"]);
    assert_eq!(member_keys(&s, &alice.access_token, &room, &format!("?at={before_bob}")).await, ["@alice:localhost"]);
    assert_eq!(
        member_keys(&s, &alice.access_token, &room, &format!("?at={before_bob}&membership=join")).await,
        ["@alice:localhost"]
    );
}

/// The sorted state keys of `/members{query}`.
async fn member_keys(s: &TestServer, token: &str, room: &str, query: &str) -> Vec<String> {
    let r = s.get(&format!("/_matrix/client/v3/rooms/{room}/members{query}"), Some(token)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let chunk = r.body["chunk"].as_array().unwrap();
    let mut keys: Vec<String> = chunk.iter().map(|e| e["state_key"].as_str().unwrap().to_owned()).collect();
    keys.sort();
    keys
}
