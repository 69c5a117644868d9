//! End-to-end encryption support on the server side: device keys, one-time and fallback keys,
//! device-list changes, and send-to-device messages (spec: "End-to-End Encryption",
//! "Send-to-Device messaging").
