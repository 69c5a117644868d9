//! Synapse-compatible admin endpoints that ops tools and Complement rely on.

pub mod register;
