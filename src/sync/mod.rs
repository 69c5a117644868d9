//! `/sync` (spec: "Syncing"): everything a user may see that changed between two stream
//! positions, and long-polling on the stream counter.
