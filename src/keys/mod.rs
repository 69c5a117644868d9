//! End-to-end encryption support on the server side: device keys, one-time and fallback keys,
//! device-list changes, and send-to-device messages (spec: Client-Server API "End-to-End
//! Encryption", "Send-to-Device messaging").
//!
//! The server never sees plaintext: it stores what devices publish, hands out one-time keys
//! once each, tells clients whose device lists changed, and queues to-device messages until the
//! receiving device's `/sync` acknowledges them. Functions are synchronous and take `&Services`
//! (or `&Storage` for the hooks `users/` calls); handlers call them directly.
//!
//! What `/sync` reads: [`to_device_since`] / [`ack_to_device`], [`device_list_changes`],
//! [`one_time_key_counts`], [`unused_fallback_key_types`].

pub mod changes;
pub mod device_keys;
pub mod one_time_keys;
pub mod remote;
pub mod to_device;

#[cfg(test)]
mod tests;

pub use changes::device_list_changes;
pub use one_time_keys::{one_time_key_counts, unused_fallback_key_types};
pub use to_device::{ack_to_device, to_device_page, to_device_since};

/// Serialises the read-modify-write of key tables (duplicate checks on upload, "each one-time
/// key is returned at most once" on claim).
pub(crate) static KEYS_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
