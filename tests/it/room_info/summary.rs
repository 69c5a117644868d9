//! Room summaries (`/room_summary/{roomIdOrAlias}` and the MSC3266 unstable path).

use serde_json::json;

use crate::server::{TestServer, urlencode};

fn summary_path(target: &str) -> String {
    format!("/_matrix/client/v1/room_summary/{}", urlencode(target))
}

#[tokio::test]
async fn room_summary_previews_rooms_the_requester_may_see() {
    let s = TestServer::start();
    let a = s.register("alice", "password1").await;
    let b = s.register("bob", "password1").await;
    let c = s.register("carol", "password1").await;
    let public = s
        .create_room(
            &a.access_token,
            json!({ "preset": "public_chat", "name": "Garden", "topic": "Plants", "room_alias_name": "garden" }),
        )
        .await;
    let expected = json!({
        "room_id": public, "name": "Garden", "topic": "Plants", "canonical_alias": "#garden:localhost",
        "num_joined_members": 1, "join_rule": "public", "world_readable": false, "guest_can_join": false,
        "room_version": "12",
    });
    let r = s.get(&summary_path("#garden:localhost"), None).await;
    assert_eq!((r.status, &r.body), (200, &expected), "unauthenticated: no membership");
    let mut with = expected.clone();
    with["membership"] = json!("leave");
    assert_eq!(s.get(&summary_path(&public), b.token()).await.body, with);
    with["membership"] = json!("join");
    assert_eq!(s.get(&summary_path(&public), a.token()).await.body, with);
    let unstable = format!("/_matrix/client/unstable/im.nheko.summary/rooms/{}/summary", urlencode(&public));
    assert_eq!(s.get(&unstable, a.token()).await.body, with);

    let private = s
        .create_room(
            &a.access_token,
            json!({ "preset": "private_chat", "room_version": "11", "initial_state": [
                { "type": "m.room.encryption", "state_key": "", "content": { "algorithm": "m.megolm.v1.aes-sha2" } }
            ] }),
        )
        .await;
    for token in [None, b.token()] {
        let r = s.get(&summary_path(&private), token).await;
        assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"), "hidden");
    }
    let r = s.get(&summary_path(&private), a.token()).await;
    assert_eq!(
        r.body,
        json!({
            "room_id": private, "num_joined_members": 1, "join_rule": "invite", "world_readable": false,
            "guest_can_join": true, "room_version": "11", "encryption": "m.megolm.v1.aes-sha2", "membership": "join",
        })
    );
    assert_eq!(s.room_post(&a.access_token, &private, "invite", json!({ "user_id": b.user_id })).await.status, 200);
    assert_eq!(s.get(&summary_path(&private), b.token()).await.body["membership"], "invite");
    let r = s
        .set_state(
            &a.access_token,
            &private,
            "m.room.history_visibility",
            "",
            json!({ "history_visibility": "world_readable" }),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = s.get(&summary_path(&private), None).await;
    assert_eq!((r.status, r.body["world_readable"].clone()), (200, json!(true)));

    // Restricted: visible to members of the allowed room.
    let restricted = s.create_room(&a.access_token, json!({ "preset": "private_chat" })).await;
    let rule = json!({ "join_rule": "restricted", "allow": [{ "type": "m.room_membership", "room_id": public }] });
    assert_eq!(s.set_state(&a.access_token, &restricted, "m.room.join_rules", "", rule).await.status, 200);
    assert_eq!(s.get(&summary_path(&restricted), c.token()).await.errcode(), "M_NOT_FOUND");
    assert_eq!(s.join(&c.access_token, &public).await.status, 200);
    let r = s.get(&summary_path(&restricted), c.token()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["allowed_room_ids"], json!([public]));
    assert_eq!(r.body["join_rule"], "restricted");
    assert_eq!(s.get(&summary_path(&public), None).await.body["num_joined_members"], 2);

    for target in ["#nowhere:localhost", "!nowhere:localhost"] {
        let r = s.get(&summary_path(target), a.token()).await;
        assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"), "{target}");
    }
    let r = s.get(&summary_path("garden"), a.token()).await;
    assert_eq!((r.status, r.errcode()), (400, "M_INVALID_PARAM"));
    let r = s.get(&summary_path(&public), Some("bogus")).await;
    assert_eq!((r.status, r.errcode()), (401, "M_UNKNOWN_TOKEN"));
}
