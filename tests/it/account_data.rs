//! Account data and filters.

use serde_json::json;

use crate::server::TestServer;

#[tokio::test]
async fn global_and_room_account_data() {
    let s = TestServer::start();
    let a = s.register("alice", "password1").await;
    let path = "/_matrix/client/v3/user/@alice:localhost/account_data/org.example.settings";
    let r = s.get(path, a.token()).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));
    assert_eq!(s.put(path, a.token(), json!({ "theme": "dark" })).await.status, 200);
    assert_eq!(s.put(path, a.token(), json!({ "theme": "light", "n": 2 })).await.status, 200);
    assert_eq!(s.get(path, a.token()).await.body, json!({ "theme": "light", "n": 2 }));

    let room = "/_matrix/client/v3/user/@alice:localhost/rooms/!abc:localhost/account_data/m.tag.x";
    assert_eq!(s.put(room, a.token(), json!({ "pinned": true })).await.status, 200);
    assert_eq!(s.get(room, a.token()).await.body, json!({ "pinned": true }));
    let r =
        s.get("/_matrix/client/v3/user/@alice:localhost/rooms/!other:localhost/account_data/m.tag.x", a.token()).await;
    assert_eq!(r.status, 404, "room data is per room");

    let r = s
        .put(
            "/_matrix/client/v3/user/@alice:localhost/account_data/m.fully_read",
            a.token(),
            json!({ "event_id": "$x" }),
        )
        .await;
    assert_eq!((r.status, r.errcode()), (405, "M_BAD_JSON"));
    let r =
        s.put("/_matrix/client/v3/user/@alice:localhost/rooms/not-a-room/account_data/x", a.token(), json!({})).await;
    assert_eq!((r.status, r.errcode()), (400, "M_INVALID_PARAM"));

    let b = s.register("bob", "password1").await;
    let r = s.get(path, b.token()).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"));
    let r = s.put(path, b.token(), json!({})).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"));
}

#[tokio::test]
async fn filters() {
    let s = TestServer::start();
    let a = s.register("alice", "password1").await;
    let filter = json!({ "room": { "timeline": { "limit": 10, "types": ["m.room.message"] } }, "presence": { "not_types": ["*"] } });
    let r = s.post("/_matrix/client/v3/user/@alice:localhost/filter", a.token(), filter).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let id = r.body["filter_id"].as_str().unwrap().to_owned();
    let r = s.get(&format!("/_matrix/client/v3/user/@alice:localhost/filter/{id}"), a.token()).await;
    assert_eq!(r.body["room"]["timeline"]["limit"], json!(10));
    assert_eq!(r.body["room"]["timeline"]["types"], json!(["m.room.message"]));
    assert_eq!(r.body["presence"]["not_types"], json!(["*"]));
    let r = s.get("/_matrix/client/v3/user/@alice:localhost/filter/nope", a.token()).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));
    let b = s.register("bob", "password1").await;
    let r = s.get(&format!("/_matrix/client/v3/user/@alice:localhost/filter/{id}"), b.token()).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"));
}
