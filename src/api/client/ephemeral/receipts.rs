//! `POST /rooms/{roomId}/receipt/{receiptType}/{eventId}` (spec: "Receipts").

use ruma::api::client::receipt::create_receipt::v3::{Request, Response};
use ruma::events::receipt::ReceiptThread;

use crate::api::ruma::Ruma;
use crate::ephemeral::receipts::{self, Thread};
use crate::error::{Error, Result};
use crate::services::State;

/// `POST /_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}`: `m.read`,
/// `m.read.private` (optionally threaded) or `m.fully_read`; see [`receipts::post`].
pub async fn post(s: State, r: Ruma<Request>) -> Result<Response> {
    let user = r.auth()?.user_id.clone();
    let b = r.body;
    let thread = match b.thread {
        ReceiptThread::Unthreaded => Thread::Unthreaded,
        ReceiptThread::Main => Thread::Main,
        ReceiptThread::Thread(root) => Thread::Root(root),
        _ => return Err(Error::invalid_param("thread_id must be \"main\" or a thread root's event ID")),
    };
    receipts::post(&s, &b.room_id, &user, b.receipt_type, &b.event_id, thread)?;
    Ok(Response::new())
}
