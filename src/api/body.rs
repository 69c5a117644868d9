//! Reading a request body: at most `limit` bytes, all of it within the read timeout.
//!
//! A `Content-Length` above the limit is refused before a byte is read (413 `M_TOO_LARGE`), so a
//! client that announces a huge upload learns it at once. A body that trickles in is cut off at
//! the deadline (408), so slow clients cannot hold connections and memory indefinitely. A body
//! the HTTP layer cannot decode (a malformed chunked encoding, a connection closed mid-body) is
//! 400 `M_NOT_JSON`: every body these endpoints take is JSON, and this one is not.

use std::time::Duration;

use axum::body::{Body, BodyDataStream};
use axum::http::{HeaderMap, StatusCode, header};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use crate::error::{Error, ErrorKind, Result};

/// The `Content-Length` a request announces, checked against `limit` before reading. A body
/// refused here is drained in the background (see `drain`); otherwise it is handed back.
pub fn check_length(headers: &HeaderMap, body: Body, limit: usize, timeout: Duration) -> Result<Body> {
    let announced = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).map(str::parse::<u64>);
    match announced {
        Some(Ok(n)) if n > limit as u64 => {
            drain(body.into_data_stream(), limit, timeout);
            Err(too_large(limit))
        }
        Some(Err(_)) => Err(Error::new(ErrorKind::NotJson, "Invalid Content-Length")),
        _ => Ok(body),
    }
}

/// The whole body, or the error saying why not (see the module documentation).
pub async fn read(headers: &HeaderMap, body: Body, limit: usize, timeout: Duration) -> Result<Bytes> {
    let body = check_length(headers, body, limit, timeout)?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut stream = body.into_data_stream();
    let collect = async {
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
    match tokio::time::timeout_at(deadline, collect).await {
        Ok(Err(e)) if e.kind() == ErrorKind::TooLarge => {
            drain(stream, limit, deadline - tokio::time::Instant::now());
            Err(e)
        }
        Ok(result) => result,
        Err(_) => Err(Error::new(ErrorKind::Unknown, format!("Request body not received within {timeout:?}"))
            .with_status(StatusCode::REQUEST_TIMEOUT)),
    }
}

/// Read and discard what the client still sends of a refused body (at most 16 times the limit,
/// within the read timeout), so that a client still writing it is not cut off mid-write and
/// reads the 413 instead of a broken pipe.
fn drain(mut stream: BodyDataStream, limit: usize, timeout: Duration) {
    tokio::spawn(async move {
        let mut left = limit.saturating_mul(16);
        let discard = async {
            while let Some(Ok(chunk)) = stream.next().await {
                left = left.saturating_sub(chunk.len());
                if left == 0 {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(timeout, discard).await;
    });
}

fn too_large(limit: usize) -> Error {
    Error::new(ErrorKind::TooLarge, format!("Request body exceeds {limit} bytes"))
}
