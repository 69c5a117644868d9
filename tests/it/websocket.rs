//! The WebSocket API, driven with a real WebSocket client (tokio-tungstenite).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::server::{Session, TestServer};

const PATH: &str = "/_matrix/client/unstable/org.trellis.ws/v1/connect";
type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(s: &TestServer, token: Option<&str>) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    let url = format!("{}{PATH}", s.url.replacen("http", "ws", 1));
    let mut req = url.into_client_request()?;
    if let Some(t) = token {
        req.headers_mut().insert("Authorization", format!("Bearer {t}").parse().unwrap());
    }
    tokio_tungstenite::connect_async(req).await.map(|(ws, _)| ws)
}

/// The next JSON frame (pings and pongs skipped); panics after 20 s.
async fn next(ws: &mut Socket) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("frame in time")
            .expect("open")
            .expect("ok");
        match msg {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Close(c) => return json!({ "type": "closed", "code": c.map(|c| u16::from(c.code)) }),
            _ => {}
        }
    }
}

async fn send(ws: &mut Socket, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

fn bodies(frame: &Value, room: &str) -> Vec<String> {
    crate::sync::timeline_bodies(&frame["data"], room)
}

async fn setup(s: &TestServer) -> (Session, Session, String) {
    let alice = s.register("alice", "password1").await;
    let bob = s.register("bob", "password1").await;
    let room = s.create_room(&alice.access_token, json!({ "preset": "public_chat" })).await;
    s.join(&bob.access_token, &room).await;
    (alice, bob, room)
}

#[tokio::test]
async fn authentication_failures() {
    let s = TestServer::start();
    match connect(&s, Some("trl_bad")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 401),
        other => panic!("a bad token must be refused before the upgrade: {:?}", other.map(|_| ())),
    }
    let mut ws = connect(&s, None).await.unwrap();
    send(&mut ws, json!({ "type": "auth", "access_token": "trl_nope" })).await;
    let err = next(&mut ws).await;
    assert_eq!(err["type"], "error");
    assert_eq!(err["error"]["errcode"], "M_UNKNOWN_TOKEN");
    assert_eq!(next(&mut ws).await, json!({ "type": "closed", "code": 4401 }));

    let alice = s.register("alice", "password1").await;
    let mut ws = connect(&s, None).await.unwrap();
    send(&mut ws, json!({ "type": "auth", "access_token": alice.access_token })).await;
    let ready = next(&mut ws).await;
    assert_eq!((ready["type"].as_str(), ready["user_id"].as_str()), (Some("ready"), Some("@alice:localhost")));
}

#[tokio::test]
async fn pushes_requests_and_resume() {
    let s = TestServer::start();
    let (alice, bob, room) = setup(&s).await;
    let mut ws = connect(&s, Some(&bob.access_token)).await.unwrap();
    assert_eq!(next(&mut ws).await["type"], "ready");
    send(&mut ws, json!({ "type": "sync" })).await;
    let initial = next(&mut ws).await;
    assert_eq!(initial["type"], "sync");
    assert!(initial["data"]["rooms"]["join"].get(&room).is_some());

    s.send_text(&alice.access_token, &room, "pushed").await;
    let pushed = next(&mut ws).await;
    assert_eq!(bodies(&pushed, &room), ["pushed"]);
    let token = pushed["data"]["next_batch"].as_str().unwrap().to_owned();

    send(&mut ws, json!({ "type": "ping", "id": 7 })).await;
    assert_eq!(next(&mut ws).await, json!({ "type": "pong", "id": 7 }));
    let path = format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/ws1");
    send(&mut ws, json!({ "type": "request", "id": "r1", "method": "PUT", "path": path, "body": { "msgtype": "m.text", "body": "over the socket" } })).await;
    let mut got_response = false;
    let mut got_echo = false;
    for _ in 0..4 {
        let f = next(&mut ws).await;
        if f["type"] == "response" {
            assert_eq!(f["id"], "r1");
            assert!(f["result"]["event_id"].as_str().unwrap().starts_with('$'));
            got_response = true;
        } else if f["type"] == "sync" && bodies(&f, &room) == ["over the socket"] {
            got_echo = true;
        }
        if got_response && got_echo {
            break;
        }
    }
    assert!(got_response && got_echo, "the reply and the pushed event");
    send(&mut ws, json!({ "type": "request", "id": "r2", "method": "PUT", "path": "/_matrix/client/v3/rooms/!nope:localhost/send/m.room.message/x", "body": {} })).await;
    let err = next(&mut ws).await;
    assert_eq!(
        (err["id"].as_str(), err["status"].as_u64(), err["error"]["errcode"].as_str()),
        (Some("r2"), Some(403), Some("M_FORBIDDEN"))
    );
    send(&mut ws, json!({ "type": "request", "id": "r3", "method": "GET", "path": "/_matrix/client/v3/sync" })).await;
    assert_eq!(next(&mut ws).await["error"]["errcode"], "M_UNRECOGNIZED");
    send(&mut ws, json!("not an object")).await;
    assert_eq!(next(&mut ws).await["error"]["errcode"], "M_UNRECOGNIZED");
    drop(ws);

    // While disconnected: three messages. Reconnecting from the token loses none of them.
    for i in 0..3 {
        s.send_text(&alice.access_token, &room, &format!("missed {i}")).await;
    }
    let mut ws = connect(&s, Some(&bob.access_token)).await.unwrap();
    next(&mut ws).await;
    send(&mut ws, json!({ "type": "sync", "since": token })).await;
    let resumed = next(&mut ws).await;
    assert_eq!(bodies(&resumed, &room), ["over the socket", "missed 0", "missed 1", "missed 2"]);
    // A sync frame is answered at once, even when nothing is new.
    let latest = resumed["data"]["next_batch"].as_str().unwrap().to_owned();
    send(&mut ws, json!({ "type": "sync", "since": latest })).await;
    let quiet = next(&mut ws).await;
    assert_eq!(quiet["type"], "sync");
    assert!(quiet["data"]["rooms"]["join"].as_object().unwrap().is_empty());
    send(&mut ws, json!({ "type": "sync", "since": "garbage" })).await;
    assert_eq!(next(&mut ws).await["error"]["errcode"], "M_INVALID_PARAM");
}

#[tokio::test]
async fn a_slow_reader_gets_coalesced_catch_ups() {
    let s = TestServer::start();
    let (alice, bob, room) = setup(&s).await;
    let mut ws = connect(&s, Some(&bob.access_token)).await.unwrap();
    next(&mut ws).await;
    send(&mut ws, json!({ "type": "sync", "filter": { "room": { "timeline": { "limit": 1000 } } } })).await;
    next(&mut ws).await;
    // Bob stops reading while 15 MB of messages go out: more than any socket buffer holds.
    let big = "z".repeat(30_000);
    for i in 0..500 {
        let path = format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/slow{i}");
        let r = s.put(&path, alice.token(), json!({ "msgtype": "m.text", "body": format!("{i} {big}") })).await;
        assert_eq!(r.status, 200);
    }
    let mut seen = Vec::new();
    let mut frames = 0;
    while seen.len() < 500 {
        let f = next(&mut ws).await;
        assert_eq!(f["type"], "sync");
        assert_ne!(f["data"]["rooms"]["join"][&room]["timeline"]["limited"], json!(true));
        frames += 1;
        seen.extend(bodies(&f, &room).into_iter().map(|b| b.split(' ').next().unwrap().to_owned()));
    }
    let expected: Vec<String> = (0..500).map(|i| i.to_string()).collect();
    assert_eq!(seen, expected, "every message once, in order");
    assert!(frames < 500, "the server coalesced while the reader was slow ({frames} frames)");
}
#[tokio::test]
async fn logout_closes_the_socket() {
    let s = TestServer::start();
    let (_alice, bob, _room) = setup(&s).await;
    let mut ws = connect(&s, Some(&bob.access_token)).await.unwrap();
    next(&mut ws).await;
    send(&mut ws, json!({ "type": "sync" })).await;
    next(&mut ws).await;
    assert_eq!(s.post("/_matrix/client/v3/logout", bob.token(), json!({})).await.status, 200);
    let err = next(&mut ws).await;
    assert_eq!(err["error"]["errcode"], "M_UNKNOWN_TOKEN");
    assert_eq!(next(&mut ws).await, json!({ "type": "closed", "code": 4401 }));
}
