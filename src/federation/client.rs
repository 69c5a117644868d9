//! Requests to other servers (spec: Server-Server API, "Request Authentication"): every
//! request is signed with `X-Matrix` by our key, sent to the address server discovery gives,
//! with that step's `Host` header, and only to addresses the IP filter allows.

use axum::http::{self, HeaderValue, Method, header};
use bytes::Bytes;
use ruma::ServerName;
use ruma::api::federation::authentication::{XMatrix, XMatrixSigningInput};
use ruma::api::path_builder::SinglePath;
use ruma::api::{IncomingResponseExt, OutgoingBody, OutgoingRequest};

use super::Federation;
use super::discovery::Destination;
use crate::error::{Error, ErrorKind, RemoteError, Result};

/// Largest response body read from another server.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// The error for a destination that could not be reached or answered nonsense.
fn unreachable(destination: &ServerName, what: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Unknown, format!("Federation request to {destination} failed: {what}"))
        .with_status(http::StatusCode::BAD_GATEWAY)
}

/// The error for a destination that answered with an error status: the status and Matrix
/// error kept ([`Error::Remote`]; unrelayed, 403 and 404 keep their meaning, anything else is a
/// 502).
fn remote_error(destination: &ServerName, status: http::StatusCode, body: &[u8]) -> Error {
    let body = match serde_json::from_slice(body) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    Error::Remote(Box::new(RemoteError { destination: destination.to_string(), status, body, relayed: false }))
}

impl Federation {
    /// Send a ruma federation request to `destination` and parse its response.
    pub async fn send<T>(&self, destination: &ServerName, request: T) -> Result<T::IncomingResponse>
    where
        T: OutgoingRequest<PathBuilder = SinglePath>,
    {
        let target = self.discovery.resolve(destination).await?;
        let http_request = request
            .try_into_http_request_inner(&target.base_url(), ())
            .map_err(|e| Error::internal(format!("building a request to {destination}: {e}")))?;
        let (mut parts, body) = http_request.into_parts();
        if let Some(content_type) = body.content_type() {
            parts.headers.entry(header::CONTENT_TYPE).or_insert(content_type);
        }
        let bytes: Vec<u8> = body
            .try_into_buf()
            .map_err(|e| Error::internal(format!("serialising a request to {destination}: {}", e.into())))?;
        let response = self.execute(destination, &target, http::Request::from_parts(parts, bytes)).await?;
        let (parts, body) = response.into_parts();
        T::IncomingResponse::try_from_http_response(http::Response::from_parts(parts, body.as_ref()))
            .map_err(|e| unreachable(destination, format!("unexpected response: {e}")))
    }

    /// Send a request ruma has no type for: `path_and_query` as it goes on the wire (already
    /// percent-encoded), an optional JSON body; returns the JSON response.
    pub async fn send_raw(
        &self,
        destination: &ServerName,
        method: Method,
        path_and_query: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value> {
        let target = self.discovery.resolve(destination).await?;
        let mut builder = http::Request::builder().method(method).uri(format!("{}{path_and_query}", target.base_url()));
        let bytes = match body {
            Some(b) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                serde_json::to_vec(b).map_err(Error::internal)?
            }
            None => Vec::new(),
        };
        let request = builder.body(bytes).map_err(|e| Error::invalid_param(format!("invalid request: {e}")))?;
        let response = self.execute(destination, &target, request).await?;
        serde_json::from_slice(response.body()).map_err(|e| unreachable(destination, format!("response not JSON: {e}")))
    }

    /// Sign, check the IP filter, send, and read the response; error statuses become errors.
    async fn execute(
        &self,
        destination: &ServerName,
        target: &Destination,
        mut request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Bytes>> {
        if !self.config.enabled {
            return Err(Error::forbidden("Federation is disabled (federation.enabled = false)"));
        }
        if let Some(ip) = target.ip_literal() {
            self.filter.check(destination.as_str(), ip)?;
        }
        let input =
            XMatrixSigningInput::new(self.server_name.clone(), destination.to_owned(), &self.signing_key.key_pair);
        let auth = XMatrix::sign_http_request(&request, input)
            .map_err(|e| Error::internal(format!("signing a request to {destination}: {e}")))?;
        request.headers_mut().insert(header::AUTHORIZATION, HeaderValue::from(&auth));
        let host = HeaderValue::from_str(&target.host_header).map_err(Error::internal)?;
        request.headers_mut().insert(header::HOST, host);

        let (method, uri) = (request.method().clone(), request.uri().path().to_owned());
        let request = reqwest::Request::try_from(request).map_err(Error::internal)?;
        let response = match self.client.execute(request).await {
            Ok(r) => r,
            Err(e) => {
                self.discovery.forget(destination);
                // A refused connection's cause (e.g. the IP filter) is in the source chain.
                let mut cause = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    cause = format!("{cause}: {s}");
                    source = s.source();
                }
                tracing::info!(%destination, %method, path = %uri, error = %cause, "federation request failed");
                return Err(unreachable(destination, cause));
            }
        };
        let status = response.status();
        let mut response = response;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| unreachable(destination, e))? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_RESPONSE_BYTES {
                return Err(unreachable(destination, "response too large"));
            }
        }
        tracing::debug!(%destination, %method, path = %uri, %status, "federation request");
        if status.as_u16() >= 400 {
            return Err(remote_error(destination, status, &body));
        }
        http::Response::builder().status(status).body(Bytes::from(body)).map_err(Error::internal)
    }
}
