//! What the ingest pipeline asks of the server that sent an event (spec: Server-Server API,
//! "Retrieving events", "Authorization" `event_auth`, "Backfilling and retrieving missing
//! events"). [`Peer`] is implemented over federation by [`Remote`]; tests serve a map instead.

use std::future::Future;

use ruma::api::federation::authorization::get_event_authorization::v1 as event_auth;
use ruma::api::federation::backfill::get_backfill::v1 as get_backfill;
use ruma::api::federation::event::{
    get_event::v1 as get_event, get_missing_events::v1 as missing_events, get_room_state_ids::v1 as state_ids,
};
use ruma::{CanonicalJsonObject, EventId, OwnedEventId, RoomId, ServerName, UInt};
use serde_json::value::RawValue;

use super::check::canonical;
use crate::error::{Error, Result};
use crate::services::Services;

/// A server the pipeline can ask for events.
pub trait Peer: Sync {
    /// `POST /get_missing_events/{roomId}`: events between `earliest` (excluded) and `latest`.
    fn missing_events(
        &self,
        room_id: &RoomId,
        earliest: Vec<OwnedEventId>,
        latest: Vec<OwnedEventId>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<CanonicalJsonObject>>> + Send;

    /// `GET /state_ids/{roomId}?event_id=`: `(pdu_ids, auth_chain_ids)`, the state before the event.
    fn state_ids(
        &self,
        room_id: &RoomId,
        event_id: &EventId,
    ) -> impl Future<Output = Result<(Vec<OwnedEventId>, Vec<OwnedEventId>)>> + Send;

    /// `GET /event/{eventId}`.
    fn event(&self, event_id: &EventId) -> impl Future<Output = Result<CanonicalJsonObject>> + Send;

    /// `GET /event_auth/{roomId}/{eventId}`: the event's full auth chain.
    fn event_auth(
        &self,
        room_id: &RoomId,
        event_id: &EventId,
    ) -> impl Future<Output = Result<Vec<CanonicalJsonObject>>> + Send;

    /// `GET /backfill/{roomId}?v=&limit=`: the events `v` and their ancestors, at most `limit`.
    fn backfill(
        &self,
        room_id: &RoomId,
        v: Vec<OwnedEventId>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<CanonicalJsonObject>>> + Send {
        let _ = (room_id, v, limit);
        async { Err(Error::not_found("This peer cannot backfill")) }
    }
}

/// Another server, asked over federation.
pub struct Remote<'a> {
    pub s: &'a Services,
    pub server: &'a ServerName,
}

fn parse_all(list: &[Box<RawValue>]) -> Vec<CanonicalJsonObject> {
    list.iter()
        .filter_map(|raw| canonical(raw.get()).inspect_err(|e| tracing::info!(error = %e, "invalid fetched PDU")).ok())
        .collect()
}

impl Peer for Remote<'_> {
    async fn missing_events(
        &self,
        room_id: &RoomId,
        earliest: Vec<OwnedEventId>,
        latest: Vec<OwnedEventId>,
        limit: u32,
    ) -> Result<Vec<CanonicalJsonObject>> {
        let mut req = missing_events::Request::new(room_id.to_owned(), earliest, latest);
        req.limit = UInt::from(limit);
        let resp = self.s.federation.send(self.server, req).await?;
        Ok(parse_all(&resp.events))
    }

    async fn state_ids(&self, room_id: &RoomId, event_id: &EventId) -> Result<(Vec<OwnedEventId>, Vec<OwnedEventId>)> {
        let req = state_ids::Request::new(event_id.to_owned(), room_id.to_owned());
        let resp = self.s.federation.send(self.server, req).await?;
        Ok((resp.pdu_ids, resp.auth_chain_ids))
    }

    async fn event(&self, event_id: &EventId) -> Result<CanonicalJsonObject> {
        let resp = self.s.federation.send(self.server, get_event::Request::new(event_id.to_owned())).await?;
        canonical(resp.pdu.get())
    }

    async fn event_auth(&self, room_id: &RoomId, event_id: &EventId) -> Result<Vec<CanonicalJsonObject>> {
        let req = event_auth::Request::new(room_id.to_owned(), event_id.to_owned());
        let resp = self.s.federation.send(self.server, req).await?;
        Ok(parse_all(&resp.auth_chain))
    }

    async fn backfill(&self, room_id: &RoomId, v: Vec<OwnedEventId>, limit: u32) -> Result<Vec<CanonicalJsonObject>> {
        let req = get_backfill::Request::new(room_id.to_owned(), v, UInt::from(limit));
        let resp = self.s.federation.send(self.server, req).await?;
        Ok(parse_all(&resp.pdus))
    }
}
