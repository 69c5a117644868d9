//! Receiving events (spec: Server-Server API): `PUT /_matrix/federation/v1/send/{txnId}`
//! ("Transactions") and the membership endpoints that hand us a finished event
//! (`send_join` v2, `send_leave` v2, `send_knock` v1). The work is in `federation::txn` and
//! `federation::membership`.

use ruma::api::federation::membership::{
    create_join_event::v2 as send_join, create_knock_event::v1 as send_knock, create_leave_event::v2 as send_leave,
};
use ruma::api::federation::transactions::send_transaction_message::v1 as send_txn;

use crate::api::ruma::{RawJson, Ruma};
use crate::error::Result;
use crate::federation::{membership, txn};
use crate::services::State;

/// `PUT /_matrix/federation/v1/send/{txnId}`
pub async fn send_transaction(s: State, r: Ruma<send_txn::Request>) -> Result<RawJson> {
    let origin = r.origin()?.to_owned();
    let b = r.body;
    let edus = b.edus.iter().filter_map(|e| serde_json::from_str(e.json().get()).ok()).collect();
    Ok(RawJson(txn::receive(&s, &origin, &b.transaction_id, b.pdus, edus).await?))
}

/// `PUT /_matrix/federation/v2/send_join/{roomId}/{eventId}`
pub async fn join(s: State, r: Ruma<send_join::Request>) -> Result<RawJson> {
    let origin = r.origin()?.to_owned();
    let b = r.body;
    Ok(RawJson(membership::send_join(&s, &origin, &b.room_id, &b.event_id, &b.pdu, b.omit_members).await?))
}

/// `PUT /_matrix/federation/v2/send_leave/{roomId}/{eventId}`
pub async fn leave(s: State, r: Ruma<send_leave::Request>) -> Result<RawJson> {
    let origin = r.origin()?.to_owned();
    let b = r.body;
    Ok(RawJson(membership::send_leave(&s, &origin, &b.room_id, &b.event_id, &b.pdu).await?))
}

/// `PUT /_matrix/federation/v1/send_knock/{roomId}/{eventId}`
pub async fn knock(s: State, r: Ruma<send_knock::Request>) -> Result<RawJson> {
    let origin = r.origin()?.to_owned();
    let b = r.body;
    Ok(RawJson(membership::send_knock(&s, &origin, &b.room_id, &b.event_id, &b.pdu).await?))
}
