//! `POST /_matrix/client/v3/createRoom` (spec: "Creation"), `POST /rooms/{roomId}/upgrade`
//! (spec: "Room Upgrades").

use ruma::api::client::room::{Visibility, create_room};
use serde_json::Value;

use crate::api::ruma::Ruma;
use crate::error::{Error, Result};
use crate::rooms::build::NewEvent;
use crate::rooms::create::{CreateRoom, create};
use crate::services::State;

fn raw_json<T>(raw: &ruma::serde::Raw<T>) -> Result<Value> {
    serde_json::from_str(raw.json().get()).map_err(|e| Error::bad_json(e.to_string()))
}

/// `POST /_matrix/client/v3/createRoom`
pub async fn create_room(s: State, r: Ruma<create_room::v3::Request>) -> Result<create_room::v3::Response> {
    r.auth()?.ensure_not_suspended()?;
    let creator = r.auth()?.user_id.clone();
    let b = r.body;
    let mut initial_state = Vec::new();
    for raw in &b.initial_state {
        let v = raw_json(raw)?;
        let kind =
            v.get("type").and_then(Value::as_str).ok_or_else(|| Error::bad_json("initial_state event without type"))?;
        let state_key = v.get("state_key").and_then(Value::as_str).unwrap_or("");
        let content = v.get("content").cloned().unwrap_or_else(|| serde_json::json!({}));
        initial_state.push(NewEvent::state(kind, state_key, content));
    }
    let req = CreateRoom {
        room_version: b.room_version,
        creation_content: b.creation_content.as_ref().map(raw_json).transpose()?,
        preset: b.preset.map(|p| p.as_str().to_owned()),
        public: b.visibility == Visibility::Public,
        name: b.name,
        topic: b.topic,
        room_alias_name: b.room_alias_name,
        initial_state,
        power_level_content_override: b.power_level_content_override.as_ref().map(raw_json).transpose()?,
        invite: b.invite,
        is_direct: b.is_direct,
    };
    let remote: Vec<_> = req.invite.iter().filter(|u| !s.is_local(u)).cloned().collect();
    let is_direct = req.is_direct;
    let room_id = create(&s, &creator, req).await?;
    for invitee in remote {
        crate::federation::invite::invite_remote(&s, &room_id, &creator, &invitee, None, is_direct).await?;
    }
    Ok(create_room::v3::Response::new(room_id))
}

/// `POST /_matrix/client/v3/rooms/{roomId}/upgrade`
pub async fn upgrade(
    s: State,
    r: Ruma<ruma::api::client::room::upgrade_room::v3::Request>,
) -> Result<ruma::api::client::room::upgrade_room::v3::Response> {
    let user = r.auth()?.user_id.clone();
    let new_room = crate::rooms::upgrade::upgrade(&s, &r.body.room_id, &user, &r.body.new_version).await?;
    Ok(ruma::api::client::room::upgrade_room::v3::Response::new(new_room))
}
