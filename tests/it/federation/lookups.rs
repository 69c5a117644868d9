//! Client lookups that name another server are asked of it: a remote alias
//! (`/directory/room`, `/room_summary`), another server's public rooms (`/publicRooms?server=`).
//! Two real servers: alice on A looks up what bob published on B.

use serde_json::json;

use super::join::Pair;
use crate::server::urlencode;

#[tokio::test]
async fn remote_alias_public_rooms_and_summary_are_asked_of_the_other_server() {
    let p = Pair::start().await;
    let body = json!({ "visibility": "public", "room_alias_name": "lobby", "name": "Lobby", "topic": "Chat here" });
    let room = p.public_room(body).await;
    let alias = format!("#lobby:{}", p.b.name);
    let (a, tok) = (&p.a.server, p.alice.token());

    // The alias, resolved by B (`/query/directory`): the room and B as the server to join via.
    let r = a.get(&format!("/_matrix/client/v3/directory/room/{}", urlencode(&alias)), tok).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body, json!({ "room_id": room, "servers": [p.b.name] }));
    let r =
        a.get(&format!("/_matrix/client/v3/directory/room/{}", urlencode(&format!("#nope:{}", p.b.name))), tok).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"), "{:?}", r.body);
    // On B itself, the same answer from its own table.
    let r = p.b.server.get(&format!("/_matrix/client/v3/directory/room/{}", urlencode(&alias)), p.bob.token()).await;
    assert_eq!(r.body, json!({ "room_id": room, "servers": [p.b.name] }));

    // B's directory, through A.
    let server = urlencode(p.b.name.as_str());
    let r = a.get(&format!("/_matrix/client/v3/publicRooms?server={server}"), tok).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let chunk = r.body["chunk"].as_array().unwrap();
    assert_eq!(chunk.len(), 1, "{:?}", r.body);
    assert_eq!((chunk[0]["room_id"].as_str(), chunk[0]["name"].as_str()), (Some(room.as_str()), Some("Lobby")));
    assert_eq!((chunk[0]["num_joined_members"].as_u64(), chunk[0]["join_rule"].as_str()), (Some(1), Some("public")));
    assert_eq!(r.body["total_room_count_estimate"], 1);
    // A's own directory is empty.
    let r = a.get("/_matrix/client/v3/publicRooms", tok).await;
    assert_eq!(r.body["chunk"], json!([]));
    for (term, count) in [("lob", 1), ("nothing like it", 0)] {
        let body = json!({ "filter": { "generic_search_term": term } });
        let r = a.post(&format!("/_matrix/client/v3/publicRooms?server={server}"), tok, body).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body["chunk"].as_array().unwrap().len(), count, "{term}: {:?}", r.body);
    }

    // A summary of the room A is not in, by alias: from B's hierarchy.
    let r = a.get(&format!("/_matrix/client/v1/room_summary/{}", urlencode(&alias)), tok).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!((r.body["room_id"].as_str(), r.body["name"].as_str()), (Some(room.as_str()), Some("Lobby")));
    assert_eq!(
        (r.body["topic"].as_str(), r.body["join_rule"].as_str()),
        (Some("Chat here"), Some("public")),
        "{:?}",
        r.body
    );
    assert_eq!((r.body["membership"].as_str(), r.body["room_version"].as_str()), (Some("leave"), Some("12")));
    assert!(r.body.get("children_state").is_none());

    // Joining by the alias resolves it the same way, then shows in the summary.
    let r = a.join(&p.alice.access_token, &alias).await;
    assert_eq!((r.status, r.body["room_id"].as_str()), (200, Some(room.as_str())), "{:?}", r.body);
    let r = a.get(&format!("/_matrix/client/v1/room_summary/{}", urlencode(&alias)), tok).await;
    assert_eq!((r.status, r.body["membership"].as_str()), (200, Some("join")), "{:?}", r.body);
    assert_eq!(r.body["num_joined_members"], 2);
}

/// `m.room.canonical_alias` may name another server's alias once that server says it points to
/// the room (`/query/directory`); one it does not know, or one for another room, is 400
/// `M_BAD_ALIAS`.
#[tokio::test]
async fn a_canonical_alias_of_another_server_is_checked_with_it() {
    let p = Pair::start().await;
    let room = p.a.server.create_room(&p.alice.access_token, json!({ "preset": "public_chat" })).await;
    let path = format!("/_matrix/client/v3/join/{}?via={}", urlencode(&room), urlencode(p.a.name.as_str()));
    let r = p.b.server.post(&path, p.bob.token(), json!({})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let here = format!("#here:{}", p.b.name);
    let body = json!({ "room_id": room });
    let r =
        p.b.server.put(&format!("/_matrix/client/v3/directory/room/{}", urlencode(&here)), p.bob.token(), body).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let elsewhere = p.b.server.create_room(&p.bob.access_token, json!({ "room_alias_name": "elsewhere" })).await;
    assert!(elsewhere.starts_with('!'));

    let set = async |content: serde_json::Value| {
        p.a.server.set_state(&p.alice.access_token, &room, "m.room.canonical_alias", "", content).await
    };
    let r = set(json!({ "alias": here })).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r =
        p.a.server
            .get(&format!("/_matrix/client/v3/rooms/{room}/state/m.room.canonical_alias/"), p.alice.token())
            .await;
    assert_eq!(r.body, json!({ "alias": here }));
    for bad in [format!("#nope:{}", p.b.name), format!("#elsewhere:{}", p.b.name)] {
        let r = set(json!({ "alias": here, "alt_aliases": [bad] })).await;
        assert_eq!((r.status, r.errcode()), (400, "M_BAD_ALIAS"), "{bad}: {:?}", r.body);
    }
}

/// A space on B with a public child and an invite-only one; alice on A joined the space: A's
/// `/hierarchy` has the space from A's own state and the public child from B's federation
/// `/hierarchy`, not the invite-only child; `max_depth` and pages; B's own walk has all three.
#[tokio::test]
async fn space_hierarchy_walks_local_and_remote_rooms() {
    let p = Pair::start().await;
    let tok = p.bob.access_token.as_str();
    let space = p.public_room(json!({ "name": "Space", "creation_content": { "type": "m.space" } })).await;
    let child = p.public_room(json!({ "name": "Child" })).await;
    let secret = p.b.server.create_room(tok, json!({ "preset": "private_chat", "name": "Secret" })).await;
    for c in [&child, &secret] {
        let r = p.b.server.set_state(tok, &space, "m.space.child", c, json!({ "via": [p.b.name] })).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    let r = p.alice_joins(&space).await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    let path = |room: &str, q: &str| format!("/_matrix/client/v1/rooms/{}/hierarchy{q}", urlencode(room));
    let ids = |body: &serde_json::Value| -> Vec<String> {
        body["rooms"].as_array().unwrap().iter().map(|r| r["room_id"].as_str().unwrap().to_owned()).collect()
    };
    let r = p.a.server.get(&path(&space, ""), p.alice.token()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(ids(&r.body), [space.clone(), child.clone()]);
    let rooms = r.body["rooms"].as_array().unwrap();
    assert_eq!((rooms[0]["name"].as_str(), rooms[0]["room_type"].as_str()), (Some("Space"), Some("m.space")));
    assert_eq!(rooms[0]["children_state"].as_array().unwrap().len(), 2);
    assert_eq!(rooms[0]["num_joined_members"], 2);
    assert_eq!((rooms[1]["name"].as_str(), rooms[1]["join_rule"].as_str()), (Some("Child"), Some("public")));
    assert_eq!(rooms[1]["children_state"], json!([]));
    assert!(r.body.get("next_batch").is_none(), "{:?}", r.body);

    let r = p.a.server.get(&path(&space, "?max_depth=0"), p.alice.token()).await;
    assert_eq!(ids(&r.body), vec![space.clone()]);
    let r = p.a.server.get(&path(&space, "?limit=1"), p.alice.token()).await;
    assert_eq!((ids(&r.body), r.body["next_batch"].as_str()), (vec![space.clone()], Some("h1")));
    let r = p.a.server.get(&path(&space, "?limit=1&from=h1"), p.alice.token()).await;
    assert_eq!(ids(&r.body), vec![child.clone()]);
    for bad in ["?from=garbage", "?from=h"] {
        let r = p.a.server.get(&path(&space, bad), p.alice.token()).await;
        assert_eq!((r.status, r.errcode()), (400, "M_INVALID_PARAM"), "{bad}: {:?}", r.body);
    }

    // A room alice may not see, as the root: 403.
    let r = p.a.server.get(&path(&secret, ""), p.alice.token()).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "{:?}", r.body);
    // On B, bob sees all three from B's own state.
    let r = p.b.server.get(&path(&space, ""), p.bob.token()).await;
    assert_eq!(ids(&r.body), [space.clone(), child.clone(), secret.clone()]);
}
