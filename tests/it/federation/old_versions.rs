//! Room versions 1 and 2 (event IDs `$random:server` carried in the event, references as
//! `[event_id, hashes]`): created, written and read locally, and joined over federation by a
//! user of another server, messages flowing both ways.

use serde_json::json;

use super::join::{Pair, Watch, member, message};
use crate::server::urlencode;

#[tokio::test]
async fn rooms_of_versions_1_and_2_are_created_and_joined_over_federation() {
    let mut p = Pair::start().await;
    let key = p.a.signing_key();
    let mut alice = Watch::new(&p.a.server, &p.alice).await;
    let mut bob = Watch::new(&p.b.server, &p.bob).await;
    let tok = p.bob.access_token.as_str();
    for version in ["1", "2"] {
        let room = p.public_room(json!({ "room_version": version, "name": format!("Old v{version}") })).await;
        let first = p.b.server.send_text(tok, &room, &format!("v{version} first")).await;
        // An event ID of the old format: chosen by B, on B's name.
        assert!(first.starts_with('$') && first.ends_with(&format!(":{}", p.b.name)), "{first}");
        let r =
            p.b.server
                .get(&format!("/_matrix/client/v3/rooms/{room}/event/{}", urlencode(&first)), p.bob.token())
                .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(
            (r.body["event_id"].as_str(), r.body["content"]["body"].as_str()),
            (Some(first.as_str()), Some(format!("v{version} first").as_str()))
        );
        assert_eq!(p.b.server.message_bodies(tok, &room).await, [format!("v{version} first")]);

        let r = p.alice_joins(&room).await;
        assert_eq!(r.status, 200, "v{version}: {:?}", r.body);
        let create = alice.wait("the create event", |s| s.room == room && s.event["type"] == "m.room.create").await;
        assert_eq!(create.event["content"]["room_version"], version);
        assert_eq!(create.event["content"]["creator"], p.bob.user_id.as_str());
        let name = alice.wait("the name", |s| s.room == room && s.event["type"] == "m.room.name").await;
        assert_eq!(name.event["content"]["name"], format!("Old v{version}"));
        bob.wait("alice's join on B", member(&room, &p.alice.user_id, "join")).await;

        let text = format!("v{version} from bob");
        p.b.server.send_text(tok, &room, &text).await;
        let got = alice.wait(&text, message(&room, &text)).await;
        assert_eq!(got.event["sender"], p.bob.user_id.as_str());
        let text = format!("v{version} from alice");
        let id = p.a.server.send_text(&p.alice.access_token, &room, &text).await;
        assert!(id.ends_with(&format!(":{}", p.a.name)), "A names its own events: {id}");
        let got = bob.wait(&text, message(&room, &text)).await;
        assert_eq!(
            (got.event["sender"].as_str(), got.event["event_id"].as_str()),
            (Some(p.alice.user_id.as_str()), Some(id.as_str()))
        );
        let bodies = p.b.server.message_bodies(tok, &room).await;
        assert_eq!(bodies, [format!("v{version} first"), format!("v{version} from bob"), text.clone()]);

        // On the wire: the ID inside the PDU, references as `[event_id, {"sha256": hash}]`.
        let uri = format!("/_matrix/federation/v1/event/{}", urlencode(&first));
        let auth = super::x_matrix(&key, &p.a.name, &p.b.name, "GET", &uri, None);
        let r = p.b.request(reqwest::Method::GET, &uri, Some(&auth), None).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let pdu = &r.body["pdus"][0];
        assert_eq!(pdu["event_id"], first.as_str());
        for field in ["prev_events", "auth_events"] {
            let refs = pdu[field].as_array().unwrap();
            assert!(!refs.is_empty(), "{field}");
            for r in refs {
                assert!(
                    r[0].as_str().is_some_and(|id| id.starts_with('$')) && r[1]["sha256"].is_string(),
                    "{field}: {r}"
                );
            }
        }
    }
}
