//! The Client-Server admin endpoints: whois, suspension, locking.

use serde_json::json;

use crate::accounts::mac;
use crate::server::{Session, TestServer};

/// A server with shared-secret registration, and an admin registered through it.
async fn with_admin() -> (TestServer, Session) {
    let s = TestServer::start_with(&[("TRELLIS_REGISTRATION__SHARED_SECRET", "s3cret")]);
    let nonce = s.get("/_synapse/admin/v1/register", None).await.body["nonce"].as_str().unwrap().to_owned();
    let body = json!({ "nonce": nonce, "username": "root", "password": "pw", "admin": true, "mac": mac("s3cret", &nonce, "root", "pw", true) });
    let r = s.post("/_synapse/admin/v1/register", None, body).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let admin = Session::from(&r.body);
    (s, admin)
}

#[tokio::test]
async fn whois_lists_devices_with_their_last_connection() {
    let (s, admin) = with_admin().await;
    let alice = s.register("alice", "password1").await;
    s.get("/_matrix/client/v3/account/whoami", alice.token()).await;
    let r = s.get("/_matrix/client/v3/admin/whois/@alice:localhost", admin.token()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["user_id"], "@alice:localhost");
    let connection = &r.body["devices"][&alice.device_id]["sessions"][0]["connections"][0];
    assert_eq!(connection["ip"], "127.0.0.1");
    assert!(connection["last_seen"].as_u64().unwrap() > 1_700_000_000_000);
    // Oneself, yes; someone else, only as an admin.
    assert_eq!(s.get("/_matrix/client/v3/admin/whois/@alice:localhost", alice.token()).await.status, 200);
    let r = s.get("/_matrix/client/v3/admin/whois/@root:localhost", alice.token()).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"));
    let r = s.get("/_matrix/client/v3/admin/whois/@nobody:localhost", admin.token()).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));
}

#[tokio::test]
async fn a_suspended_account_reads_but_does_not_write() {
    let (s, admin) = with_admin().await;
    let alice = s.register("alice", "password1").await;
    let bob = s.register("bob", "password1").await;
    let room = s.create_room(&alice.access_token, json!({ "preset": "public_chat" })).await;
    let other = s.create_room(&bob.access_token, json!({ "preset": "public_chat" })).await;
    let sent = s.send_text(&alice.access_token, &room, "before").await;
    let path = "/_matrix/client/v1/admin/suspend/@alice:localhost";

    assert_eq!(s.get(path, admin.token()).await.body, json!({ "suspended": false }));
    let r = s.put(path, alice.token(), json!({ "suspended": true })).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "only admins suspend");
    let r = s.put(path, admin.token(), json!({ "suspended": true })).await;
    assert_eq!(r.body, json!({ "suspended": true }));
    assert_eq!(s.get(path, admin.token()).await.body, json!({ "suspended": true }));

    let suspended = |r: crate::server::Resp| (r.status, r.errcode().to_owned());
    let forbidden = (403, "M_USER_SUSPENDED".to_owned());
    let t = alice.token();
    let r = s
        .put(
            &format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/t1"),
            t,
            json!({ "msgtype": "m.text", "body": "x" }),
        )
        .await;
    assert_eq!(suspended(r), forbidden);
    let r = s.put(&format!("/_matrix/client/v3/rooms/{room}/state/m.room.topic/"), t, json!({ "topic": "x" })).await;
    assert_eq!(suspended(r), forbidden);
    assert_eq!(suspended(s.post("/_matrix/client/v3/createRoom", t, json!({})).await), forbidden);
    assert_eq!(suspended(s.post(&format!("/_matrix/client/v3/join/{other}"), t, json!({})).await), forbidden);
    let r = s.post(&format!("/_matrix/client/v3/rooms/{room}/invite"), t, json!({ "user_id": "@bob:localhost" })).await;
    assert_eq!(suspended(r), forbidden);
    let r = s.put("/_matrix/client/v3/profile/@alice:localhost/displayname", t, json!({ "displayname": "A" })).await;
    assert_eq!(suspended(r), forbidden);
    // Reading, redacting one's own message and leaving still work.
    assert_eq!(s.message_bodies(&alice.access_token, &room).await, ["before"]);
    let r = s.put(&format!("/_matrix/client/v3/rooms/{room}/redact/{sent}/r1"), t, json!({})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(s.get("/_matrix/client/v3/sync?timeout=0", t).await.status, 200);

    let r = s.put(path, admin.token(), json!({ "suspended": false })).await;
    assert_eq!(r.body, json!({ "suspended": false }));
    s.send_text(&alice.access_token, &room, "after").await;

    let r =
        s.put("/_matrix/client/v1/admin/suspend/@nobody:localhost", admin.token(), json!({ "suspended": true })).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));
    let r = s
        .put("/_matrix/client/v1/admin/suspend/@x:elsewhere.example", admin.token(), json!({ "suspended": true }))
        .await;
    assert_eq!((r.status, r.errcode()), (400, "M_INVALID_PARAM"));
}

#[tokio::test]
async fn a_locked_account_may_only_log_out() {
    let (s, admin) = with_admin().await;
    let alice = s.register("alice", "password1").await;
    let second = Session::from(&s.login("alice", "password1").await.body);
    let path = "/_matrix/client/v1/admin/lock/@alice:localhost";
    let r = s.put(path, admin.token(), json!({ "locked": true })).await;
    assert_eq!(r.body, json!({ "locked": true }));
    assert_eq!(s.get(path, admin.token()).await.body, json!({ "locked": true }));

    let r = s.get("/_matrix/client/v3/account/whoami", alice.token()).await;
    assert_eq!((r.status, r.errcode()), (401, "M_USER_LOCKED"));
    assert_eq!(r.body["soft_logout"], true);
    let r = s.get("/_matrix/client/v3/sync?timeout=0", alice.token()).await;
    assert_eq!((r.status, r.errcode()), (401, "M_USER_LOCKED"));
    assert_eq!(s.post("/_matrix/client/v3/logout", second.token(), json!({})).await.status, 200);

    // Unlocked, the same token works again.
    let r = s.put(path, admin.token(), json!({ "locked": false })).await;
    assert_eq!(r.body, json!({ "locked": false }));
    assert_eq!(s.get("/_matrix/client/v3/account/whoami", alice.token()).await.body["user_id"], "@alice:localhost");

    let r = s.put("/_matrix/client/v1/admin/lock/@root:localhost", admin.token(), json!({ "locked": true })).await;
    assert_eq!((r.status, r.errcode()), (400, "M_INVALID_PARAM"), "no locking oneself out");
    let r = s.get(path, alice.token()).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"));
}
