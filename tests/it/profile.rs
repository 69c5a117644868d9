//! Profiles, including extended fields.

use serde_json::json;

use crate::server::TestServer;

#[tokio::test]
async fn displayname_avatar_and_extended_fields() {
    let s = TestServer::start();
    let a = s.register("alice", "password1").await;
    let r = s.get("/_matrix/client/v3/profile/@alice:localhost", None).await;
    assert_eq!(r.body, json!({ "displayname": "alice" }), "defaults to the localpart");

    let base = "/_matrix/client/v3/profile/@alice:localhost";
    assert_eq!(s.put(&format!("{base}/displayname"), a.token(), json!({ "displayname": "Alice" })).await.status, 200);
    assert_eq!(
        s.put(&format!("{base}/avatar_url"), a.token(), json!({ "avatar_url": "mxc://localhost/abc" })).await.status,
        200
    );
    assert_eq!(s.put(&format!("{base}/m.tz"), a.token(), json!({ "m.tz": "Europe/Berlin" })).await.status, 200);
    let r = s.get(&format!("{base}/displayname"), None).await;
    assert_eq!(r.body, json!({ "displayname": "Alice" }));
    let r = s.get(base, None).await;
    assert_eq!(r.body, json!({ "displayname": "Alice", "avatar_url": "mxc://localhost/abc", "m.tz": "Europe/Berlin" }));

    assert_eq!(s.delete(&format!("{base}/m.tz"), a.token(), json!({})).await.status, 200);
    let r = s.get(&format!("{base}/m.tz"), None).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));

    let long_key = "k".repeat(256);
    let r = s.put(&format!("{base}/{long_key}"), a.token(), json!({ long_key.clone(): 1 })).await;
    assert_eq!((r.status, r.errcode()), (400, "M_KEY_TOO_LARGE"));
    let r =
        s.put(&format!("{base}/org.example.bio"), a.token(), json!({ "org.example.bio": "x".repeat(70_000) })).await;
    assert_eq!((r.status, r.errcode()), (400, "M_PROFILE_TOO_LARGE"));

    let b = s.register("bob", "password1").await;
    let r = s.put(&format!("{base}/displayname"), b.token(), json!({ "displayname": "Not Alice" })).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"));
    let r = s.put(&format!("{base}/displayname"), None, json!({ "displayname": "Anon" })).await;
    assert_eq!((r.status, r.errcode()), (401, "M_MISSING_TOKEN"));

    let r = s.get("/_matrix/client/v3/profile/@nobody:localhost", None).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));
    let r = s.get("/_matrix/client/v3/profile/@nobody:localhost/displayname", None).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));
}

/// alice's `m.room.member` contents in the timelines of bob's `/sync` since `since`, per room.
async fn alice_member_events(s: &TestServer, bob: &str, since: &str, room: &str) -> Vec<serde_json::Value> {
    let r = s.get(&format!("/_matrix/client/v3/sync?since={since}&timeout=0"), Some(bob)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["rooms"]["join"][room]["timeline"]["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["type"] == "m.room.member" && e["state_key"] == "@alice:localhost")
        .map(|e| e["content"].clone())
        .collect()
}

#[tokio::test]
async fn profile_changes_reach_every_joined_room() {
    let s = TestServer::start();
    let alice = s.register("alice", "password1").await;
    let bob = s.register("bob", "password1").await;
    let first = s.create_room(&alice.access_token, json!({ "preset": "public_chat" })).await;
    let second = s.create_room(&alice.access_token, json!({ "preset": "public_chat" })).await;
    let left = s.create_room(&bob.access_token, json!({ "preset": "public_chat" })).await;
    for room in [&first, &second] {
        assert_eq!(s.join(&bob.access_token, room).await.status, 200);
    }
    assert_eq!(s.join(&alice.access_token, &left).await.status, 200);
    assert_eq!(s.room_post(&alice.access_token, &left, "leave", json!({})).await.status, 200);
    // Other member content is kept by a profile change.
    let custom = json!({ "membership": "join", "displayname": "alice", "org.example.badge": "gold" });
    let r = s.set_state(&alice.access_token, &first, "m.room.member", "@alice:localhost", custom).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let since = s.get("/_matrix/client/v3/sync?timeout=0", bob.token()).await.body["next_batch"].clone();
    let since = since.as_str().unwrap();

    let r = s
        .put(
            "/_matrix/client/v3/profile/@alice:localhost/displayname",
            alice.token(),
            json!({ "displayname": "Alice Cooper" }),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = s
        .put(
            "/_matrix/client/v3/profile/@alice:localhost/avatar_url",
            alice.token(),
            json!({ "avatar_url": "mxc://localhost/face" }),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    let first_events = alice_member_events(&s, &bob.access_token, since, &first).await;
    assert_eq!(
        first_events,
        vec![
            json!({ "membership": "join", "displayname": "Alice Cooper", "org.example.badge": "gold" }),
            json!({ "membership": "join", "displayname": "Alice Cooper", "avatar_url": "mxc://localhost/face", "org.example.badge": "gold" }),
        ]
    );
    let second_events = alice_member_events(&s, &bob.access_token, since, &second).await;
    assert_eq!(
        second_events,
        vec![
            json!({ "membership": "join", "displayname": "Alice Cooper" }),
            json!({ "membership": "join", "displayname": "Alice Cooper", "avatar_url": "mxc://localhost/face" }),
        ]
    );
    // The room alice left gets nothing.
    let r = s.get(&format!("/_matrix/client/v3/rooms/{left}/state/m.room.member/@alice:localhost"), bob.token()).await;
    assert_eq!(r.body, json!({ "membership": "leave" }));

    // Other members see the new name in /members and /joined_members.
    let r = s.get(&format!("/_matrix/client/v3/rooms/{second}/members"), bob.token()).await;
    let mine: Vec<_> =
        r.body["chunk"].as_array().unwrap().iter().filter(|e| e["state_key"] == "@alice:localhost").collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["content"]["displayname"], "Alice Cooper");
    let r = s.get(&format!("/_matrix/client/v3/rooms/{second}/joined_members"), bob.token()).await;
    assert_eq!(
        r.body["joined"]["@alice:localhost"],
        json!({ "display_name": "Alice Cooper", "avatar_url": "mxc://localhost/face" })
    );

    // Setting the same name again sends nothing; removing the avatar sends a member event without it.
    let since = s.get("/_matrix/client/v3/sync?timeout=0", bob.token()).await.body["next_batch"].clone();
    let since = since.as_str().unwrap();
    let r = s
        .put(
            "/_matrix/client/v3/profile/@alice:localhost/displayname",
            alice.token(),
            json!({ "displayname": "Alice Cooper" }),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = s.delete("/_matrix/client/v3/profile/@alice:localhost/avatar_url", alice.token(), json!({})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let second_events = alice_member_events(&s, &bob.access_token, since, &second).await;
    assert_eq!(second_events, vec![json!({ "membership": "join", "displayname": "Alice Cooper" })]);
}
