//! Tags, read markers, reports, timestamp lookup, room summaries and the user directory.

mod directory;
mod peeking;
mod summary;
mod timestamps;
mod user_data;
mod users;
