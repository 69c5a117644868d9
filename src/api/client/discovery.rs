//! `GET /_matrix/client/versions`, `GET /_matrix/client/v3/capabilities`,
//! `GET /.well-known/matrix/client`, `GET /.well-known/matrix/server`, `.../support`, `.../policy_server`
//! (spec: "API Standards", "Capabilities negotiation", "Server Discovery").

use std::collections::BTreeMap;

use ruma::api::client::discovery::{
    discover_homeserver, discover_policy_server, discover_support, get_capabilities, get_supported_versions,
};
use ruma::api::federation::discovery::discover_homeserver as discover_server;
use serde_json::json;

use crate::api::ruma::{RawJson, Ruma};
use crate::error::{Error, Result};
use crate::services::State;

/// Spec versions whose client-server endpoints we serve (to the extent built so far; see
/// `docs/architecture.md`). Element and the SDKs need v1.1 or newer.
const SUPPORTED_VERSIONS: &[&str] = &[
    "r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10", "v1.11", "v1.12",
    "v1.13", "v1.14", "v1.15", "v1.16",
];

/// Room versions `createRoom` accepts (events of versions 1 and 2 are authorized too, but we do
/// not create rooms in their `$id:server` event format).
const ROOM_VERSIONS: &[&str] = &["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"];

/// `GET /_matrix/client/versions`
pub async fn versions(
    _s: State,
    _r: Ruma<get_supported_versions::Request>,
) -> Result<get_supported_versions::Response> {
    let mut response =
        get_supported_versions::Response::new(SUPPORTED_VERSIONS.iter().map(|v| v.to_string()).collect());
    response.unstable_features = BTreeMap::from([("uk.tcpip.msc4133.stable".to_owned(), true)]);
    Ok(response)
}

/// `GET /_matrix/client/v3/capabilities`
pub async fn capabilities(s: State, _r: Ruma<get_capabilities::v3::Request>) -> Result<RawJson> {
    let available: serde_json::Map<_, _> = ROOM_VERSIONS.iter().map(|v| (v.to_string(), json!("stable"))).collect();
    Ok(RawJson(json!({
        "capabilities": {
            "m.change_password": { "enabled": s.config.login.password },
            "m.room_versions": { "default": s.config.rooms.default_room_version, "available": available },
            "m.set_displayname": { "enabled": true },
            "m.set_avatar_url": { "enabled": true },
            "m.3pid_changes": { "enabled": false },
            "m.get_login_token": { "enabled": s.config.login.token },
            "m.profile_fields": { "enabled": true },
        }
    })))
}

/// `GET /.well-known/matrix/client`
pub async fn well_known_client(s: State, _r: Ruma<discover_homeserver::Request>) -> Result<RawJson> {
    let base_url = match (&s.config.well_known.client, s.client_base_url.get()) {
        (Some(url), _) => url.clone(),
        (None, Some(url)) => url.clone(),
        (None, None) => return Err(Error::not_found("No client base URL is known")),
    };
    Ok(RawJson(json!({ "m.homeserver": { "base_url": base_url } })))
}

/// `GET /.well-known/matrix/support`: the contacts and page of `[well_known]`; 404 when none.
pub async fn well_known_support(s: State, _r: Ruma<discover_support::Request>) -> Result<RawJson> {
    let wk = &s.config.well_known;
    if wk.support_contacts.is_empty() && wk.support_page.is_none() {
        return Err(Error::not_found("No support information is configured"));
    }
    let mut body = json!({ "contacts": wk.support_contacts });
    if let Some(page) = &wk.support_page {
        body["support_page"] = json!(page);
    }
    Ok(RawJson(body))
}

/// `GET /.well-known/matrix/policy_server`: a homeserver is not a policy server (MSC4284), so
/// there is nothing to announce.
pub async fn well_known_policy_server(_s: State, _r: Ruma<discover_policy_server::Request>) -> Result<RawJson> {
    Err(Error::not_found("This server is not a policy server"))
}

/// `GET /.well-known/matrix/server`
pub async fn well_known_server(s: State, _r: Ruma<discover_server::Request>) -> Result<RawJson> {
    let server = match &s.config.well_known.server {
        Some(server) => server.clone(),
        None if s.server_name.port().is_some() => s.server_name.to_string(),
        None => {
            let port = s.federation_port.get().copied().unwrap_or_else(|| s.config.listen.federation.port());
            format!("{}:{port}", s.server_name)
        }
    };
    Ok(RawJson(json!({ "m.server": server })))
}
