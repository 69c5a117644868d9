//! `GET /_matrix/federation/v1/version` (spec: Server-Server API, "Server implementation").

use ruma::api::federation::discovery::get_server_version::v1 as version;

use crate::api::ruma::Ruma;
use crate::error::Result;
use crate::services::State;

/// `GET /_matrix/federation/v1/version`
pub async fn version(_s: State, _r: Ruma<version::Request>) -> Result<version::Response> {
    let mut server = version::Server::new();
    server.name = Some("Trellis".to_owned());
    server.version = Some(env!("CARGO_PKG_VERSION").to_owned());
    let mut response = version::Response::new();
    response.server = Some(server);
    Ok(response)
}
