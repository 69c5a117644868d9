//! Mutual rooms, reporting users, the support well-known, phone numbers.

use serde_json::json;

use crate::server::TestServer;

#[tokio::test]
async fn mutual_rooms_are_the_rooms_both_are_joined_to() {
    let s = TestServer::start();
    let alice = s.register("alice", "password1").await;
    let bob = s.register("bob", "password1").await;
    let mut shared = Vec::new();
    for _ in 0..3 {
        let room = s.create_room(&alice.access_token, json!({ "preset": "public_chat" })).await;
        s.join(&bob.access_token, &room).await;
        shared.push(room);
    }
    let _alone = s.create_room(&alice.access_token, json!({ "preset": "public_chat" })).await;
    let left = s.create_room(&alice.access_token, json!({ "preset": "public_chat" })).await;
    s.join(&bob.access_token, &left).await;
    s.room_post(&bob.access_token, &left, "leave", json!({})).await;
    shared.sort();

    let r = s.get("/_matrix/client/v1/mutual_rooms?user_id=@bob:localhost", alice.token()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["joined"], json!(shared));
    assert!(r.body.get("next_batch").is_none());
    let r = s.get("/_matrix/client/v1/mutual_rooms?user_id=@nobody:localhost", alice.token()).await;
    assert_eq!(r.body["joined"], json!([]));
    let r = s.get("/_matrix/client/v1/mutual_rooms?user_id=@alice:localhost", alice.token()).await;
    assert_eq!((r.status, r.errcode()), (400, "M_INVALID_PARAM"));
    let r = s.get("/_matrix/client/v1/mutual_rooms", alice.token()).await;
    assert_eq!(r.status, 400);
    let r = s.get("/_matrix/client/v1/mutual_rooms?user_id=@bob:localhost&from=nope", alice.token()).await;
    assert_eq!((r.status, r.errcode()), (400, "M_INVALID_PARAM"));
}

#[tokio::test]
async fn users_can_be_reported() {
    let s = TestServer::start();
    let alice = s.register("alice", "password1").await;
    s.register("bob", "password1").await;
    let r = s.post("/_matrix/client/v3/users/@bob:localhost/report", alice.token(), json!({ "reason": "spam" })).await;
    assert_eq!((r.status, r.body.clone()), (200, json!({})));
    let r = s.post("/_matrix/client/v3/users/@nobody:localhost/report", alice.token(), json!({ "reason": "x" })).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));
    let r = s.post("/_matrix/client/v3/users/@bob:localhost/report", alice.token(), json!({})).await;
    assert_eq!(r.status, 400, "a reason is required: {:?}", r.body);
    // The report is stored for the operators.
    let mut s = s;
    s.stop();
    let db = trellis::storage::Storage::open(&s.dir.join("db"), 8).unwrap();
    let reports = trellis::users::reports::list(&db, ruma::user_id!("@bob:localhost")).unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!((reports[0].reporter.as_str(), reports[0].reason.as_str()), ("@alice:localhost", "spam"));
}

#[tokio::test]
async fn support_contacts_come_from_the_configuration() {
    let s = TestServer::start();
    let r = s.get("/.well-known/matrix/support", None).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));
    let r = s.get("/.well-known/matrix/policy_server", None).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));
    let s = TestServer::start_with(&[
        ("TRELLIS_WELL_KNOWN__SUPPORT_PAGE", "https://example.org/help"),
        (
            "TRELLIS_WELL_KNOWN__SUPPORT_CONTACTS",
            r#"[{ role = "m.role.admin", matrix_id = "@admin:localhost", email_address = "admin@example.org" }]"#,
        ),
    ]);
    let r = s.get("/.well-known/matrix/support", None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.body,
        json!({
            "contacts": [{ "role": "m.role.admin", "matrix_id": "@admin:localhost", "email_address": "admin@example.org" }],
            "support_page": "https://example.org/help",
        })
    );
}

#[tokio::test]
async fn phone_numbers_are_not_supported() {
    let s = TestServer::start();
    let alice = s.register("alice", "password1").await;
    let body = json!({ "client_secret": "abc", "country": "GB", "phone_number": "07700900001", "send_attempt": 1 });
    for (path, token) in [
        ("/_matrix/client/v3/account/3pid/msisdn/requestToken", alice.token()),
        ("/_matrix/client/v3/register/msisdn/requestToken", None),
        ("/_matrix/client/v3/account/password/msisdn/requestToken", None),
    ] {
        let r = s.post(path, token, body.clone()).await;
        assert_eq!((r.status, r.errcode()), (400, "M_THREEPID_MEDIUM_NOT_SUPPORTED"), "{path}");
    }
}
