//! Joining rooms on another server, between two real Trellis servers A and B: joins by alias
//! and by room ID with `via` (room versions 10, 11, 12), messages and typing both ways through
//! the real sending queue and `/send`, remote invites (accepted, rejected), kicks, bans, leaving
//! and joining again. Every wait is a bounded long-poll of `/sync`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Fed, Pki};
use crate::server::{Session, TestServer, urlencode};

/// One event a `/sync` returned: the section (`join`, `invite`, `leave`), the part
/// (`timeline`, `state`, `ephemeral`, `invite_state`), the room, the event.
#[derive(Debug, Clone)]
pub struct Seen {
    pub section: String,
    pub part: String,
    pub room: String,
    pub event: Value,
}

/// A user's `/sync` stream: everything seen so far, so a wait never misses what an earlier
/// one consumed.
pub struct Watch<'a> {
    server: &'a TestServer,
    token: String,
    since: Option<String>,
    pub seen: Vec<Seen>,
}

impl<'a> Watch<'a> {
    pub async fn new(server: &'a TestServer, who: &Session) -> Watch<'a> {
        let mut w = Watch { server, token: who.access_token.clone(), since: None, seen: Vec::new() };
        w.poll(0).await;
        w
    }

    async fn poll(&mut self, timeout_ms: u64) {
        let mut path = format!("/_matrix/client/v3/sync?timeout={timeout_ms}");
        if let Some(s) = &self.since {
            path.push_str(&format!("&since={s}"));
        }
        let r = self.server.get(&path, Some(&self.token)).await;
        if r.status != 200 {
            let log = self.server.log();
            panic!("sync: {:?}\n{}", r.body, &log[log.len().saturating_sub(4000)..]);
        }
        self.since = r.body["next_batch"].as_str().map(str::to_owned);
        for section in ["join", "invite", "leave", "knock"] {
            let Some(rooms) = r.body["rooms"][section].as_object() else { continue };
            for (room, data) in rooms {
                for part in ["timeline", "state", "ephemeral", "invite_state", "knock_state"] {
                    for event in data[part]["events"].as_array().into_iter().flatten() {
                        let (section, part, room) = (section.to_owned(), part.to_owned(), room.clone());
                        self.seen.push(Seen { section, part, room, event: event.clone() });
                    }
                }
            }
        }
    }

    /// Long-poll `/sync` until `pred` holds for something seen (at most 30 s).
    pub async fn wait(&mut self, what: &str, pred: impl Fn(&Seen) -> bool) -> Seen {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(found) = self.seen.iter().find(|s| pred(s)) {
                return found.clone();
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; seen: {:#?}", self.seen);
            self.poll(2000).await;
        }
    }
}

/// `m.room.message` with `body` in `room`'s timeline.
pub fn message(room: &str, body: &str) -> impl Fn(&Seen) -> bool {
    let (room, body) = (room.to_owned(), body.to_owned());
    move |s| s.room == room && s.part == "timeline" && s.event["content"]["body"] == body.as_str()
}

/// `user`'s `m.room.member` with `membership` in `room` (any section and part).
pub fn member(room: &str, user: &str, membership: &str) -> impl Fn(&Seen) -> bool {
    let (room, user, membership) = (room.to_owned(), user.to_owned(), membership.to_owned());
    move |s| {
        s.room == room
            && s.event["type"] == "m.room.member"
            && s.event["state_key"] == user.as_str()
            && s.event["content"]["membership"] == membership.as_str()
    }
}

/// Two federating servers and a user on each: alice on A, bob on B.
pub struct Pair {
    _pki: Pki,
    pub a: Fed,
    pub b: Fed,
    pub alice: Session,
    pub bob: Session,
}

impl Pair {
    pub async fn start() -> Pair {
        let pki = Pki::new();
        let (a, b) = (Fed::start(&pki), Fed::start(&pki));
        let alice = a.server.register("alice", "password-alice").await;
        let bob = b.server.register("bob", "password-bob").await;
        Pair { _pki: pki, a, b, alice, bob }
    }

    /// A public room of bob's on B.
    pub async fn public_room(&self, extra: Value) -> String {
        let mut body = json!({ "preset": "public_chat" });
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        self.b.server.create_room(&self.bob.access_token, body).await
    }

    /// alice joins `target` (room ID or alias) with `via` B.
    pub async fn alice_joins(&self, target: &str) -> crate::server::Resp {
        let path = format!("/_matrix/client/v3/join/{}?via={}", urlencode(target), urlencode(self.b.name.as_str()));
        self.a.server.post(&path, self.alice.token(), json!({})).await
    }
}

#[tokio::test]
async fn join_by_alias_then_messages_and_typing_both_ways() {
    let p = Pair::start().await;
    let extra = json!({ "room_alias_name": "lobby", "name": "Lobby", "topic": "Chat here" });
    let room = p.public_room(extra).await;
    p.b.server.send_text(&p.bob.access_token, &room, "before alice").await;

    let alias = format!("#lobby:{}", p.b.name);
    let r = p.a.server.join(&p.alice.access_token, &alias).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["room_id"], room.as_str());

    let mut alice = Watch::new(&p.a.server, &p.alice).await;
    let mut bob = Watch::new(&p.b.server, &p.bob).await;
    let name = alice.wait("the room name", |s| s.room == room && s.event["type"] == "m.room.name").await;
    assert_eq!((name.section.as_str(), name.part.as_str()), ("join", "state"));
    assert_eq!(name.event["content"]["name"], "Lobby");
    let topic = alice.wait("the topic", |s| s.room == room && s.event["type"] == "m.room.topic").await;
    assert_eq!(topic.event["content"]["topic"], "Chat here");
    let creator = alice.wait("bob's membership", member(&room, &p.bob.user_id, "join")).await;
    assert_eq!(creator.part, "state");
    let join = alice.wait("alice's join", member(&room, &p.alice.user_id, "join")).await;
    assert_eq!(join.part, "timeline");
    // B has alice's join from send_join.
    bob.wait("alice's join on B", member(&room, &p.alice.user_id, "join")).await;

    p.b.server.send_text(&p.bob.access_token, &room, "hello alice").await;
    let got = alice.wait("bob's message", message(&room, "hello alice")).await;
    assert_eq!(got.event["sender"], p.bob.user_id.as_str());
    p.a.server.send_text(&p.alice.access_token, &room, "hello bob").await;
    let got = bob.wait("alice's message", message(&room, "hello bob")).await;
    assert_eq!(got.event["sender"], p.alice.user_id.as_str());
    // A's timeline starts at the join (history before it is not backfilled here).
    assert!(p.a.server.message_bodies(&p.alice.access_token, &room).await.contains(&"hello alice".to_owned()));

    let path = format!("/_matrix/client/v3/rooms/{room}/typing/{}", urlencode(&p.alice.user_id));
    let r = p.a.server.put(&path, p.alice.token(), json!({ "typing": true, "timeout": 20000 })).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let alice_id = p.alice.user_id.clone();
    bob.wait("alice typing", |s| {
        s.room == room
            && s.event["type"] == "m.typing"
            && s.event["content"]["user_ids"].as_array().is_some_and(|u| u.contains(&json!(alice_id)))
    })
    .await;
}

#[tokio::test]
async fn join_by_room_id_with_via_in_room_versions_10_11_12() {
    let p = Pair::start().await;
    let mut alice = Watch::new(&p.a.server, &p.alice).await;
    let mut bob = Watch::new(&p.b.server, &p.bob).await;
    for version in ["10", "11", "12"] {
        let room = p.public_room(json!({ "room_version": version })).await;
        let r = p.alice_joins(&room).await;
        assert_eq!(r.status, 200, "v{version}: {:?}", r.body);
        let create = alice.wait("the create event", |s| s.room == room && s.event["type"] == "m.room.create").await;
        assert_eq!(create.event["content"]["room_version"], version);
        bob.wait("alice's join", member(&room, &p.alice.user_id, "join")).await;
        let text = format!("v{version} from bob");
        p.b.server.send_text(&p.bob.access_token, &room, &text).await;
        alice.wait(&text, message(&room, &text)).await;
        let text = format!("v{version} from alice");
        p.a.server.send_text(&p.alice.access_token, &room, &text).await;
        bob.wait(&text, message(&room, &text)).await;
    }
}

#[tokio::test]
async fn kick_ban_unban_leave_and_rejoin() {
    let p = Pair::start().await;
    let room = p.public_room(json!({})).await;
    let mut alice = Watch::new(&p.a.server, &p.alice).await;
    let mut bob = Watch::new(&p.b.server, &p.bob).await;
    assert_eq!(p.alice_joins(&room).await.status, 200);
    bob.wait("alice's join", member(&room, &p.alice.user_id, "join")).await;

    let kick = json!({ "user_id": p.alice.user_id, "reason": "out" });
    assert_eq!(p.b.server.room_post(&p.bob.access_token, &room, "kick", kick).await.status, 200);
    let left = alice.wait("the kick", member(&room, &p.alice.user_id, "leave")).await;
    assert_eq!(left.section, "leave");
    assert_eq!(left.event["sender"], p.bob.user_id.as_str());

    // A is in the room no more: the rejoin goes through B again.
    assert_eq!(p.alice_joins(&room).await.status, 200);
    alice.seen.clear();
    let ban = json!({ "user_id": p.alice.user_id });
    assert_eq!(p.b.server.room_post(&p.bob.access_token, &room, "ban", ban).await.status, 200);
    alice.wait("the ban", member(&room, &p.alice.user_id, "ban")).await;
    let r = p.alice_joins(&room).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "{:?}", r.body);

    let unban = json!({ "user_id": p.alice.user_id });
    assert_eq!(p.b.server.room_post(&p.bob.access_token, &room, "unban", unban).await.status, 200);
    assert_eq!(p.alice_joins(&room).await.status, 200);
    bob.seen.clear();
    bob.wait("alice back", member(&room, &p.alice.user_id, "join")).await;

    // A normal leave goes out through the queue; joining again goes through B.
    assert_eq!(p.a.server.room_post(&p.alice.access_token, &room, "leave", json!({})).await.status, 200);
    bob.wait("alice's leave", member(&room, &p.alice.user_id, "leave")).await;
    bob.seen.clear();
    assert_eq!(p.alice_joins(&room).await.status, 200);
    bob.wait("alice's last join", member(&room, &p.alice.user_id, "join")).await;
    p.a.server.send_text(&p.alice.access_token, &room, "back again").await;
    bob.wait("alice's message", message(&room, "back again")).await;
}

#[tokio::test]
async fn remote_invite_accepted_and_rejected() {
    let p = Pair::start().await;
    let mut alice = Watch::new(&p.a.server, &p.alice).await;
    let mut bob = Watch::new(&p.b.server, &p.bob).await;
    for accept in [true, false] {
        let body = json!({ "preset": "private_chat", "name": "Secret" });
        let room = p.b.server.create_room(&p.bob.access_token, body).await;
        let invite = json!({ "user_id": p.alice.user_id });
        let r = p.b.server.room_post(&p.bob.access_token, &room, "invite", invite).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let got = alice.wait("the invite", member(&room, &p.alice.user_id, "invite")).await;
        assert_eq!(got.section, "invite");
        let name = alice.wait("the invite's room name", |s| s.room == room && s.event["type"] == "m.room.name").await;
        assert_eq!(name.event["content"]["name"], "Secret");
        bob.wait("the invite on B", member(&room, &p.alice.user_id, "invite")).await;
        if accept {
            // By room ID alone: the inviting server is the one asked.
            let r = p.a.server.room_post(&p.alice.access_token, &room, "join", json!({})).await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            bob.wait("alice's join", member(&room, &p.alice.user_id, "join")).await;
            let join = alice.wait("alice's join", member(&room, &p.alice.user_id, "join")).await;
            assert_eq!(join.section, "join");
        } else {
            let r = p.a.server.room_post(&p.alice.access_token, &room, "leave", json!({})).await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            let leave = bob.wait("the rejection", member(&room, &p.alice.user_id, "leave")).await;
            assert_eq!(leave.event["sender"], p.alice.user_id.as_str());
            let mine = alice.wait("the rejection on A", member(&room, &p.alice.user_id, "leave")).await;
            assert_eq!(mine.section, "leave");
            // A rejected invite can be forgotten: it leaves /sync, include_leave too.
            let include_leave = "filter=%7B%22room%22%3A%7B%22include_leave%22%3Atrue%7D%7D";
            let path = format!("/_matrix/client/v3/sync?timeout=0&{include_leave}");
            let r = p.a.server.get(&path, p.alice.token()).await;
            assert!(r.body["rooms"]["leave"].get(&room).is_some(), "{:?}", r.body["rooms"]);
            let r = p.a.server.room_post(&p.alice.access_token, &room, "forget", json!({})).await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            let r = p.a.server.get(&path, p.alice.token()).await;
            assert!(r.body["rooms"]["leave"].get(&room).is_none(), "forgotten: {:?}", r.body["rooms"]);
        }
    }
}

#[tokio::test]
async fn invite_of_a_remote_user_by_a_local_one_and_refusals() {
    let p = Pair::start().await;
    let room = p.a.server.create_room(&p.alice.access_token, json!({ "preset": "private_chat" })).await;
    let mut bob = Watch::new(&p.b.server, &p.bob).await;
    let invite = json!({ "user_id": p.bob.user_id });
    let r = p.a.server.room_post(&p.alice.access_token, &room, "invite", invite).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    bob.wait("the invite on B", member(&room, &p.bob.user_id, "invite")).await;
    let r = p.b.server.room_post(&p.bob.access_token, &room, "join", json!({})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let mut alice = Watch::new(&p.a.server, &p.alice).await;
    alice.wait("bob's join", member(&room, &p.bob.user_id, "join")).await;

    // createRoom's invite list may name users of other servers (a direct chat).
    let body = json!({ "preset": "trusted_private_chat", "is_direct": true, "invite": [p.bob.user_id] });
    let dm = p.a.server.create_room(&p.alice.access_token, body).await;
    let got = bob.wait("the direct-chat invite", member(&dm, &p.bob.user_id, "invite")).await;
    assert_eq!(got.event["content"]["is_direct"], true);
    assert_eq!(got.event["sender"], p.alice.user_id.as_str());

    // A user B does not have: B's 404 is relayed.
    let invite = json!({ "user_id": format!("@nobody:{}", p.b.name) });
    let r = p.a.server.room_post(&p.alice.access_token, &room, "invite", invite).await;
    assert_eq!(r.status, 404, "{:?}", r.body);
    // No server knows this room.
    let r = p.a.server.join(&p.alice.access_token, &format!("!nowhere:{}", p.b.name)).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"), "{:?}", r.body);
    let r = p.a.server.join(&p.alice.access_token, &format!("#missing:{}", p.b.name)).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"), "{:?}", r.body);
}

/// The state and auth chain a join brings along are outliers on the joining server: it holds
/// them but not the state at them, so `/state_ids` at one is 404, while at the join it is served.
#[tokio::test]
async fn state_at_an_outlier_is_not_served() {
    let mut p = Pair::start().await;
    let room = p.public_room(json!({ "topic": "Chat here" })).await;
    let r = p.alice_joins(&room).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let state = p.b.server.get(&format!("/_matrix/client/v3/rooms/{room}/state"), p.bob.token()).await;
    let topic = state.body.as_array().unwrap().iter().find(|e| e["type"] == "m.room.topic").unwrap();
    let topic_id = topic["event_id"].as_str().unwrap().to_owned();
    let alice_join = p.a.server.get(&format!("/_matrix/client/v3/rooms/{room}/state"), p.alice.token()).await;
    let join_id = alice_join
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.room.member" && e["state_key"] == p.alice.user_id.as_str())
        .unwrap()["event_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The joined user may still read the outlier itself.
    let r =
        p.a.server
            .get(&format!("/_matrix/client/v3/rooms/{room}/event/{}", urlencode(&topic_id)), p.alice.token())
            .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["content"]["topic"], "Chat here");
    assert_eq!(r.body["event_id"], topic_id.as_str());

    let key = p.b.signing_key();
    for (event_id, status) in [(topic_id.as_str(), 404), (join_id.as_str(), 200)] {
        let uri = format!("/_matrix/federation/v1/state_ids/{}?event_id={}", urlencode(&room), urlencode(event_id));
        let auth = super::x_matrix(&key, &p.b.name, &p.a.name, "GET", &uri, None);
        let r = p.a.request(reqwest::Method::GET, &uri, Some(&auth), None).await;
        assert_eq!(r.status, status, "{event_id}: {:?}", r.body);
        if status == 404 {
            assert_eq!(r.errcode(), "M_NOT_FOUND");
        } else {
            let ids = r.body["pdu_ids"].as_array().unwrap();
            assert!(ids.contains(&json!(topic_id)), "the state before alice's join holds the topic: {ids:?}");
        }
    }
}

#[tokio::test]
async fn restricted_join_through_the_resident_server() {
    let p = Pair::start().await;
    let carol = p.b.server.register("carol", "password-carol").await;
    let via_a =
        |room: &str| format!("/_matrix/client/v3/join/{}?via={}", urlencode(room), urlencode(p.a.name.as_str()));
    // The allowed room lives on A; bob of B joins it.
    let space = p.a.server.create_room(&p.alice.access_token, json!({ "preset": "public_chat" })).await;
    let r = p.b.server.post(&via_a(&space), p.bob.token(), json!({})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let mut alice = Watch::new(&p.a.server, &p.alice).await;
    alice.wait("bob in the space", member(&space, &p.bob.user_id, "join")).await;

    for (version, rule) in [("10", "restricted"), ("12", "knock_restricted")] {
        let content = json!({ "join_rule": rule, "allow": [{ "type": "m.room_membership", "room_id": space }] });
        let body = json!({
            "preset": "private_chat",
            "room_version": version,
            "initial_state": [{ "type": "m.room.join_rules", "state_key": "", "content": content }],
        });
        let room = p.a.server.create_room(&p.alice.access_token, body).await;

        // carol is in no allowed room: A's make_join refuses, and B relays the 403.
        let r = p.b.server.post(&via_a(&room), carol.token(), json!({})).await;
        assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "v{version} {rule}: {:?}", r.body);

        let r = p.b.server.post(&via_a(&room), p.bob.token(), json!({})).await;
        assert_eq!(r.status, 200, "v{version} {rule}: {:?}", r.body);
        let path = format!("/_matrix/client/v3/rooms/{room}/state/m.room.member/{}", urlencode(&p.bob.user_id));
        let m = p.a.server.get(&path, p.alice.token()).await.body;
        assert_eq!(m["membership"], "join", "v{version} {rule}: {m}");
        assert_eq!(m["join_authorised_via_users_server"], p.alice.user_id.as_str(), "v{version} {rule}");
        let mut bob = Watch::new(&p.b.server, &p.bob).await;
        let join = bob.wait("bob's join on B", member(&room, &p.bob.user_id, "join")).await;
        assert_eq!(join.event["content"]["join_authorised_via_users_server"], p.alice.user_id.as_str());
        let text = format!("v{version} from bob");
        p.b.server.send_text(&p.bob.access_token, &room, &text).await;
        alice.wait(&text, message(&room, &text)).await;
    }
}
