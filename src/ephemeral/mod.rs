//! Live data that is not room history: typing notifications, read receipts, presence
//! (spec: "Typing Notifications", "Receipts", "Presence").

/// In-memory live state shared by the server (typing, presence activity).
#[derive(Default)]
pub struct Ephemeral {}
