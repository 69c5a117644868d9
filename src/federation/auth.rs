//! Incoming request authentication (spec: Server-Server API, "Request Authentication"): the
//! `X-Matrix` `Authorization` header names the origin and its key and signs the method, the
//! request URI as sent, origin, destination and JSON body. Missing or bad → 401
//! `M_UNAUTHORIZED`.

use axum::http::{self, request::Parts};
use ruma::OwnedServerName;
use ruma::api::federation::authentication::{XMatrix, XMatrixVerificationError};
use ruma::signatures::PublicKeyMap;

use super::Federation;
use crate::error::{Error, ErrorKind, Result};
use crate::users::now_ms;

fn unauthorized(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Unauthorized, message)
}

impl Federation {
    /// Verify the `X-Matrix` signature of a request (`body`: the bytes as received); returns the
    /// authenticated origin.
    pub async fn authenticate(&self, parts: &Parts, body: &[u8]) -> Result<OwnedServerName> {
        let x = XMatrix::extract_from_http_headers(&parts.headers)
            .map_err(|e| unauthorized(format!("Missing or invalid X-Matrix Authorization header: {e}")))?;
        if x.destination.as_deref().is_some_and(|d| d != self.server_name) {
            return Err(unauthorized(format!("Request is for another server, not {}", self.server_name)));
        }
        if !x.key.as_str().starts_with("ed25519:") {
            return Err(unauthorized(format!("Unsupported key algorithm in {}", x.key)));
        }
        let key = self
            .verify_key(&x.origin, x.key.as_str(), now_ms())
            .await
            .map_err(|e| unauthorized(format!("Cannot fetch the keys of {}: {e}", x.origin)))?
            .ok_or_else(|| unauthorized(format!("Unknown key {} of {}", x.key, x.origin)))?;
        let keys: PublicKeyMap = [(x.origin.to_string(), [(x.key.to_string(), key)].into())].into();
        let request = signed_request(parts, body)?;
        match x.verify_http_request(&request, &self.server_name, &keys) {
            Ok(()) => Ok(x.origin),
            Err(XMatrixVerificationError::DestinationMismatch) => Err(unauthorized("Destination mismatch")),
            Err(e) => Err(unauthorized(format!("Invalid X-Matrix signature from {}: {e}", x.origin))),
        }
    }
}

/// The parts of the request the signature covers: method, path and query as sent, body.
fn signed_request<'a>(parts: &Parts, body: &'a [u8]) -> Result<http::Request<&'a [u8]>> {
    let uri = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    http::Request::builder()
        .method(parts.method.clone())
        .uri(uri)
        .body(body)
        .map_err(|e| unauthorized(format!("Invalid request URI: {e}")))
}
