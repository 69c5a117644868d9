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

/// One row; `path` without a leading `/_` or `/.` is under `/_matrix/client/v3`.
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
            let full = r.path.starts_with("/_") || r.path.starts_with("/.");
            let path = if full { r.path.clone() } else { format!("/_matrix/client/v3{}", r.path) };
            let mut req = http.request(r.method.clone(), format!("{}{path}", self.s.url));
            if let Some(t) = self.token(r.who) {
                req = req.bearer_auth(t);
            }
            req = match &r.body {
                Body::None => req,
                Json(v) => req.json(v),
                Raw(b) => req.header("content-type", "application/json").body(*b),
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

/// A password login (`POST /login`) as `user`.
fn login(user: &str, password: &str) -> Value {
    password_stage(user, password)
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

/// Issue 11.1, its sibling: a JWT login that creates the account refuses upper case too, while
/// logging in to an existing account still matches its localpart case-insensitively.
#[tokio::test]
async fn jwt_account_creation_refuses_upper_case() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    let s = TestServer::start_with(&[("TRELLIS_JWT__ENABLED", "true"), ("TRELLIS_JWT__SECRET", "jwt-secret")]);
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 300;
    let login = |sub: &str| {
        let key = EncodingKey::from_secret(b"jwt-secret");
        let token = encode(&Header::new(Algorithm::HS256), &json!({ "sub": sub, "exp": exp }), &key).unwrap();
        s.post("/_matrix/client/v3/login", None, json!({ "type": "org.matrix.login.jwt", "token": token }))
    };
    for sub in ["Carol", "@Carol:localhost"] {
        let r = login(sub).await;
        assert_eq!((r.status, r.errcode()), (400, "M_INVALID_USERNAME"), "{sub}: {:?}", r.body);
    }
    let r = login("carol").await;
    assert_eq!((r.status, r.body["user_id"].clone()), (200, json!("@carol:localhost")), "created: {:?}", r.body);
    let r = login("CAROL").await;
    assert_eq!((r.status, r.body["user_id"].clone()), (200, json!("@carol:localhost")), "existing: {:?}", r.body);
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

/// Issue 11.6: the documented error answers of every Client-Server endpoint Trellis serves
/// (their OpenAPI `responses`), one bad request per row.
#[tokio::test]
async fn documented_error_answers() {
    let c = Ctx::new().await;
    let alice = c.alice.access_token.clone();
    let room = c.s.create_room(&alice, json!({ "room_alias_name": "garden" })).await;
    let ev_id = c.s.send_text(&alice, &room, "hello").await;
    let (ev, no_ev) = (urlencode(&ev_id), urlencode("$nosuchevent"));
    let dev = c.alice.device_id.clone();
    let nope = "!nope:localhost";
    let (a, b) = ("@alice:localhost", "@bob:localhost");
    let garden = urlencode("#garden:localhost");
    let (forbidden, not_found, bad_json, not_json) = ("M_FORBIDDEN", "M_NOT_FOUND", "M_BAD_JSON", "M_NOT_JSON");
    let (invalid, missing, unknown, unrecognized) =
        ("M_INVALID_PARAM", "M_MISSING_PARAM", "M_UNKNOWN", "M_UNRECOGNIZED");
    let e = json!({});
    let v1 = |p: &str| format!("/_matrix/client/v1{p}");
    let long_key = "k".repeat(256);
    let new_alias = urlencode("#new:localhost");
    let (no_token, unsupported, weak) = ("M_MISSING_TOKEN", "M_UNSUPPORTED_ROOM_VERSION", "M_WEAK_PASSWORD");
    let weak_body = json!({ "username": "w", "password": "x", "auth": { "type": "m.login.dummy" } });
    let alice_stage = password_stage("alice", "password1");
    let main_thread = json!({ "thread_id": "main" });
    let join = json!({ "membership": "join" });
    let (public, typing) = (json!({ "visibility": "public" }), json!({ "typing": true, "timeout": 1000 }));
    #[rustfmt::skip]
    let rows = vec![
        // Routing and authentication.
        row(GET, "/no/such/endpoint", Alice, NoBody, 404, unrecognized),
        row(GET, "/_matrix/client/v9/sync", Alice, NoBody, 404, unrecognized),
        row(DELETE, "/login", Nobody, NoBody, 405, unrecognized),
        row(PUT, "/_matrix/client/versions", Nobody, Json(e.clone()), 405, unrecognized),
        row(POST, "/account/whoami", Alice, Json(e.clone()), 405, unrecognized),
        row(GET, "/createRoom", Alice, NoBody, 405, unrecognized),
        row(GET, "/account/whoami", Nobody, NoBody, 401, "M_MISSING_TOKEN"),
        row(GET, "/account/whoami", BadToken, NoBody, 401, "M_UNKNOWN_TOKEN"),
        row(GET, "/sync", Nobody, NoBody, 401, "M_MISSING_TOKEN"),
        row(GET, "/sync", BadToken, NoBody, 401, "M_UNKNOWN_TOKEN"),
        row(POST, "/createRoom", BadToken, Json(e.clone()), 401, "M_UNKNOWN_TOKEN"),
        row(GET, "/joined_rooms", Nobody, NoBody, 401, "M_MISSING_TOKEN"),
        row(GET, "/account/whoami?access_token=nope", Nobody, NoBody, 401, "M_UNKNOWN_TOKEN"),
        // Registration, login, session (registration.yaml, login.yaml, refresh.yaml, logout.yaml).
        row(POST, "/register", Nobody, Json(dummy("alice")), 400, "M_USER_IN_USE"),
        row(POST, "/register", Nobody, Json(dummy("with space")), 400, "M_INVALID_USERNAME"),
        row(POST, "/register", Nobody, Json(dummy("_underscore")), 400, "M_INVALID_USERNAME"),
        row(POST, "/register", Nobody, Json(json!({ "username": 5 })), 400, bad_json),
        row(POST, "/register", Nobody, Raw(b"{\"username\":"), 400, not_json),
        row(POST, "/register", Nobody, Json(weak_body), 400, weak),
        row(POST, "/register?kind=guest", Nobody, Json(e.clone()), 403, "M_GUEST_ACCESS_FORBIDDEN"),
        row(GET, "/register/available?username=alice", Nobody, NoBody, 400, "M_USER_IN_USE"),
        row(GET, "/register/available", Nobody, NoBody, 400, missing),
        row(GET, v1("/register/m.login.registration_token/validity?token=abc"), Nobody, NoBody, 403, forbidden),
        row(POST, "/login", Nobody, Json(json!({ "type": "m.login.magic" })), 400, unknown),
        row(POST, "/login", Nobody, Json(login("alice", "wrong")), 403, forbidden),
        row(POST, "/login", Nobody, Json(login("nobody", "password1")), 403, forbidden),
        row(POST, "/login", Nobody, Json(login("@x:elsewhere.test", "p")), 403, forbidden),
        row(POST, "/login", Nobody, Json(json!({ "type": "m.login.token", "token": "never-issued" })), 403, forbidden),
        row(POST, "/login", Nobody, Raw(b"not json"), 400, not_json),
        row(POST, "/login", Nobody, Json(json!({ "type": "m.login.password", "password": 5 })), 400, bad_json),
        row(POST, "/refresh", Nobody, Json(json!({ "refresh_token": "never-issued" })), 401, "M_UNKNOWN_TOKEN"),
        row(POST, "/refresh", Nobody, Json(e.clone()), 400, missing),
        row(POST, "/logout", BadToken, Json(e.clone()), 401, "M_UNKNOWN_TOKEN"),
        row(POST, "/logout/all", Nobody, Json(e.clone()), 401, "M_MISSING_TOKEN"),
        // Account (password_management.yaml, account_deactivation.yaml, administrative_contact.yaml).
        row(POST, "/account/password", Alice, Json(e.clone()), 400, missing),
        row(POST, "/account/password", Alice, Json(json!({ "new_password": "x" })), 400, "M_WEAK_PASSWORD"),
        row(POST, "/account/password", Nobody, Json(json!({ "new_password": "password9" })), 401, "M_MISSING_TOKEN"),
        row(POST, "/account/deactivate", Alice, Json(json!({ "erase": "yes" })), 400, bad_json),
        row(GET, "/account/3pid", Nobody, NoBody, 401, "M_MISSING_TOKEN"),
        // Devices (device_management.yaml).
        row(GET, "/devices/NOSUCHDEVICE", Alice, NoBody, 404, not_found),
        row(PUT, "/devices/NOSUCHDEVICE", Alice, Json(json!({ "display_name": "x" })), 404, not_found),
        row(PUT, format!("/devices/{dev}"), Alice, Json(json!({ "display_name": 5 })), 400, bad_json),
        row(POST, "/delete_devices", Alice, Json(json!({ "devices": "ALL" })), 400, bad_json),
        row(POST, "/delete_devices", Alice, Json(e.clone()), 400, missing),
        row(GET, "/devices", Nobody, NoBody, 401, "M_MISSING_TOKEN"),
        // Deleting a device that is gone asks for UIA, then succeeds (spec: "or had been removed").
        row(DELETE, "/devices/NOSUCHDEVICE", Alice, Json(e.clone()), 401, ""),
        row(DELETE, "/devices/NOSUCHDEVICE", Alice, Json(json!({ "auth": alice_stage })), 200, ""),
        // Profiles (profile.yaml).
        row(GET, "/profile/@nobody:localhost", Alice, NoBody, 404, not_found),
        row(GET, "/profile/@nobody:localhost/displayname", Alice, NoBody, 404, not_found),
        row(GET, "/profile/not-a-user-id", Alice, NoBody, 400, invalid),
        row(PUT, format!("/profile/{b}/displayname"), Alice, Json(json!({ "displayname": "Mallory" })), 403, forbidden),
        row(DELETE, format!("/profile/{b}/displayname"), Alice, NoBody, 403, forbidden),
        row(PUT, format!("/profile/{a}/displayname"), Alice, Json(json!({ "displayname": 5 })), 400, bad_json),
        row(PUT, format!("/profile/{a}/displayname"), Alice, Raw(b"{\"displayname\""), 400, not_json),
        row(PUT, format!("/profile/{a}/displayname"), Nobody, Json(json!({ "displayname": "A" })), 401, no_token),
        row(PUT, format!("/profile/{a}/{long_key}"), Alice, Json(json!({ long_key: "v" })), 400, "M_KEY_TOO_LARGE"),
        // Account data and filters (account-data.yaml, filter.yaml).
        row(GET, format!("/user/{a}/account_data/x.unset"), Alice, NoBody, 404, not_found),
        row(GET, format!("/user/{b}/account_data/x.y"), Alice, NoBody, 403, forbidden),
        row(PUT, format!("/user/{b}/account_data/x.y"), Alice, Json(e.clone()), 403, forbidden),
        row(PUT, format!("/user/{a}/account_data/x.y"), Alice, Raw(b"nope"), 400, not_json),
        row(PUT, format!("/user/{a}/account_data/x.y"), Alice, Raw(b"[1]"), 400, bad_json),
        row(PUT, format!("/user/{a}/account_data/m.fully_read"), Alice, Json(e.clone()), 405, bad_json),
        row(PUT, format!("/user/{a}/account_data/m.push_rules"), Alice, Json(e.clone()), 405, bad_json),
        row(GET, format!("/user/{a}/rooms/{room}/account_data/x.unset"), Alice, NoBody, 404, not_found),
        row(GET, format!("/user/{a}/rooms/not-a-room/account_data/x.y"), Alice, NoBody, 400, invalid),
        row(PUT, format!("/user/{a}/rooms/not-a-room/account_data/x.y"), Alice, Json(e.clone()), 400, invalid),
        row(GET, format!("/user/{b}/rooms/{room}/account_data/x.y"), Alice, NoBody, 403, forbidden),
        row(PUT, format!("/user/{a}/rooms/{room}/account_data/m.fully_read"), Alice, Json(e.clone()), 405, bad_json),
        row(GET, format!("/user/{a}/filter/12345"), Alice, NoBody, 404, not_found),
        row(GET, format!("/user/{b}/filter/0"), Alice, NoBody, 403, forbidden),
        row(POST, format!("/user/{b}/filter"), Alice, Json(e.clone()), 403, forbidden),
        row(POST, format!("/user/{a}/filter"), Alice, Json(json!({ "room": 3 })), 400, bad_json),
        // Rooms: creation and upgrades (create_room.yaml, room_upgrades.yaml).
        row(POST, "/createRoom", Alice, Json(json!({ "room_version": "999" })), 400, unsupported),
        row(POST, "/createRoom", Alice, Json(json!({ "room_alias_name": "garden" })), 400, "M_ROOM_IN_USE"),
        row(POST, "/createRoom", Alice, Json(json!({ "room_alias_name": "a:b" })), 400, invalid),
        row(POST, "/createRoom", Alice, Json(json!({ "invite": ["not-a-user"] })), 400, bad_json),
        row(POST, "/createRoom", Alice, Raw(b"[]"), 400, bad_json),
        row(POST, format!("/rooms/{room}/upgrade"), Alice, Json(json!({ "new_version": "999" })), 400, unsupported),
        row(POST, format!("/rooms/{room}/upgrade"), Bob, Json(json!({ "new_version": "12" })), 403, forbidden),
        row(POST, format!("/rooms/{nope}/upgrade"), Bob, Json(json!({ "new_version": "12" })), 403, forbidden),
        row(POST, format!("/rooms/{room}/upgrade"), Alice, Json(e.clone()), 400, missing),
        // Membership (joining.yaml, inviting.yaml, leaving.yaml, kicking.yaml, banning.yaml, knocking.yaml).
        row(POST, format!("/rooms/{room}/join"), Bob, Json(e.clone()), 403, forbidden),
        row(POST, format!("/join/{}", urlencode(&room)), Bob, Json(e.clone()), 403, forbidden),
        row(POST, format!("/join/{}", urlencode("#nowhere:localhost")), Bob, Json(e.clone()), 404, not_found),
        row(POST, format!("/join/{}", urlencode("not-a-room")), Bob, Json(e.clone()), 400, invalid),
        row(POST, format!("/rooms/{room}/invite"), Bob, Json(json!({ "user_id": b })), 403, forbidden),
        row(POST, format!("/rooms/{nope}/invite"), Alice, Json(json!({ "user_id": b })), 403, forbidden),
        row(POST, format!("/rooms/{room}/invite"), Alice, Json(json!({ "user_id": "bob" })), 400, bad_json),
        row(POST, format!("/rooms/{room}/kick"), Bob, Json(json!({ "user_id": a })), 403, forbidden),
        row(POST, format!("/rooms/{room}/ban"), Bob, Json(json!({ "user_id": a })), 403, forbidden),
        row(POST, format!("/rooms/{room}/unban"), Bob, Json(json!({ "user_id": a })), 403, forbidden),
        row(POST, format!("/rooms/{nope}/kick"), Alice, Json(json!({ "user_id": b })), 403, forbidden),
        row(POST, format!("/rooms/{room}/forget"), Alice, Json(e.clone()), 400, unknown),
        row(POST, format!("/rooms/{nope}/leave"), Bob, Json(e.clone()), 404, not_found),
        row(POST, format!("/rooms/{room}/leave"), Bob, Json(e.clone()), 403, forbidden),
        row(POST, format!("/knock/{}", urlencode(&room)), Bob, Json(e.clone()), 403, forbidden),
        row(POST, format!("/knock/{}", urlencode("#nowhere:localhost")), Bob, Json(e.clone()), 404, not_found),
        // Room events (room_send.yaml, room_state.yaml, rooms.yaml, redaction.yaml).
        row(PUT, format!("/rooms/{room}/send/m.room.message/t1"), Bob, Json(json!({ "body": "x" })), 403, forbidden),
        row(PUT, format!("/rooms/{nope}/send/m.room.message/t1"), Bob, Json(json!({ "body": "x" })), 403, forbidden),
        row(PUT, format!("/rooms/{room}/send/m.room.message/t2"), Alice, Raw(b"[]"), 400, bad_json),
        row(PUT, format!("/rooms/{room}/send/m.room.message/t3"), Alice, Raw(b"{"), 400, not_json),
        row(PUT, "/rooms/not-a-room/send/m.room.message/t4", Alice, Json(json!({ "body": "x" })), 400, invalid),
        row(PUT, format!("/rooms/{room}/state/m.room.name"), Bob, Json(json!({ "name": "x" })), 403, forbidden),
        row(PUT, format!("/rooms/{nope}/state/m.room.name"), Alice, Json(json!({ "name": "x" })), 403, forbidden),
        row(PUT, format!("/rooms/{room}/state/m.room.name"), Alice, Json(json!({ "name": 42 })), 400, bad_json),
        row(GET, format!("/rooms/{room}/state/m.room.avatar"), Alice, NoBody, 404, not_found),
        row(GET, format!("/rooms/{room}/event/{no_ev}"), Alice, NoBody, 404, not_found),
        row(GET, format!("/rooms/{room}/event/not-an-event"), Alice, NoBody, 400, invalid),
        row(PUT, format!("/rooms/{room}/redact/{ev}/r1"), Bob, Json(e.clone()), 403, forbidden),
        row(PUT, format!("/rooms/{room}/redact/{no_ev}/r2"), Alice, Json(e.clone()), 404, not_found),
        // Reading rooms (message_pagination.yaml, event_context.yaml, rooms.yaml, relations.yaml...).
        row(GET, format!("/rooms/{room}/messages?dir=b"), Bob, NoBody, 403, forbidden),
        row(GET, format!("/rooms/{room}/messages?dir=x"), Alice, NoBody, 400, invalid),
        row(GET, format!("/rooms/{room}/messages?dir=b&from=garbage"), Alice, NoBody, 400, invalid),
        row(GET, format!("/rooms/{room}/messages?dir=b&filter=nope"), Alice, NoBody, 400, invalid),
        row(GET, format!("/rooms/{room}/context/{no_ev}"), Alice, NoBody, 404, not_found),
        row(GET, format!("/rooms/{room}/members"), Bob, NoBody, 403, forbidden),
        row(GET, format!("/rooms/{room}/joined_members"), Bob, NoBody, 403, forbidden),
        row(GET, format!("/rooms/{room}/aliases"), Bob, NoBody, 403, forbidden),
        row(GET, v1(&format!("/rooms/{room}/relations/{no_ev}")), Alice, NoBody, 404, not_found),
        row(GET, v1(&format!("/rooms/{room}/relations/{ev}?from=garbage")), Alice, NoBody, 400, invalid),
        row(GET, v1(&format!("/rooms/{room}/threads?include=nope")), Alice, NoBody, 400, invalid),
        row(GET, v1(&format!("/rooms/{room}/threads?from=garbage")), Alice, NoBody, 400, invalid),
        row(GET, v1(&format!("/rooms/{room}/timestamp_to_event?ts=1&dir=b")), Alice, NoBody, 404, not_found),
        row(GET, v1(&format!("/rooms/{room}/timestamp_to_event?dir=f")), Alice, NoBody, 400, missing),
        row(GET, v1(&format!("/room_summary/{}", urlencode(nope))), Alice, NoBody, 404, not_found),
        // Aliases and the directory (directory.yaml, list_public_rooms.yaml).
        row(GET, format!("/directory/room/{}", urlencode("#nowhere:localhost")), Nobody, NoBody, 404, not_found),
        row(GET, format!("/directory/room/{}", urlencode("nowhere")), Nobody, NoBody, 400, invalid),
        row(PUT, format!("/directory/room/{garden}"), Alice, Json(json!({ "room_id": room })), 409, unknown),
        row(PUT, format!("/directory/room/{new_alias}"), Alice, Json(e.clone()), 400, missing),
        row(PUT, format!("/directory/room/{new_alias}"), Bob, Json(json!({ "room_id": room })), 403, forbidden),
        row(DELETE, format!("/directory/room/{}", urlencode("#nowhere:localhost")), Alice, NoBody, 404, not_found),
        row(DELETE, format!("/directory/room/{garden}"), Bob, NoBody, 403, forbidden),
        row(GET, format!("/directory/list/room/{nope}"), Nobody, NoBody, 404, not_found),
        row(PUT, format!("/directory/list/room/{nope}"), Alice, Json(public.clone()), 404, not_found),
        row(PUT, format!("/directory/list/room/{room}"), Bob, Json(public.clone()), 403, forbidden),
        row(GET, "/publicRooms?since=garbage", Nobody, NoBody, 400, invalid),
        // Per-room user data (tags.yaml, read_markers.yaml, receipts.yaml, typing.yaml, report_content.yaml).
        row(GET, format!("/user/{b}/rooms/{room}/tags"), Alice, NoBody, 403, forbidden),
        row(PUT, format!("/user/{b}/rooms/{room}/tags/u.x"), Alice, Json(e.clone()), 403, forbidden),
        row(PUT, format!("/user/{a}/rooms/{room}/tags/u.x"), Alice, Json(json!({ "order": "first" })), 400, bad_json),
        row(POST, format!("/rooms/{room}/read_markers"), Bob, Json(json!({ "m.fully_read": ev_id })), 403, forbidden),
        row(POST, format!("/rooms/{room}/read_markers"), Alice, Json(json!({ "m.fully_read": "x" })), 400, bad_json),
        row(POST, format!("/rooms/{nope}/receipt/m.read/{ev}"), Alice, Json(e.clone()), 403, forbidden),
        row(POST, format!("/rooms/{room}/receipt/m.read/{ev}"), Bob, Json(e.clone()), 403, forbidden),
        row(POST, format!("/rooms/{room}/receipt/m.read/{ev}"), Alice, Json(json!({ "thread_id": 5 })), 400, bad_json),
        row(POST, format!("/rooms/{room}/receipt/m.read/{ev}"), Alice, Json(json!({ "thread_id": "" })), 400, invalid),
        row(POST, format!("/rooms/{room}/receipt/m.fully_read/{ev}"), Alice, Json(main_thread), 400, invalid),
        row(PUT, format!("/rooms/{room}/typing/{b}"), Alice, Json(typing.clone()), 403, forbidden),
        row(PUT, format!("/rooms/{room}/typing/{b}"), Bob, Json(typing.clone()), 403, forbidden),
        row(PUT, format!("/rooms/{room}/typing/{a}"), Alice, Json(e.clone()), 400, missing),
        row(POST, format!("/rooms/{nope}/report/{ev}"), Alice, Json(json!({ "reason": "x" })), 404, not_found),
        row(POST, format!("/rooms/{room}/report/{no_ev}"), Alice, Json(json!({ "reason": "x" })), 404, not_found),
        row(POST, format!("/rooms/{nope}/report"), Alice, Json(json!({ "reason": "x" })), 404, not_found),
        // Presence, user directory, VoIP, sync, keys, to-device.
        row(PUT, format!("/presence/{b}/status"), Alice, Json(json!({ "presence": "online" })), 403, forbidden),
        row(PUT, format!("/presence/{a}/status"), Alice, Json(json!({ "presence": "asleep" })), 400, invalid),
        row(PUT, format!("/presence/{a}/status"), Alice, Json(e.clone()), 400, missing),
        row(GET, "/presence/not-a-user/status", Alice, NoBody, 400, invalid),
        row(POST, "/user_directory/search", Alice, Json(e.clone()), 400, missing),
        row(POST, "/user_directory/search", Alice, Json(json!({ "search_term": 5 })), 400, bad_json),
        row(GET, "/sync?since=garbage", Alice, NoBody, 400, invalid),
        row(GET, "/sync?filter=12345", Alice, NoBody, 400, invalid),
        row(GET, "/sync?timeout=soon", Alice, NoBody, 400, invalid),
        row(GET, "/sync?set_presence=asleep", Alice, NoBody, 400, invalid),
        row(POST, "/keys/upload", Alice, Json(json!({ "one_time_keys": 5 })), 400, bad_json),
        row(POST, "/keys/query", Alice, Json(json!({ "device_keys": ["x"] })), 400, bad_json),
        row(POST, "/keys/query", Alice, Json(e.clone()), 400, missing),
        row(POST, "/keys/claim", Alice, Json(e.clone()), 400, missing),
        row(GET, "/keys/changes?to=s1", Alice, NoBody, 400, missing),
        row(GET, "/keys/changes?from=garbage&to=s1", Alice, NoBody, 400, invalid),
        row(PUT, "/sendToDevice/m.test/t1", Alice, Json(e.clone()), 400, missing),
        row(PUT, "/sendToDevice/m.test/t2", Alice, Json(json!({ "messages": { "not-a-user": {} } })), 400, bad_json),
        row(GET, "/voip/turnServer", Nobody, NoBody, 401, "M_MISSING_TOKEN"),
        // More reads and writes with bad parameters.
        row(GET, format!("/presence/{b}/status"), Alice, NoBody, 403, forbidden),
        row(GET, "/presence/@nobody:localhost/status", Alice, NoBody, 404, not_found),
        row(POST, "/publicRooms", Nobody, Json(json!({ "filter": 5 })), 401, no_token),
        row(POST, "/publicRooms", Alice, Json(json!({ "filter": 5 })), 400, bad_json),
        row(POST, "/publicRooms", Alice, Json(json!({ "limit": "ten" })), 400, bad_json),
        row(GET, "/publicRooms?limit=ten", Nobody, NoBody, 400, invalid),
        row(GET, format!("/rooms/{room}/members?at=garbage"), Alice, NoBody, 400, invalid),
        row(GET, format!("/rooms/{room}/members?membership=party"), Alice, NoBody, 400, invalid),
        row(GET, format!("/rooms/{room}/members?not_membership=party"), Alice, NoBody, 400, invalid),
        row(GET, format!("/rooms/{room}/messages"), Alice, NoBody, 400, missing),
        row(GET, format!("/rooms/{room}/messages?dir=b&limit=many"), Alice, NoBody, 400, invalid),
        row(GET, format!("/rooms/{room}/context/{ev}?limit=x"), Alice, NoBody, 400, invalid),
        row(GET, format!("/rooms/{room}/state/m.room.create/?format=xml"), Alice, NoBody, 400, invalid),
        row(GET, format!("/rooms/{room}/state"), BadToken, NoBody, 401, "M_UNKNOWN_TOKEN"),
        row(PUT, format!("/rooms/{room}/state/m.room.power_levels"), Alice, Json(json!({ "users": 5 })), 400, bad_json),
        row(PUT, format!("/rooms/{room}/state/m.room.member/{b}"), Alice, Json(join.clone()), 403, forbidden),
        row(POST, "/createRoom", Alice, Json(json!({ "visibility": 3 })), 400, bad_json),
        row(GET, "/joined_rooms", BadToken, NoBody, 401, "M_UNKNOWN_TOKEN"),
        row(GET, "/capabilities", Nobody, NoBody, 401, no_token),
        row(POST, "/user_directory/search", Nobody, Json(json!({ "search_term": "a" })), 401, no_token),
        row(POST, "/keys/upload", Nobody, Json(e.clone()), 401, no_token),
        row(POST, "/keys/upload", Alice, Json(json!({ "device_keys": { "user_id": b } })), 400, bad_json),
        row(GET, "/sync?full_state=maybe", Alice, NoBody, 400, invalid),
        row(GET, "/sync?filter=%7Bnot-json", Alice, NoBody, 400, invalid),
        row(POST, "/login", Nobody, Json(json!({ "type": "m.login.password", "password": "x" })), 400, missing),
        row(POST, "/register", Nobody, Json(json!({ "username": "carol", "password": 5 })), 400, bad_json),
        row(POST, "/account/password", Alice, Json(json!({ "new_password": 5 })), 400, bad_json),
        row(GET, "/account/whoami", Nobody, NoBody, 401, no_token),
        row(GET, "/_matrix/client/v3/rooms/!x:localhost/event/%24e", Nobody, NoBody, 401, no_token),
        row(DELETE, "/devices/NOSUCHDEVICE", Alice, NoBody, 401, ""),
        row(GET, format!("/rooms/{room}/event/{ev}"), Bob, NoBody, 404, not_found),
        row(GET, format!("/rooms/{nope}/event/{ev}"), Alice, NoBody, 404, not_found),
        row(POST, format!("/rooms/{room}/report/{ev}"), Alice, Json(json!({ "reason": 5 })), 400, bad_json),
        row(POST, "/refresh", Nobody, Json(json!({ "refresh_token": c.alice.access_token })), 401, "M_UNKNOWN_TOKEN"),
    ];
    c.check(&rows).await;
}
