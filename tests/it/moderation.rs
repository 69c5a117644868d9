//! Power levels and membership transitions, enforced by the room version's auth rules.

use serde_json::json;

use crate::server::{Session, TestServer};

async fn three(s: &TestServer) -> (Session, Session, Session) {
    (
        s.register("alice", "password1").await,
        s.register("bob", "password1").await,
        s.register("carol", "password1").await,
    )
}

#[tokio::test]
async fn power_levels_are_enforced() {
    let s = TestServer::start();
    let (alice, bob, _) = three(&s).await;
    for version in ["11", "12"] {
        let room =
            s.create_room(&alice.access_token, json!({ "preset": "public_chat", "room_version": version })).await;
        assert_eq!(s.join(&bob.access_token, &room).await.status, 200);

        let r = s.set_state(&bob.access_token, &room, "m.room.name", "", json!({ "name": "Bob's" })).await;
        assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "v{version}: users at 0 cannot rename");
        assert!(r.body["error"].as_str().unwrap().contains("not authorized"), "{:?}", r.body);
        let r = s.set_state(&alice.access_token, &room, "m.room.name", "", json!({ "name": "Alice's" })).await;
        assert_eq!(r.status, 200);

        let pl =
            s.get(&format!("/_matrix/client/v3/rooms/{room}/state/m.room.power_levels/"), alice.token()).await.body;
        let mut raised = pl.clone();
        raised["users"]["@bob:localhost"] = json!(100);
        let r = s.set_state(&bob.access_token, &room, "m.room.power_levels", "", raised).await;
        assert_eq!(r.status, 403, "v{version}: nobody raises themselves");

        let mut moderator = pl.clone();
        moderator["users"]["@bob:localhost"] = json!(50);
        assert_eq!(
            s.set_state(&alice.access_token, &room, "m.room.power_levels", "", moderator.clone()).await.status,
            200
        );
        let r = s.set_state(&bob.access_token, &room, "m.room.topic", "", json!({ "topic": "by bob" })).await;
        assert_eq!(r.status, 200, "v{version}: 50 may set the topic");
        let mut above = moderator.clone();
        above["users"]["@bob:localhost"] = json!(75);
        assert_eq!(s.set_state(&bob.access_token, &room, "m.room.power_levels", "", above).await.status, 403);

        let r = s.room_post(&bob.access_token, &room, "kick", json!({ "user_id": "@alice:localhost" })).await;
        assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "v{version}: cannot kick a higher user");

        if version == "12" {
            // Creators outrank everyone, whatever the power levels say.
            let mut demote = moderator.clone();
            demote["users"]["@bob:localhost"] = json!(100);
            let r = s.set_state(&alice.access_token, &room, "m.room.power_levels", "", demote).await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            let r = s.room_post(&bob.access_token, &room, "kick", json!({ "user_id": "@alice:localhost" })).await;
            assert_eq!(r.status, 403, "a 100 cannot kick the v12 creator");
            let mut users = moderator.clone();
            users["users"]["@alice:localhost"] = json!(100);
            let r = s.set_state(&alice.access_token, &room, "m.room.power_levels", "", users).await;
            assert_eq!(r.status, 403, "v12 creators may not be listed in users: {:?}", r.body);
        }
    }
}

#[tokio::test]
async fn kick_ban_and_redact_follow_their_levels() {
    let s = TestServer::start();
    let (alice, bob, carol) = three(&s).await;
    let room = s.create_room(&alice.access_token, json!({ "preset": "public_chat", "room_version": "11" })).await;
    s.join(&bob.access_token, &room).await;
    s.join(&carol.access_token, &room).await;
    let carol_msg = s.send_text(&carol.access_token, &room, "spam").await;

    assert_eq!(
        s.room_post(&bob.access_token, &room, "kick", json!({ "user_id": "@carol:localhost" })).await.status,
        403
    );
    assert_eq!(
        s.room_post(&bob.access_token, &room, "ban", json!({ "user_id": "@carol:localhost" })).await.status,
        403
    );
    let r = s.put(&format!("/_matrix/client/v3/rooms/{room}/redact/{carol_msg}/r1"), bob.token(), json!({})).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "redacting others needs the redact level");

    let mut pl =
        s.get(&format!("/_matrix/client/v3/rooms/{room}/state/m.room.power_levels/"), alice.token()).await.body;
    pl["users"]["@bob:localhost"] = json!(50);
    pl["ban"] = json!(75);
    assert_eq!(s.set_state(&alice.access_token, &room, "m.room.power_levels", "", pl).await.status, 200);
    let r = s
        .put(
            &format!("/_matrix/client/v3/rooms/{room}/redact/{carol_msg}/r2"),
            bob.token(),
            json!({ "reason": "spam" }),
        )
        .await;
    assert_eq!(r.status, 200, "50 meets redact 50: {:?}", r.body);
    assert_eq!(
        s.room_post(&bob.access_token, &room, "ban", json!({ "user_id": "@carol:localhost" })).await.status,
        403,
        "ban needs 75"
    );
    let r =
        s.room_post(&bob.access_token, &room, "kick", json!({ "user_id": "@carol:localhost", "reason": "bye" })).await;
    assert_eq!(r.status, 200);
    let m = s
        .get(&format!("/_matrix/client/v3/rooms/{room}/state/m.room.member/@carol:localhost"), alice.token())
        .await
        .body;
    assert_eq!(m, json!({ "membership": "leave", "reason": "bye" }));
}

#[tokio::test]
async fn membership_transitions() {
    let s = TestServer::start();
    let (alice, bob, carol) = three(&s).await;
    let private = s.create_room(&alice.access_token, json!({ "preset": "private_chat" })).await;
    let r = s.join(&bob.access_token, &private).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "invite-only refuses the uninvited");
    let r = s.room_post(&alice.access_token, &private, "invite", json!({ "user_id": "@bob:localhost" })).await;
    assert_eq!(r.status, 200);
    let m = s.get(&format!("/_matrix/client/v3/rooms/{private}/members?membership=invite"), alice.token()).await;
    assert_eq!(m.body["chunk"][0]["state_key"], "@bob:localhost");
    assert_eq!(s.join(&bob.access_token, &private).await.status, 200, "invite → join");
    let r = s.room_post(&alice.access_token, &private, "invite", json!({ "user_id": "@bob:localhost" })).await;
    assert_eq!(r.status, 403, "already joined");
    let r = s.room_post(&alice.access_token, &private, "invite", json!({ "user_id": "@nobody:localhost" })).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));

    let public = s.create_room(&alice.access_token, json!({ "preset": "public_chat" })).await;
    assert_eq!(s.join(&carol.access_token, &public).await.status, 200);
    assert_eq!(s.room_post(&carol.access_token, &public, "leave", json!({})).await.status, 200);
    assert_eq!(s.join(&carol.access_token, &public).await.status, 200, "leave then rejoin");
    assert_eq!(
        s.room_post(&alice.access_token, &public, "ban", json!({ "user_id": "@carol:localhost", "reason": "rude" }))
            .await
            .status,
        200
    );
    let r = s.join(&carol.access_token, &public).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "ban overrides join");
    let r = s
        .put(&format!("/_matrix/client/v3/rooms/{public}/send/m.room.message/x"), carol.token(), json!({ "body": "x" }))
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        s.room_post(&alice.access_token, &public, "unban", json!({ "user_id": "@carol:localhost" })).await.status,
        200
    );
    assert_eq!(s.join(&carol.access_token, &public).await.status, 200, "unbanned users may rejoin");
    let r = s.room_post(&alice.access_token, &public, "unban", json!({ "user_id": "@carol:localhost" })).await;
    assert_eq!(r.status, 403, "only banned users can be unbanned");

    let knockable = s.create_room(&alice.access_token, json!({ "initial_state": [{ "type": "m.room.join_rules", "state_key": "", "content": { "join_rule": "knock" } }] })).await;
    let r =
        s.post(&format!("/_matrix/client/v3/knock/{knockable}"), carol.token(), json!({ "reason": "let me in" })).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["room_id"], json!(knockable));
    let m = s
        .get(&format!("/_matrix/client/v3/rooms/{knockable}/state/m.room.member/@carol:localhost"), alice.token())
        .await
        .body;
    assert_eq!(m["membership"], "knock");
    assert_eq!(m["reason"], "let me in");
    assert_eq!(s.join(&carol.access_token, &knockable).await.status, 403, "a knock is not an invite");
    assert_eq!(
        s.room_post(&alice.access_token, &knockable, "invite", json!({ "user_id": "@carol:localhost" })).await.status,
        200
    );
    assert_eq!(s.join(&carol.access_token, &knockable).await.status, 200, "knock → invite → join");
    let r = s.post(&format!("/_matrix/client/v3/knock/{private}"), carol.token(), json!({})).await;
    assert_eq!(r.status, 403, "knocking needs a knock join rule");

    assert_eq!(
        s.room_post(&carol.access_token, &knockable, "forget", json!({})).await.status,
        400,
        "leave before forgetting"
    );
    assert_eq!(s.room_post(&carol.access_token, &knockable, "leave", json!({})).await.status, 200);
    assert_eq!(s.room_post(&carol.access_token, &knockable, "forget", json!({})).await.status, 200);
    let r = s.room_post(&carol.access_token, &knockable, "leave", json!({})).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"));
}

/// A room of `creator` in `version` whose join rule is `rule` with one `m.room_membership`
/// allow entry for `allowed`.
async fn restricted_room(s: &TestServer, creator: &Session, version: &str, rule: &str, allowed: &str) -> String {
    let content = json!({ "join_rule": rule, "allow": [{ "type": "m.room_membership", "room_id": allowed }] });
    let body = json!({
        "preset": "private_chat",
        "room_version": version,
        "initial_state": [{ "type": "m.room.join_rules", "state_key": "", "content": content }],
    });
    s.create_room(&creator.access_token, body).await
}

async fn member_content(s: &TestServer, by: &Session, room: &str, user: &str) -> serde_json::Value {
    let r = s.get(&format!("/_matrix/client/v3/rooms/{room}/state/m.room.member/{user}"), by.token()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body
}

#[tokio::test]
async fn restricted_rooms_admit_members_of_the_allowed_room() {
    let s = TestServer::start();
    let (alice, bob, carol) = three(&s).await;
    let space = s.create_room(&alice.access_token, json!({ "preset": "public_chat" })).await;
    assert_eq!(s.join(&bob.access_token, &space).await.status, 200);
    for (version, rule) in [
        ("8", "restricted"),
        ("9", "restricted"),
        ("10", "restricted"),
        ("10", "knock_restricted"),
        ("11", "restricted"),
        ("11", "knock_restricted"),
        ("12", "restricted"),
        ("12", "knock_restricted"),
    ] {
        let room = restricted_room(&s, &alice, version, rule, &space).await;
        let r = s.join(&bob.access_token, &room).await;
        assert_eq!(r.status, 200, "v{version} {rule}: a member of the allowed room joins: {:?}", r.body);
        let m = member_content(&s, &alice, &room, "@bob:localhost").await;
        assert_eq!(m["membership"], "join");
        assert_eq!(m["join_authorised_via_users_server"], "@alice:localhost", "v{version} {rule}: {m}");
        assert_eq!(s.join(&bob.access_token, &room).await.status, 200, "joining again is a no-op");

        let r = s.join(&carol.access_token, &room).await;
        assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "v{version} {rule}: carol is not in the space");

        // An invited user needs no authoriser.
        let invite = json!({ "user_id": "@carol:localhost" });
        assert_eq!(s.room_post(&alice.access_token, &room, "invite", invite).await.status, 200);
        assert_eq!(s.join(&carol.access_token, &room).await.status, 200, "v{version} {rule}: invited");
        let m = member_content(&s, &alice, &room, "@carol:localhost").await;
        assert_eq!(m["membership"], "join");
        assert!(m.get("join_authorised_via_users_server").is_none(), "{m}");
        assert_eq!(s.room_post(&carol.access_token, &room, "leave", json!({})).await.status, 200);
    }

    // A profile change in a restricted room is a join → join without the authoriser.
    let room = restricted_room(&s, &alice, "10", "restricted", &space).await;
    assert_eq!(s.join(&bob.access_token, &room).await.status, 200);
    let path = "/_matrix/client/v3/profile/@bob:localhost/displayname";
    assert_eq!(s.put(path, bob.token(), json!({ "displayname": "Bobby" })).await.status, 200);
    let m = member_content(&s, &alice, &room, "@bob:localhost").await;
    assert_eq!(m, json!({ "membership": "join", "displayname": "Bobby" }));

    // A room version without restricted joins, or an allowed room this server is not in.
    let room = restricted_room(&s, &alice, "7", "restricted", &space).await;
    assert_eq!(s.join(&bob.access_token, &room).await.status, 403, "v7 has no restricted rule");
    let room = restricted_room(&s, &alice, "10", "restricted", "!nowhere:elsewhere.example").await;
    let r = s.join(&bob.access_token, &room).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "{:?}", r.body);

    // Leaving the allowed room ends the access.
    let room = restricted_room(&s, &alice, "10", "restricted", &space).await;
    assert_eq!(s.room_post(&bob.access_token, &space, "leave", json!({})).await.status, 200);
    assert_eq!(s.join(&bob.access_token, &room).await.status, 403);
}

#[tokio::test]
async fn forgotten_rooms_are_unreadable_and_leave_sync() {
    let s = TestServer::start();
    let (alice, bob, _) = three(&s).await;
    let room = s.create_room(&alice.access_token, json!({ "preset": "public_chat", "name": "Old" })).await;
    assert_eq!(s.join(&bob.access_token, &room).await.status, 200);
    let event = s.send_text(&alice.access_token, &room, "before the leave").await;
    let since = s.get("/_matrix/client/v3/sync?timeout=0", bob.token()).await.body["next_batch"].clone();
    let since = since.as_str().unwrap().to_owned();
    assert_eq!(s.room_post(&bob.access_token, &room, "leave", json!({})).await.status, 200);
    let include_leave = "filter=%7B%22room%22%3A%7B%22include_leave%22%3Atrue%7D%7D";
    let reads = [
        format!("/_matrix/client/v3/rooms/{room}/messages?dir=b"),
        format!("/_matrix/client/v3/rooms/{room}/state"),
        format!("/_matrix/client/v3/rooms/{room}/state/m.room.name/"),
        format!("/_matrix/client/v3/rooms/{room}/event/{event}"),
        format!("/_matrix/client/v3/rooms/{room}/context/{event}"),
        format!("/_matrix/client/v3/rooms/{room}/members"),
        format!("/_matrix/client/v1/rooms/{room}/relations/{event}"),
        format!("/_matrix/client/v1/rooms/{room}/threads"),
        format!("/_matrix/client/v1/rooms/{room}/timestamp_to_event?ts=0&dir=f"),
        format!("/_matrix/client/v3/rooms/{room}/aliases"),
    ];
    for path in &reads {
        assert_eq!(s.get(path, bob.token()).await.status, 200, "readable after leaving: {path}");
    }
    let r = s.get(&format!("/_matrix/client/v3/sync?since={since}&timeout=0"), bob.token()).await;
    assert!(r.body["rooms"]["leave"].get(&room).is_some(), "the leave is synced: {:?}", r.body["rooms"]);

    assert_eq!(s.room_post(&bob.access_token, &room, "forget", json!({})).await.status, 200);
    for path in &reads {
        let r = s.get(path, bob.token()).await;
        assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "forgotten: {path}: {:?}", r.body);
    }
    for path in [
        format!("/_matrix/client/v3/sync?since={since}&timeout=0"),
        format!("/_matrix/client/v3/sync?since={since}&timeout=0&{include_leave}"),
        format!("/_matrix/client/v3/sync?timeout=0&{include_leave}"),
    ] {
        let r = s.get(&path, bob.token()).await;
        assert_eq!(r.status, 200);
        assert!(r.body["rooms"]["leave"].get(&room).is_none(), "{path}: {:?}", r.body["rooms"]["leave"]);
        assert!(r.body["rooms"]["join"].get(&room).is_none(), "{path}");
    }
    // Others still read it.
    assert_eq!(s.get(&reads[0], alice.token()).await.status, 200);

    // Joining again un-forgets; a later leave is synced again.
    assert_eq!(s.join(&bob.access_token, &room).await.status, 200);
    for path in &reads {
        assert_eq!(s.get(path, bob.token()).await.status, 200, "rejoined: {path}");
    }
    let since = s.get("/_matrix/client/v3/sync?timeout=0", bob.token()).await.body["next_batch"].clone();
    let since = since.as_str().unwrap().to_owned();
    assert_eq!(s.room_post(&bob.access_token, &room, "leave", json!({})).await.status, 200);
    let r = s.get(&format!("/_matrix/client/v3/sync?since={since}&timeout=0"), bob.token()).await;
    assert!(r.body["rooms"]["leave"].get(&room).is_some(), "the new leave is synced: {:?}", r.body["rooms"]);

    // Forgotten after a ban too, and a new invite (a new membership) un-forgets.
    assert_eq!(s.join(&bob.access_token, &room).await.status, 200);
    assert_eq!(
        s.room_post(&alice.access_token, &room, "ban", json!({ "user_id": "@bob:localhost" })).await.status,
        200
    );
    assert_eq!(s.room_post(&bob.access_token, &room, "forget", json!({})).await.status, 200);
    assert_eq!(s.get(&reads[1], bob.token()).await.status, 403);
    assert_eq!(
        s.room_post(&alice.access_token, &room, "unban", json!({ "user_id": "@bob:localhost" })).await.status,
        200
    );
    assert_eq!(s.get(&reads[1], bob.token()).await.status, 200, "the unban is a new membership");
}
