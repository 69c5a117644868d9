//! Room creation (spec: Client-Server API "Creation", `POST /createRoom`): the create event,
//! the creator's join, power levels, aliases, the preset's rules, `initial_state`, name, topic
//! and invites — each a signed, authorized event on the new room's DAG.

use ruma::events::room::member::MembershipState;
use ruma::events::{StateEventType, TimelineEventType};
use ruma::room_version_rules::RoomIdFormatVersion;
use ruma::{CanonicalJsonValue, Int, OwnedRoomId, OwnedUserId, RoomId, RoomVersionId, UserId};
use serde_json::{Map, Value, json};

use super::append::{append, send};
use super::build::{NewEvent, RoomCtx, authorize, seal, template};
use super::{membership, rules_for};
use crate::error::{Error, ErrorKind, Result};
use crate::services::Services;
use crate::storage::catalog::PUBLISHED_ROOMS;
use crate::users::{now_ms, random_string};

/// Tries at a create event whose room ID is not taken before giving up (each one a millisecond
/// later than the last; two are needed only when one user creates rooms in the same millisecond).
const CREATE_TRIES: u64 = 1000;

/// Build, authorize and persist the room's `m.room.create`. The room ID never names an existing
/// room: in v12 it is the create event's hash, so two creations by the same sender with the
/// same content in the same millisecond would hash alike; `origin_server_ts` then moves on by a
/// millisecond until the ID is free. The check and the write happen under the new ID's room lock,
/// so two concurrent creations cannot both take it. (Older versions draw a random ID; the same
/// check guards it.)
async fn create_event(
    s: &Services,
    creator: &UserId,
    version: &RoomVersionId,
    v12: bool,
    content: Value,
    origin_server_ts: u64,
) -> Result<OwnedRoomId> {
    let new = NewEvent::state(StateEventType::RoomCreate, "", content);
    for ts in origin_server_ts..origin_server_ts + CREATE_TRIES {
        let room_id = if v12 {
            None
        } else {
            Some(RoomId::parse(format!("!{}:{}", random_string(18), s.server_name)).map_err(Error::internal)?)
        };
        let ctx = RoomCtx::new_room(room_id, version)?;
        let mut unsigned = template(s, &ctx, creator, &new)?;
        let ts = Int::try_from(ts).map_err(Error::internal)?;
        unsigned.insert("origin_server_ts".into(), CanonicalJsonValue::Integer(ts));
        let (pdu, obj) = seal(s, &ctx.rules, unsigned)?;
        authorize(s, &ctx, &pdu)?;
        let room_id = pdu.room()?;
        let _guard = s.room_lock(&room_id).await;
        if super::exists(s, &room_id)? {
            continue;
        }
        append(s, &ctx, &pdu, obj, None)?;
        return Ok(room_id);
    }
    Err(Error::internal(format!("no free room ID after {CREATE_TRIES} create events")))
}

/// What `POST /createRoom` asks for, in plain JSON terms.
#[derive(Debug, Default, Clone)]
pub struct CreateRoom {
    pub room_version: Option<RoomVersionId>,
    pub creation_content: Option<Value>,
    pub preset: Option<String>,
    pub public: bool,
    pub name: Option<String>,
    pub topic: Option<String>,
    pub room_alias_name: Option<String>,
    pub initial_state: Vec<NewEvent>,
    pub power_level_content_override: Option<Value>,
    pub invite: Vec<OwnedUserId>,
    pub is_direct: bool,
}

/// Room versions we create rooms in: every version we support, 1 and 2 (`$id:server` event
/// IDs) included.
pub fn creatable(version: &RoomVersionId) -> bool {
    rules_for(version).is_ok()
}

pub async fn create(s: &Services, creator: &UserId, req: CreateRoom) -> Result<OwnedRoomId> {
    let version = req.room_version.clone().unwrap_or_else(|| s.config.rooms.default_room_version.clone());
    if !creatable(&version) {
        return Err(Error::new(
            ErrorKind::UnsupportedRoomVersion,
            format!("This server does not create rooms of version {version}"),
        ));
    }
    let rules = rules_for(&version)?;
    let v12 = rules.room_id_format == RoomIdFormatVersion::V2;
    let alias = match &req.room_alias_name {
        Some(name) => Some(super::alias::check_new(s, &format!("#{name}:{}", s.server_name))?),
        None => None,
    };
    // Users of other servers are invited over federation by the caller, once the room exists.
    for user in req.invite.iter().filter(|u| s.is_local(u) || !s.config.federation.enabled) {
        membership::ensure_local_user(s, user)?;
    }
    let preset =
        req.preset.clone().unwrap_or_else(|| if req.public { "public_chat".into() } else { "private_chat".into() });
    if !matches!(preset.as_str(), "private_chat" | "trusted_private_chat" | "public_chat") {
        return Err(Error::bad_json(format!("Unknown preset {preset}")));
    }
    let trusted = preset == "trusted_private_chat";

    // 1. m.room.create
    let mut create_content = match req.creation_content.clone() {
        Some(Value::Object(m)) => m,
        Some(_) => return Err(Error::bad_json("creation_content must be an object")),
        None => Map::new(),
    };
    create_content.insert("room_version".into(), json!(version));
    if !rules.authorization.use_room_create_sender {
        create_content.insert("creator".into(), json!(creator));
    }
    if v12 && trusted && !req.invite.is_empty() {
        // Room version 12: trusted private chats make the invitees co-creators.
        let mut extra: Vec<Value> =
            create_content.get("additional_creators").and_then(Value::as_array).cloned().unwrap_or_default();
        extra.extend(req.invite.iter().map(|u| json!(u)));
        create_content.insert("additional_creators".into(), Value::Array(extra));
    }
    let room_id = create_event(s, creator, &version, v12, Value::Object(create_content), now_ms()).await?;

    // 2. the creator joins
    send(s, &room_id, creator, membership::member_event(s, creator, MembershipState::Join, None, false)?, None).await?;

    // 3. power levels (v12 creators have unlimited power and are not listed)
    let mut users = Map::new();
    if !v12 {
        users.insert(creator.to_string(), json!(100));
        if trusted {
            for u in &req.invite {
                users.insert(u.to_string(), json!(100));
            }
        }
    }
    let mut power = json!({
        "users": users,
        "users_default": 0,
        "events": {
            "m.room.name": 50, "m.room.power_levels": 100, "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50, "m.room.avatar": 50, "m.room.tombstone": 100,
            "m.room.server_acl": 100, "m.room.encryption": 100
        },
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": if preset == "public_chat" { 50 } else { 0 },
        "notifications": { "room": 50 },
    });
    match &req.power_level_content_override {
        Some(Value::Object(o)) => {
            for (k, v) in o {
                power[k] = v.clone();
            }
        }
        Some(_) => return Err(Error::bad_json("power_level_content_override must be an object")),
        None => {}
    }
    send(s, &room_id, creator, NewEvent::state(StateEventType::RoomPowerLevels, "", power), None).await?;

    // 4. alias, 5. preset rules (unless initial_state sets them), 6. initial_state, 7. name, topic
    if let Some(alias) = &alias {
        super::alias::add(s, alias, &room_id, creator)?;
        send(
            s,
            &room_id,
            creator,
            NewEvent::state(StateEventType::RoomCanonicalAlias, "", json!({ "alias": alias })),
            None,
        )
        .await?;
    }
    let overridden = |kind: &StateEventType| {
        req.initial_state.iter().any(|e| e.kind == kind.clone().into() && e.state_key.as_deref() == Some(""))
    };
    let (join_rule, guest_access) =
        if preset == "public_chat" { ("public", "forbidden") } else { ("invite", "can_join") };
    for (kind, content) in [
        (StateEventType::RoomJoinRules, json!({ "join_rule": join_rule })),
        (StateEventType::RoomHistoryVisibility, json!({ "history_visibility": "shared" })),
        (StateEventType::RoomGuestAccess, json!({ "guest_access": guest_access })),
    ] {
        if !overridden(&kind) {
            send(s, &room_id, creator, NewEvent::state(kind, "", content), None).await?;
        }
    }
    for event in req.initial_state {
        if matches!(event.kind, TimelineEventType::RoomCreate | TimelineEventType::RoomMember) {
            return Err(Error::bad_json(format!("{} cannot be set in initial_state", event.kind)));
        }
        send(s, &room_id, creator, event, None).await?;
    }
    if let Some(name) = req.name {
        send(s, &room_id, creator, NewEvent::state(StateEventType::RoomName, "", json!({ "name": name })), None)
            .await?;
    }
    if let Some(topic) = req.topic {
        send(s, &room_id, creator, NewEvent::state(StateEventType::RoomTopic, "", json!({ "topic": topic })), None)
            .await?;
    }

    // 8. invites
    for invitee in req.invite.iter().filter(|u| s.is_local(u)) {
        membership::invite(s, &room_id, creator, invitee, None, req.is_direct).await?;
    }
    if req.public {
        let mut batch = s.db.batch();
        batch.put(PUBLISHED_ROOMS, &room_id, &json!(true))?;
        batch.commit()?;
    }
    tracing::info!(%room_id, %creator, %version, "room created");
    Ok(room_id)
}

#[cfg(test)]
mod tests {
    use ruma::UserId;
    use serde_json::json;

    use super::create_event;
    use crate::config::Config;
    use crate::rooms::{load, room};
    use crate::services::Services;

    /// Two create events by one sender with one content in one millisecond: the second room
    /// gets the next millisecond, and so a room ID of its own.
    #[tokio::test]
    async fn a_create_event_never_takes_an_existing_room_id() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.database.path = dir.path().join("db");
        let s = Services::new(config).map_err(|e| e.to_string()).unwrap();
        let alice = UserId::parse("@alice:localhost").unwrap();
        let content = json!({ "room_version": "12" });
        let v12 = ruma::RoomVersionId::V12;
        let first = create_event(&s, &alice, &v12, true, content.clone(), 1_700_000_000_000).await.unwrap();
        let second = create_event(&s, &alice, &v12, true, content.clone(), 1_700_000_000_000).await.unwrap();
        let third = create_event(&s, &alice, &v12, true, content, 1_700_000_000_000).await.unwrap();
        assert_ne!(first, second);
        assert_ne!(second, third);
        assert_ne!(first, third);
        for (room_id, ts) in [(&first, 1_700_000_000_000u64), (&second, 1_700_000_000_001), (&third, 1_700_000_000_002)]
        {
            let record = room(&s, room_id).unwrap();
            assert_eq!(record.room_version, "12");
            let event_id = ruma::EventId::parse(format!("${}", &room_id.as_str()[1..])).unwrap();
            let create = load(&s, &event_id).unwrap().unwrap();
            assert_eq!(u64::from(create.pdu.origin_server_ts.0), ts);
        }
    }
}
