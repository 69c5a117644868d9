//! Integration tests: every module boots the real server (see [`server`]) and talks HTTP.

mod account_data;
mod accounts;
mod basics;
mod bodies;
mod dag;
mod devices;
mod ephemeral;
mod errors;
mod federation;
mod fixture;
mod history;
mod jwt;
mod keys;
mod moderation;
mod operator;
mod profile;
mod push_rules;
mod relations;
mod room_info;
mod rooms;
mod server;
mod sync;
mod tidy;
mod tokens;
mod wakeups;
mod websocket;
