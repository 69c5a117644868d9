//! Knocking on a room of another server (spec: Server-Server API "Knocking upon a room";
//! Client-Server API `POST /knock/{roomIdOrAlias}`): when no local user is in the room, ask a
//! resident server for a `make_knock` template, complete and sign it, hand it back with
//! `send_knock`, and keep it with the `knock_room_state` answered in `remote_invites` (a knock
//! record) so `/sync` lists the room under `knock`. An invite that follows (the room accepted
//! the knock) arrives through `/invite` and replaces it. See `docs/federation.md`, "Knocking".

use ruma::api::federation::membership::{create_knock_event::v1 as send_knock, prepare_knock_event::v1 as make_knock};
use ruma::events::room::member::MembershipState;
use ruma::{OwnedRoomId, OwnedServerName, RoomId, RoomOrAliasId, RoomVersionId, ServerName, UserId};
use serde_json::Value;

use super::invite::stripped;
use super::join::{Route, complete, raw, relay, route};
use crate::error::{Error, Result};
use crate::rooms::{membership, remote_invites, rules_for};
use crate::services::State;

/// Room versions with knocking (the `ver` of `make_knock`).
pub const KNOCKABLE_VERSIONS: [RoomVersionId; 6] = {
    use RoomVersionId::*;
    [V7, V8, V9, V10, V11, V12]
};

/// `POST /knock/{roomIdOrAlias}?via=`: a local knock when a local user is in the room (or no
/// other server can be asked), else a knock through the first of `via`, the alias's servers and
/// the room ID's server that takes it; every refusal → the first 4xx relayed (`join::relay`).
pub async fn knock(
    s: &State,
    user: &UserId,
    target: &RoomOrAliasId,
    via: Vec<OwnedServerName>,
    reason: Option<String>,
) -> Result<OwnedRoomId> {
    let (room_id, servers) = match route(s, user, target, via).await? {
        Route::Local(room_id) => {
            membership::knock(s, &room_id, user, reason.as_deref()).await?;
            return Ok(room_id);
        }
        Route::Remote(room_id, servers) => (room_id, servers),
    };
    let mut errors = Vec::new();
    for server in &servers {
        match knock_via(s, server, user, &room_id, reason.as_deref()).await {
            Ok(()) => return Ok(room_id),
            Err(e) => {
                tracing::info!(%server, %room_id, error = %e, "remote knock failed");
                errors.push(e);
            }
        }
    }
    Err(relay(errors, "take a knock on"))
}

/// `make_knock` on `server`, our signed knock, `send_knock`, then the knock stored.
async fn knock_via(
    s: &State,
    server: &ServerName,
    user: &UserId,
    room_id: &RoomId,
    reason: Option<&str>,
) -> Result<()> {
    let mut req = make_knock::Request::new(room_id.to_owned(), user.to_owned());
    req.ver = KNOCKABLE_VERSIONS.to_vec();
    let template = s.federation.send(server, req).await?;
    let version = template.room_version;
    if !KNOCKABLE_VERSIONS.contains(&version) {
        return Err(Error::incompatible_room_version(&version));
    }
    let rules = rules_for(&version)?;
    let (pdu, obj) = complete(s, &rules, &template.event, room_id, user, MembershipState::Knock, reason).await?;
    let req = send_knock::Request::new(room_id.to_owned(), pdu.event_id.clone(), raw(&obj)?);
    let answer = s.federation.send(server, req).await?;
    let state: Vec<Value> = answer.knock_room_state.iter().filter_map(stripped).collect();
    let event = serde_json::to_value(&obj).map_err(Error::internal)?;
    tracing::info!(%server, %room_id, state = state.len(), "knocked through another server");
    remote_invites::store_knock(s, user, room_id, &pdu.event_id, &version, event, state)
}
