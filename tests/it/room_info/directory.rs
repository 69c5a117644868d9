//! `POST /user_directory/search`.

use serde_json::{Value, json};

use crate::server::TestServer;

fn user_ids(r: &Value) -> Vec<&str> {
    r["results"].as_array().unwrap().iter().map(|u| u["user_id"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn user_directory_searches_visible_users() {
    let s = TestServer::start();
    let a = s.register("alice", "password1").await;
    let b = s.register("bob", "password1").await;
    let c = s.register("carol", "password1").await;
    let d = s.register("dave", "password1").await;
    let profile = |u: &str, f: &str| format!("/_matrix/client/v3/profile/{u}/{f}");
    let r = s.put(&profile(&a.user_id, "displayname"), a.token(), json!({ "displayname": "Alice Liddell" })).await;
    assert_eq!(r.status, 200);
    let r =
        s.put(&profile(&c.user_id, "avatar_url"), c.token(), json!({ "avatar_url": "mxc://localhost/carol" })).await;
    assert_eq!(r.status, 200);
    let shared = s.create_room(&a.access_token, json!({ "invite": [b.user_id] })).await;
    assert_eq!(s.join(&b.access_token, &shared).await.status, 200);
    s.create_room(&c.access_token, json!({ "preset": "public_chat" })).await;
    s.create_room(&d.access_token, json!({})).await;
    let search = |token: &str, body: Value| {
        let token = token.to_owned();
        let s = &s;
        async move { s.post("/_matrix/client/v3/user_directory/search", Some(&token), body).await }
    };

    let r = search(&b.access_token, json!({ "search_term": "LIDDELL" })).await;
    assert_eq!(
        (r.status, r.body.clone()),
        (
            200,
            json!({ "results": [{ "user_id": "@alice:localhost", "display_name": "Alice Liddell" }], "limited": false })
        )
    );
    let r = search(&b.access_token, json!({ "search_term": "alice lid" })).await;
    assert_eq!(user_ids(&r.body), ["@alice:localhost"], "every word must match");
    let r = search(&b.access_token, json!({ "search_term": "car" })).await;
    assert_eq!(
        r.body,
        json!({ "results": [{ "user_id": "@carol:localhost", "display_name": "carol", "avatar_url": "mxc://localhost/carol" }], "limited": false }),
        "carol is in a public room"
    );
    let r = search(&b.access_token, json!({ "search_term": "dave" })).await;
    assert_eq!(r.body, json!({ "results": [], "limited": false }), "dave shares nothing with bob");
    let r = search(&d.access_token, json!({ "search_term": "alice" })).await;
    assert_eq!(user_ids(&r.body), Vec::<&str>::new());

    // Ranking: a word starting the localpart or a display-name word first.
    let r = search(&b.access_token, json!({ "search_term": "c" })).await;
    assert_eq!(user_ids(&r.body), ["@carol:localhost", "@alice:localhost", "@bob:localhost"]);
    let r = search(&b.access_token, json!({ "search_term": "l" })).await;
    assert_eq!(user_ids(&r.body), ["@alice:localhost", "@bob:localhost", "@carol:localhost"], "Liddell");
    let r = search(&b.access_token, json!({ "search_term": "localhost", "limit": 2 })).await;
    assert_eq!((user_ids(&r.body).len(), r.body["limited"].clone()), (2, json!(true)));
    let r = search(&b.access_token, json!({ "search_term": "localhost", "limit": 3 })).await;
    assert_eq!((user_ids(&r.body).len(), r.body["limited"].clone()), (3, json!(false)));

    // World-readable rooms count too.
    let r = s
        .set_state(
            &a.access_token,
            &shared,
            "m.room.history_visibility",
            "",
            json!({ "history_visibility": "world_readable" }),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = search(&d.access_token, json!({ "search_term": "alice" })).await;
    assert_eq!(user_ids(&r.body), ["@alice:localhost"]);

    // Deactivated users disappear.
    let auth = json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "carol" }, "password": "password1" });
    assert_eq!(s.post("/_matrix/client/v3/account/deactivate", c.token(), json!({ "auth": auth })).await.status, 200);
    let r = search(&d.access_token, json!({ "search_term": "carol" })).await;
    assert_eq!(user_ids(&r.body), Vec::<&str>::new());

    for (body, code) in [
        (json!({}), "M_MISSING_PARAM"),
        (json!({ "search_term": 5 }), "M_BAD_JSON"),
        (json!({ "search_term": "a", "limit": -1 }), "M_BAD_JSON"),
    ] {
        let r = search(&b.access_token, body.clone()).await;
        assert_eq!((r.status, r.errcode()), (400, code), "{body}");
    }
    let r = s.post("/_matrix/client/v3/user_directory/search", None, json!({ "search_term": "a" })).await;
    assert_eq!((r.status, r.errcode()), (401, "M_MISSING_TOKEN"));
}
