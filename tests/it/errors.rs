//! Error answers against the spec: each row sends one documented bad request and expects the
//! status and `errcode` the OpenAPI `responses` of its endpoint give (Synapse's where the spec
//! is silent). Issue 11.

use reqwest::Method;
use serde_json::{Value, json};

use crate::server::{Session, TestServer, client, send, urlencode};

/// Who sends a row's request.
#[derive(Clone, Copy, Debug)]
enum Who {
    Nobody,
    /// The room's creator.
    Alice,
    /// Registered, in no room.
    Bob,
    /// A token the server never issued.
    BadToken,
}

/// A row's body.
#[derive(Clone, Debug)]
enum Body {
    None,
    Json(Value),
    Raw(&'static [u8]),
}
use Body::{Json, Raw};

struct Row {
    method: Method,
    path: String,
    who: Who,
    body: Body,
    status: u16,
    errcode: &'static str,
}

/// One row; `path` without a leading `/_` is under `/_matrix/client/v3`.
fn row(method: Method, path: impl Into<String>, who: Who, body: Body, status: u16, errcode: &'static str) -> Row {
    Row { method, path: path.into(), who, body, status, errcode }
}

const GET: Method = Method::GET;
const PUT: Method = Method::PUT;
const POST: Method = Method::POST;
const DELETE: Method = Method::DELETE;
use Body::None as NoBody;
use Who::{Alice, BadToken, Bob, Nobody};

struct Ctx {
    s: TestServer,
    alice: Session,
    bob: Session,
}

impl Ctx {
    async fn new() -> Ctx {
        let s = TestServer::start();
        let alice = s.register("alice", "password1").await;
        let bob = s.register("bob", "password2").await;
        Ctx { s, alice, bob }
    }

    fn token(&self, who: Who) -> Option<&str> {
        match who {
            Nobody => None,
            Alice => self.alice.token(),
            Bob => self.bob.token(),
            BadToken => Some("not-a-token"),
        }
    }

    /// Send every row; fail once with every mismatch listed.
    async fn check(&self, rows: &[Row]) {
        let http = client();
        let mut wrong = Vec::new();
        for r in rows {
            let path = if r.path.starts_with("/_") { r.path.clone() } else { format!("/_matrix/client/v3{}", r.path) };
            let mut req = http.request(r.method.clone(), format!("{}{path}", self.s.url));
            if let Some(t) = self.token(r.who) {
                req = req.bearer_auth(t);
            }
            req = match &r.body {
                Body::None => req,
                Body::Json(v) => req.json(v),
                Body::Raw(b) => req.header("content-type", "application/json").body(*b),
            };
            let got = send(req).await;
            if (got.status, got.errcode()) != (r.status, r.errcode) {
                wrong.push(format!(
                    "{} {path} as {:?}: want {} {}, got {} {}",
                    r.method, r.who, r.status, r.errcode, got.status, got.body
                ));
            }
        }
        assert!(wrong.is_empty(), "{} of {} rows differ:\n{}", wrong.len(), rows.len(), wrong.join("\n"));
    }
}

fn dummy(username: &str) -> Value {
    json!({ "username": username, "password": "password1", "auth": { "type": "m.login.dummy" } })
}

/// A password stage that names `user`.
fn password_stage(user: &str, password: &str) -> Value {
    json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": user }, "password": password })
}

/// Issue 11.1: upper case in a requested username is refused, never folded.
#[tokio::test]
async fn upper_case_usernames_are_invalid() {
    let c = Ctx::new().await;
    let invalid = "M_INVALID_USERNAME";
    c.check(&[
        row(POST, "/register", Nobody, Json(dummy("Carol")), 400, invalid),
        row(POST, "/register", Nobody, Json(dummy("ALICE")), 400, invalid),
        row(POST, "/register", Nobody, Json(dummy("caRol")), 400, invalid),
        row(GET, "/register/available?username=Carol", Nobody, NoBody, 400, invalid),
        row(GET, "/register/available?username=ALICE", Nobody, NoBody, 400, invalid),
    ])
    .await;
    let r = c.s.login("carol", "password1").await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "no account was created under a folded name");
    let r = c.s.get("/_matrix/client/v3/register/available?username=carol", None).await;
    assert_eq!((r.status, r.body["available"].clone()), (200, json!(true)));
}

/// Issue 11.2: a body that is not JSON (invalid UTF-8, truncated) or not an object is refused
/// before User-Interactive Auth answers, on every UIA endpoint.
#[tokio::test]
async fn bad_bodies_are_refused_before_user_interactive_auth() {
    let c = Ctx::new().await;
    let device = format!("/devices/{}", c.alice.device_id);
    let uia: [(Method, &str, Who); 6] = [
        (POST, "/register", Nobody),
        (POST, "/account/password", Alice),
        (POST, "/account/deactivate", Alice),
        (DELETE, &device, Alice),
        (POST, "/delete_devices", Alice),
        (POST, "/_matrix/client/v1/login/get_token", Alice),
    ];
    let bad: [(&'static [u8], u16, &str); 7] = [
        (b"{\"username\": \"d\xffve\", \"password\": \"password1\"}", 400, "M_NOT_JSON"),
        (b"{\"x\": \"\xc3\x28\"}", 400, "M_NOT_JSON"),
        (b"{\"new_password\": \"password9\"", 400, "M_NOT_JSON"),
        (b"{\"auth\": {\"type\": \"m.login.dummy\"}, ", 400, "M_NOT_JSON"),
        (b"{} trailing", 400, "M_NOT_JSON"),
        (b"[{\"type\": \"m.login.dummy\"}]", 400, "M_BAD_JSON"),
        (b"\"m.login.dummy\"", 400, "M_BAD_JSON"),
    ];
    let mut rows = Vec::new();
    for (method, path, who) in &uia {
        for (body, status, errcode) in &bad {
            rows.push(row(method.clone(), *path, *who, Raw(body), *status, errcode));
        }
    }
    c.check(&rows).await;
    // Nothing happened: Alice's device and password still work.
    assert_eq!(c.s.get("/_matrix/client/v3/account/whoami", c.alice.token()).await.status, 200);
    assert_eq!(c.s.login("alice", "password1").await.status, 200);
}

/// Issue 11.3: a password stage naming another user than the requester is 403, not a 401 to
/// try again, on every endpoint that re-authenticates.
#[tokio::test]
async fn password_stage_for_another_user_is_forbidden() {
    let c = Ctx::new().await;
    let device = format!("/devices/{}", c.alice.device_id);
    let as_bob = password_stage("bob", "password2");
    let forbidden = "M_FORBIDDEN";
    c.check(&[
        row(
            POST,
            "/account/password",
            Alice,
            Json(json!({ "new_password": "password9", "auth": as_bob })),
            403,
            forbidden,
        ),
        row(POST, "/account/deactivate", Alice, Json(json!({ "auth": as_bob })), 403, forbidden),
        row(DELETE, device.as_str(), Alice, Json(json!({ "auth": as_bob })), 403, forbidden),
        row(
            POST,
            "/delete_devices",
            Alice,
            Json(json!({ "devices": [c.alice.device_id], "auth": as_bob })),
            403,
            forbidden,
        ),
        row(POST, "/_matrix/client/v1/login/get_token", Alice, Json(json!({ "auth": as_bob })), 403, forbidden),
        row(
            POST,
            "/account/password",
            Alice,
            Json(json!({ "new_password": "password9", "auth": password_stage("@bob:localhost", "password2") })),
            403,
            forbidden,
        ),
    ])
    .await;
    // Alice's own wrong password is still a stage to retry: 401 with the flows.
    let r =
        c.s.post(
            "/_matrix/client/v3/account/password",
            c.alice.token(),
            json!({ "new_password": "password9", "auth": password_stage("alice", "wrong") }),
        )
        .await;
    assert_eq!((r.status, r.errcode()), (401, "M_FORBIDDEN"));
    assert_eq!(r.body["flows"], json!([{ "stages": ["m.login.password"] }]));
    assert_eq!(c.s.get("/_matrix/client/v3/account/whoami", c.alice.token()).await.status, 200, "still active");
    assert_eq!(c.s.login("alice", "password1").await.status, 200, "password unchanged");
}

/// Issue 11.4: aliases: taken (409 `M_UNKNOWN`), malformed in `m.room.canonical_alias`
/// (`M_INVALID_PARAM`), not pointing to the room (`M_BAD_ALIAS`).
#[tokio::test]
async fn alias_errors() {
    let c = Ctx::new().await;
    let alice = c.alice.access_token.clone();
    let room = c.s.create_room(&alice, json!({ "room_alias_name": "garden" })).await;
    let other = c.s.create_room(&alice, json!({ "room_alias_name": "shed" })).await;
    let garden = format!("/directory/room/{}", urlencode("#garden:localhost"));
    let canonical = format!("/rooms/{room}/state/m.room.canonical_alias");
    let (invalid, bad_alias) = ("M_INVALID_PARAM", "M_BAD_ALIAS");
    c.check(&[
        row(PUT, garden.as_str(), Alice, Json(json!({ "room_id": room })), 409, "M_UNKNOWN"),
        row(PUT, garden.as_str(), Alice, Json(json!({ "room_id": other })), 409, "M_UNKNOWN"),
        row(
            PUT,
            format!("/directory/room/{}", urlencode("garden")),
            Alice,
            Json(json!({ "room_id": room })),
            400,
            invalid,
        ),
        row(
            PUT,
            format!("/directory/room/{}", urlencode("#x:elsewhere.test")),
            Alice,
            Json(json!({ "room_id": room })),
            400,
            invalid,
        ),
        row(POST, "/createRoom", Alice, Json(json!({ "room_alias_name": "garden" })), 400, "M_ROOM_IN_USE"),
        row(PUT, canonical.as_str(), Alice, Json(json!({ "alias": "garden" })), 400, invalid),
        row(PUT, canonical.as_str(), Alice, Json(json!({ "alias": "#garden" })), 400, invalid),
        row(
            PUT,
            canonical.as_str(),
            Alice,
            Json(json!({ "alias": "#garden:localhost", "alt_aliases": ["nope"] })),
            400,
            invalid,
        ),
        row(
            PUT,
            canonical.as_str(),
            Alice,
            Json(json!({ "alt_aliases": ["#ok:localhost", "!room:localhost"] })),
            400,
            invalid,
        ),
        row(PUT, canonical.as_str(), Alice, Json(json!({ "alias": 5 })), 400, "M_BAD_JSON"),
        row(PUT, canonical.as_str(), Alice, Json(json!({ "alt_aliases": "#garden:localhost" })), 400, "M_BAD_JSON"),
        row(PUT, canonical.as_str(), Alice, Json(json!({ "alias": "#shed:localhost" })), 400, bad_alias),
        row(PUT, canonical.as_str(), Alice, Json(json!({ "alias": "#unknown:localhost" })), 400, bad_alias),
        row(
            PUT,
            canonical.as_str(),
            Alice,
            Json(json!({ "alt_aliases": ["#garden:localhost", "#shed:localhost"] })),
            400,
            bad_alias,
        ),
    ])
    .await;
    let r = c.s.set_state(&alice, &room, "m.room.canonical_alias", "", json!({ "alias": "#garden:localhost" })).await;
    assert_eq!(r.status, 200, "a valid canonical alias is accepted: {:?}", r.body);
    let r = c.s.get(&format!("/_matrix/client/v3{garden}"), None).await;
    assert_eq!(r.body["room_id"], json!(room), "the taken alias still points where it did");
}

/// Issue 11.5: reads of a room that does not exist answer exactly like reads of a room the user
/// is not in: nothing tells whether it exists.
#[tokio::test]
async fn unknown_rooms_read_like_rooms_one_is_not_in() {
    let c = Ctx::new().await;
    let alice = c.alice.access_token.clone();
    let room = c.s.create_room(&alice, json!({})).await;
    let event = c.s.send_text(&alice, &room, "hello").await;
    let unknown = "!doesnotexist:localhost".to_owned();
    let reads = |room: &str| {
        let ev = urlencode(&event);
        vec![
            format!("/rooms/{room}/messages?dir=b"),
            format!("/rooms/{room}/state"),
            format!("/rooms/{room}/state/m.room.create/"),
            format!("/rooms/{room}/state/m.room.name"),
            format!("/rooms/{room}/context/{ev}"),
            format!("/rooms/{room}/members"),
            format!("/rooms/{room}/joined_members"),
            format!("/rooms/{room}/aliases"),
            format!("/_matrix/client/v1/rooms/{room}/relations/{ev}"),
            format!("/_matrix/client/v1/rooms/{room}/relations/{ev}/m.thread"),
            format!("/_matrix/client/v1/rooms/{room}/relations/{ev}/m.thread/m.room.message"),
            format!("/_matrix/client/v1/rooms/{room}/threads"),
            format!("/_matrix/client/v1/rooms/{room}/timestamp_to_event?ts=0&dir=f"),
        ]
    };
    let mut rows = Vec::new();
    for target in [&room, &unknown] {
        for path in reads(target) {
            rows.push(row(GET, path, Bob, NoBody, 403, "M_FORBIDDEN"));
        }
        // An event one may not see is "not found", in a room one is not in as in no room.
        rows.push(row(GET, format!("/rooms/{target}/event/{}", urlencode(&event)), Bob, NoBody, 404, "M_NOT_FOUND"));
    }
    c.check(&rows).await;
}
