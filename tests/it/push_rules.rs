//! Push rules: the API, `m.push_rules` in `/sync`, and unread counts by the user's own rules.

use serde_json::{Value, json};

use crate::server::TestServer;
use crate::sync::sync;

const RULES: &str = "/_matrix/client/v3/pushrules/global";

fn ids(rules: &Value, kind: &str) -> Vec<String> {
    rules[kind].as_array().unwrap().iter().map(|r| r["rule_id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn the_server_defaults_in_the_spec_order() {
    let s = TestServer::start();
    let a = s.register("alice", "password1").await;
    let r = s.get("/_matrix/client/v3/pushrules/", a.token()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let global = &r.body["global"];
    assert_eq!(
        ids(global, "override"),
        [
            ".m.rule.master",
            ".m.rule.suppress_notices",
            ".m.rule.invite_for_me",
            ".m.rule.member_event",
            ".m.rule.is_user_mention",
            ".m.rule.contains_display_name",
            ".m.rule.is_room_mention",
            ".m.rule.roomnotif",
            ".m.rule.tombstone",
            ".m.rule.reaction",
            ".m.rule.room.server_acl",
            ".m.rule.suppress_edits",
        ]
    );
    assert_eq!(ids(global, "content"), [".m.rule.contains_user_name"]);
    assert_eq!(
        ids(global, "underride"),
        [
            ".m.rule.call",
            ".m.rule.encrypted_room_one_to_one",
            ".m.rule.room_one_to_one",
            ".m.rule.message",
            ".m.rule.encrypted"
        ]
    );
    assert_eq!(global["content"][0]["pattern"], "alice");
    assert_eq!(global["override"][0]["enabled"], false, "master is off by default");
    assert_eq!(s.get(&format!("{RULES}/"), a.token()).await.body, *global);

    let r = s.get(&format!("{RULES}/underride/.m.rule.call"), a.token()).await;
    assert_eq!(r.body["actions"], json!(["notify", { "set_tweak": "sound", "value": "ring" }]));
    assert_eq!(r.body["conditions"], json!([{ "kind": "event_match", "key": "type", "pattern": "m.call.invite" }]));
    assert_eq!(r.body["default"], true);

    // The first sync carries them as account data though alice never changed one.
    let first = sync(&s, &a, None, "").await;
    let events = first["account_data"]["events"].as_array().unwrap();
    let pushed = events.iter().find(|e| e["type"] == "m.push_rules").expect("m.push_rules in the first sync");
    assert_eq!(pushed["content"]["global"], *global);
}

#[tokio::test]
async fn user_rules_are_placed_changed_and_deleted() {
    let s = TestServer::start();
    let a = s.register("alice", "password1").await;
    let tok = a.token();
    let actions = json!({ "actions": ["notify"], "pattern": "lunch" });
    assert_eq!(s.put(&format!("{RULES}/content/lunch"), tok, actions).await.status, 200);
    let r = s.put(&format!("{RULES}/content/cake"), tok, json!({ "actions": [], "pattern": "cake" })).await;
    assert_eq!(r.status, 200);
    let r = s.put(&format!("{RULES}/content/tea?after=cake"), tok, json!({ "actions": [], "pattern": "tea" })).await;
    assert_eq!(r.status, 200);
    let all = s.get(&format!("{RULES}/"), tok).await.body;
    // New rules go first of their kind; `after` places one; the defaults stay last.
    assert_eq!(ids(&all, "content"), ["cake", "tea", "lunch", ".m.rule.contains_user_name"]);

    let r = s.get(&format!("{RULES}/content/lunch"), tok).await;
    assert_eq!(
        r.body,
        json!({ "rule_id": "lunch", "pattern": "lunch", "actions": ["notify"], "enabled": true, "default": false })
    );
    let r = s.put(&format!("{RULES}/content/lunch/enabled"), tok, json!({ "enabled": false })).await;
    assert_eq!(r.status, 200);
    assert_eq!(s.get(&format!("{RULES}/content/lunch/enabled"), tok).await.body, json!({ "enabled": false }));
    let highlight = json!({ "actions": ["notify", { "set_tweak": "highlight" }] });
    assert_eq!(s.put(&format!("{RULES}/content/lunch/actions"), tok, highlight.clone()).await.status, 200);
    assert_eq!(s.get(&format!("{RULES}/content/lunch/actions"), tok).await.body, highlight);

    // Server-default rules: their state can change, they cannot be made or removed.
    let r = s.put(&format!("{RULES}/override/.m.rule.master/enabled"), tok, json!({ "enabled": true })).await;
    assert_eq!(r.status, 200);
    assert_eq!(s.get(&format!("{RULES}/override/.m.rule.master"), tok).await.body["enabled"], true);
    let r = s.delete(&format!("{RULES}/override/.m.rule.master"), tok, json!({})).await;
    assert_eq!((r.status, r.errcode()), (400, "M_INVALID_PARAM"));
    let r = s.put(&format!("{RULES}/override/.m.rule.mine"), tok, json!({ "actions": [], "conditions": [] })).await;
    assert_eq!((r.status, r.errcode()), (400, "M_INVALID_PARAM"));

    // Bad input.
    let r = s.put(&format!("{RULES}/content/x?before=nope"), tok, json!({ "actions": [], "pattern": "x" })).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));
    let r = s
        .put(
            &format!("{RULES}/content/x?after=.m.rule.contains_user_name"),
            tok,
            json!({ "actions": [], "pattern": "x" }),
        )
        .await;
    assert_eq!((r.status, r.errcode()), (400, "M_INVALID_PARAM"));
    let r = s.put(&format!("{RULES}/content/x"), tok, json!({ "actions": [] })).await;
    assert_eq!(r.status, 400, "a content rule needs a pattern: {:?}", r.body);
    let r = s.put(&format!("{RULES}/override/x"), tok, json!({ "actions": "notify" })).await;
    assert_eq!((r.status, r.errcode()), (400, "M_BAD_JSON"));
    let r = s.put(&format!("{RULES}/sender/not-a-user"), tok, json!({ "actions": [] })).await;
    assert_eq!(r.status, 400);
    let r = s.get(&format!("{RULES}/content/nope"), tok).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));
    let r = s.put(&format!("{RULES}/content/nope/enabled"), tok, json!({ "enabled": true })).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));
    let r = s.put(&format!("{RULES}/content/nope/actions"), tok, json!({ "actions": [] })).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));
    let r = s.get(&format!("{RULES}/nokind/lunch"), tok).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"), "no rule of an unknown kind");
    let r = s.put(&format!("{RULES}/nokind/lunch"), tok, json!({ "actions": [] })).await;
    assert_eq!((r.status, r.errcode()), (400, "M_INVALID_PARAM"));
    let r = s.put("/_matrix/client/v3/user/@alice:localhost/account_data/m.push_rules", tok, json!({})).await;
    assert_eq!(r.status, 405, "the rules change only through this API");

    assert_eq!(s.delete(&format!("{RULES}/content/cake"), tok, json!({})).await.status, 200);
    let r = s.delete(&format!("{RULES}/content/cake"), tok, json!({})).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));
    let all = s.get(&format!("{RULES}/"), tok).await.body;
    assert_eq!(ids(&all, "content"), ["tea", "lunch", ".m.rule.contains_user_name"]);

    // Another device sees the change as account data; the rules survive a restart.
    let other = s.login("alice", "password1").await;
    let other = crate::server::Session::from(&other.body);
    let first = sync(&s, &other, None, "").await;
    let since = first["next_batch"].as_str().unwrap().to_owned();
    assert_eq!(s.delete(&format!("{RULES}/content/tea"), tok, json!({})).await.status, 200);
    let inc = sync(&s, &other, Some(&since), "").await;
    let events = inc["account_data"]["events"].as_array().unwrap();
    let pushed = events.iter().find(|e| e["type"] == "m.push_rules").expect("m.push_rules after a change");
    assert_eq!(ids(&pushed["content"]["global"], "content"), ["lunch", ".m.rule.contains_user_name"]);
    let mut s = s;
    s.restart();
    let all = s.get(&format!("{RULES}/"), tok).await.body;
    assert_eq!(ids(&all, "content"), ["lunch", ".m.rule.contains_user_name"]);
    assert_eq!(all["override"][0]["enabled"], true, "master stays on");
}

#[tokio::test]
async fn unread_counts_follow_the_users_rules() {
    let s = TestServer::start();
    let alice = s.register("alice", "password1").await;
    let bob = s.register("bob", "password1").await;
    let room = s.create_room(&alice.access_token, json!({ "preset": "public_chat" })).await;
    s.join(&bob.access_token, &room).await;
    let counts = |body: &Value| body["rooms"]["join"][&room]["unread_notifications"].clone();

    s.send_text(&alice.access_token, &room, "lunch at noon").await;
    let first = sync(&s, &bob, None, "").await;
    assert_eq!(counts(&first), json!({ "notification_count": 1, "highlight_count": 0 }));

    // Bob highlights "lunch" and mutes the room; the muted room's messages stop counting.
    let highlight = json!({ "actions": ["notify", { "set_tweak": "highlight" }], "pattern": "lunch" });
    assert_eq!(s.put(&format!("{RULES}/content/lunch"), bob.token(), highlight).await.status, 200);
    s.send_text(&alice.access_token, &room, "lunch again").await;
    let body = sync(&s, &bob, None, "").await;
    assert_eq!(counts(&body), json!({ "notification_count": 2, "highlight_count": 1 }));

    let r = s.put(&format!("{RULES}/room/{room}"), bob.token(), json!({ "actions": [] })).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    s.send_text(&alice.access_token, &room, "more news").await;
    let body = sync(&s, &bob, None, "").await;
    assert_eq!(counts(&body), json!({ "notification_count": 2, "highlight_count": 1 }));

    // The master rule silences everything.
    assert_eq!(s.delete(&format!("{RULES}/room/{room}"), bob.token(), json!({})).await.status, 200);
    let r = s.put(&format!("{RULES}/override/.m.rule.master/enabled"), bob.token(), json!({ "enabled": true })).await;
    assert_eq!(r.status, 200);
    s.send_text(&alice.access_token, &room, "lunch lunch").await;
    let body = sync(&s, &bob, None, "").await;
    assert_eq!(counts(&body), json!({ "notification_count": 2, "highlight_count": 1 }));
}
