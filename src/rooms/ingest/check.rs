//! The first checks on a received PDU (spec: Server-Server API, "Checks performed on receipt of
//! a PDU", steps 1–3): a valid event for the room version, the required signatures, and the
//! content hash (an event whose hash does not match is kept in its redacted form).

use std::collections::BTreeMap;

use ruma::canonical_json::redact;
use ruma::room_version_rules::RoomVersionRules;
use ruma::signatures::{
    PublicKeyMap, Verified, reference_hash, required_server_signatures_to_verify_event, verify_event,
};
use ruma::state_res::check_pdu_format;
use ruma::{CanonicalJsonObject, CanonicalJsonValue, EventId, OwnedEventId, OwnedServerName, RoomId};

use crate::error::{Error, ErrorKind, Result};
use crate::rooms::pdu::{MAX_PDU_BYTES, Pdu};
use crate::services::Services;

/// Events verified on the async task itself; larger batches go to the blocking pool.
const INLINE_VERIFY: usize = 4;

/// A PDU that passed the format check (and, once [`verify`]d, signatures and hashes).
#[derive(Debug, Clone)]
pub struct Checked {
    pub event_id: OwnedEventId,
    /// The JSON to store: as received, or redacted when its content hash did not match.
    pub obj: CanonicalJsonObject,
    pub pdu: Pdu,
    /// The content hash did not match, so `obj` is the redacted form.
    pub redacted: bool,
}

/// Parse a PDU's JSON (any JSON value) into a canonical object; floats and out-of-range
/// integers are refused.
pub fn canonical(raw: &str) -> Result<CanonicalJsonObject> {
    serde_json::from_str(raw).map_err(|e| Error::bad_json(format!("PDU is not canonical JSON: {e}")))
}

/// The event ID of a PDU: its `event_id` field in room versions 1 and 2, else the reference hash.
pub fn event_id(obj: &CanonicalJsonObject, rules: &RoomVersionRules) -> Result<OwnedEventId> {
    if rules.event_format.require_event_id {
        return match obj.get("event_id") {
            Some(CanonicalJsonValue::String(id)) => EventId::parse(id).map_err(|e| Error::bad_json(e.to_string())),
            _ => Err(Error::bad_json("PDU has no event_id")),
        };
    }
    let hash = reference_hash(obj, rules).map_err(|e| Error::bad_json(format!("Cannot hash PDU: {e}")))?;
    EventId::parse(format!("${hash}")).map_err(|e| Error::bad_json(e.to_string()))
}

/// Step 1: the size limit (65536 bytes of canonical JSON), the fields and their sizes for the
/// room version (ruma's `check_pdu_format`), the room, and the event ID.
pub fn format(mut obj: CanonicalJsonObject, rules: &RoomVersionRules, room_id: &RoomId) -> Result<Checked> {
    // The sender's `unsigned` data (ages, previous content) is not ours to store or pass on.
    obj.remove("unsigned");
    let size = serde_json::to_vec(&obj).map_err(Error::internal)?.len();
    if size > MAX_PDU_BYTES {
        return Err(Error::new(ErrorKind::TooLarge, format!("PDU is {size} bytes, more than {MAX_PDU_BYTES}")));
    }
    check_pdu_format(&obj, &rules.event_format).map_err(|e| Error::bad_json(format!("Invalid PDU: {e}")))?;
    let event_id = event_id(&obj, rules)?;
    let value = serde_json::to_value(&obj).map_err(Error::internal)?;
    let pdu = Pdu::from_json(event_id.clone(), &value, rules)?;
    if pdu.room()? != room_id {
        return Err(Error::bad_json(format!("PDU {event_id} belongs to {}, not {room_id}", pdu.room()?)));
    }
    Ok(Checked { event_id, obj, pdu, redacted: false })
}

/// The servers whose keys the signatures of `events` need, each with the timestamp the keys must
/// be valid at (room versions 5+: the event's `origin_server_ts`; the earliest of the events).
fn wanted_keys(events: &[Checked], rules: &RoomVersionRules) -> BTreeMap<OwnedServerName, u64> {
    let mut wanted: BTreeMap<OwnedServerName, u64> = BTreeMap::new();
    for ev in events {
        let ts = if rules.enforce_key_validity { u64::from(ev.pdu.origin_server_ts.get()) } else { 0 };
        for server in required_server_signatures_to_verify_event(&ev.obj, &rules.signatures).unwrap_or_default() {
            let min = wanted.entry(server).or_insert(ts);
            *min = (*min).min(ts);
        }
    }
    wanted
}

/// Keys for `wanted`; a server whose keys cannot be had is left out (its events then fail).
async fn key_map(s: &Services, wanted: &BTreeMap<OwnedServerName, u64>) -> PublicKeyMap {
    let mut map = PublicKeyMap::new();
    for (server, min) in wanted {
        match s.federation.verify_keys(server, *min).await {
            Ok(keys) if !keys.is_empty() => {
                map.insert(server.to_string(), keys);
            }
            Ok(_) => tracing::debug!(%server, "no usable keys for event signatures"),
            Err(e) => tracing::info!(%server, error = %e, "cannot fetch keys for event signatures"),
        }
    }
    map
}

/// Steps 2 and 3 for one event: signatures of every server that must sign it, then the content
/// hash (mismatch: the event continues redacted).
pub fn verify_with(keys: &PublicKeyMap, mut ev: Checked, rules: &RoomVersionRules) -> Result<Checked> {
    match verify_event(keys, &ev.obj, rules) {
        Ok(Verified::All) => Ok(ev),
        Ok(Verified::Signatures) => {
            tracing::info!(event_id = %ev.event_id, "content hash mismatch: keeping the redacted event");
            ev.obj = redact(ev.obj, &rules.redaction, None).map_err(|e| Error::bad_json(format!("redacting: {e}")))?;
            let value = serde_json::to_value(&ev.obj).map_err(Error::internal)?;
            ev.pdu = Pdu::from_json(ev.event_id.clone(), &value, rules)?;
            ev.redacted = true;
            Ok(ev)
        }
        Err(e) => Err(Error::forbidden(format!("Signature check failed for {}: {e}", ev.event_id))),
    }
}

/// Steps 2 and 3 for several events of one room: keys fetched once, verified in place for a
/// few events and on the blocking pool for more.
pub async fn verify(s: &Services, events: Vec<Checked>, rules: &RoomVersionRules) -> Vec<Result<Checked>> {
    let keys = key_map(s, &wanted_keys(&events, rules)).await;
    if events.len() <= INLINE_VERIFY {
        return events.into_iter().map(|ev| verify_with(&keys, ev, rules)).collect();
    }
    let rules_owned = rules.clone();
    let n = events.len();
    let joined = tokio::task::spawn_blocking(move || {
        events.into_iter().map(|ev| verify_with(&keys, ev, &rules_owned)).collect::<Vec<_>>()
    })
    .await;
    joined.unwrap_or_else(|e| (0..n).map(|_| Err(Error::internal(format!("verification task: {e}")))).collect())
}
