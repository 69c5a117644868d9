//! Integration tests: every module boots the real server (see [`server`]) and talks HTTP.

mod account_data;
mod accounts;
mod basics;
mod devices;
mod jwt;
mod operator;
mod profile;
mod rooms;
mod server;
mod tokens;
