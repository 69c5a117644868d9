//! Reports of users (spec: "Reporting content", `POST /users/{userId}/report`), kept in
//! `user_reports` for the server's operators.

use ruma::UserId;

use super::{accounts, now_ms};
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::storage::catalog::USER_REPORTS;
use crate::storage::records::UserReportRecord;

/// Longest reason kept, in bytes (longer ones are cut at a character boundary).
const MAX_REASON_BYTES: usize = 4096;

/// Record a report of `target` by `reporter`. A local user that does not exist is
/// `M_NOT_FOUND` (as Synapse); a remote user is recorded as given (we cannot tell).
pub fn report(db: &Storage, is_local: bool, target: &UserId, reporter: &UserId, reason: &str) -> Result<()> {
    if is_local && accounts::get(db, target)?.is_none() {
        return Err(Error::not_found("The user was not found"));
    }
    let mut end = reason.len().min(MAX_REASON_BYTES);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let pos = db.stream().allocate();
    let record = UserReportRecord { reporter: reporter.to_owned(), reason: reason[..end].to_owned(), ts: now_ms() };
    let mut batch = db.batch();
    batch.put(USER_REPORTS, &(target, pos.pos()), &record)?;
    batch.stream_position(&pos)?;
    batch.commit()
}

/// The reports of a user, oldest first.
pub fn list(db: &Storage, target: &UserId) -> Result<Vec<UserReportRecord>> {
    Ok(db.scan_prefix(USER_REPORTS, target)?.into_iter().map(|(_, r)| r).collect())
}
