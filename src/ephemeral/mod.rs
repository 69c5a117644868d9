//! Live data that is not room history (spec: Client-Server API "Typing Notifications",
//! "Receipts", "Presence", "Receiving notifications"; "Voice over IP" for TURN credentials).
//!
//! - [`typing`]: who is typing where, in memory only; each change moves the stream, and each
//!   typing user has a timer for their own deadline.
//! - [`receipts`]: `m.read` / `m.read.private` receipts (threaded or not), stored in `receipts`
//!   with a `receipt_changes` index by stream position.
//! - [`presence`] and [`activity`]: stored presence, and the guards `/sync` holds while a user
//!   is connected; the last guard dropping starts the idle timer that takes them offline.
//! - [`unread`]: notification and highlight counts from the user's push rules ([`crate::push`]).
//! - [`voip`]: TURN credentials.
//!
//! The `*_since` functions, [`sync_activity`] and [`unread_counts`] are what `/sync` reads. The
//! functions taking `&Services` are synchronous (memory and storage), called directly.
//!
//! In-memory changes (typing, timers) still take a stream position, and persist its high mark
//! like any batch, so a client's `since` token never runs ahead of the counter after a restart.

pub mod activity;
pub mod presence;
pub mod receipts;
pub mod typing;
pub mod unread;
pub mod voip;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod unread_tests;

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::task::AbortHandle;

use crate::error::Result;
use crate::storage::Storage;
use crate::storage::notifier::Interest;

pub use activity::{PresenceGuard, sync_activity};
pub use presence::presence_since;
pub use receipts::receipts_since;
pub use typing::typing_since;
pub use unread::unread_counts;

/// In-memory live state shared by the server: typing, presence activity, unread-count cache.
pub struct Ephemeral {
    pub(crate) typing: typing::Typing,
    pub(crate) activity: activity::Activity,
    pub(crate) unread: unread::Cache,
    /// Serialises receipt writes, so "receipts only move forward" holds under concurrency.
    pub(crate) receipt_lock: Mutex<()>,
    /// Each user's own read receipts per room, as unread counts read them on every `/sync`.
    pub(crate) own_receipts: receipts::OwnReceipts,
}

impl Ephemeral {
    pub fn new(caches: &crate::cache::Caches) -> Self {
        Ephemeral {
            typing: Default::default(),
            activity: Default::default(),
            unread: unread::Cache::new(caches),
            receipt_lock: Mutex::new(()),
            own_receipts: caches.cache("own_receipts"),
        }
    }
}

/// Lock a mutex, ignoring poisoning (the data is plain maps that stay consistent).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Move the global stream for an in-memory change: allocate a position, persist its high mark,
/// let `apply` record it in memory, then finish it, which wakes the long-polls of `wakes`.
pub(crate) fn bump_stream(db: &Storage, wakes: &[Interest], apply: impl FnOnce(u64)) -> Result<()> {
    let pos = db.stream().allocate().waking(wakes.iter().cloned());
    let mut batch = db.batch();
    batch.stream_position(&pos)?;
    batch.commit()?;
    apply(pos.pos());
    Ok(())
}

/// Run blocking `work` on the blocking pool after `delay`: a timer for one specific deadline.
/// `None` outside a tokio runtime (then nothing is scheduled).
pub(crate) fn after(delay: Duration, work: impl FnOnce() + Send + 'static) -> Option<AbortHandle> {
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    Some(runtime.spawn(timer(delay, work)).abort_handle())
}

async fn timer(delay: Duration, work: impl FnOnce() + Send + 'static) {
    tokio::time::sleep(delay).await;
    if let Err(e) = tokio::task::spawn_blocking(work).await {
        tracing::error!("ephemeral timer: {e}");
    }
}
