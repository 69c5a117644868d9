//! Reading a request body: at most `limit` bytes, all of it within the read timeout.
//!
//! A `Content-Length` above the limit is refused before a byte is read (413 `M_TOO_LARGE`), so a
//! client that announces a huge upload learns it at once. A body that trickles in is cut off at
//! the deadline (408), so slow clients cannot hold connections and memory indefinitely. A body
//! the HTTP layer cannot decode (a malformed chunked encoding, a connection closed mid-body) is
//! 400 `M_NOT_JSON`: every body these endpoints take is JSON, and this one is not.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use crate::error::{Error, ErrorKind, Result};

/// The `Content-Length` a request announces, checked against `limit` before reading.
pub fn check_length(headers: &HeaderMap, limit: usize) -> Result<()> {
    let announced = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).map(str::parse::<u64>);
    match announced {
        Some(Ok(n)) if n > limit as u64 => Err(too_large(limit)),
        Some(Err(_)) => Err(Error::new(ErrorKind::NotJson, "Invalid Content-Length")),
        _ => Ok(()),
    }
}

/// The whole body, or the error saying why not (see the module documentation).
pub async fn read(headers: &HeaderMap, body: Body, limit: usize, timeout: Duration) -> Result<Bytes> {
    check_length(headers, limit)?;
    let collect = async {
        let mut stream = body.into_data_stream();
        let mut out = BytesMut::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Error::new(ErrorKind::NotJson, format!("Unreadable request body: {e}")))?;
            if out.len() + chunk.len() > limit {
                return Err(too_large(limit));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out.freeze())
    };
    match tokio::time::timeout(timeout, collect).await {
        Ok(result) => result,
        Err(_) => Err(Error::new(ErrorKind::Unknown, format!("Request body not received within {timeout:?}"))
            .with_status(StatusCode::REQUEST_TIMEOUT)),
    }
}

fn too_large(limit: usize) -> Error {
    Error::new(ErrorKind::TooLarge, format!("Request body exceeds {limit} bytes"))
}
