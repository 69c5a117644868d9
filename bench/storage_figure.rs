//! The storage figure of `docs/storage.md`: bytes on disk for 10,000 messages in a 1,000-member
//! room, per table, after a flush and full compaction.
//!
//! Run: `cargo run --release --example storage_figure -- [members] [messages]`
//! (defaults 1000 and 10000; the database goes to a temporary directory).

use std::time::Instant;

use serde_json::json;
use trellis::config::Config;
use trellis::rooms::append::send;
use trellis::rooms::build::NewEvent;
use trellis::rooms::create::{CreateRoom, create};
use trellis::rooms::membership;
use trellis::services::Services;
use trellis::storage::catalog::STATE_GROUPS;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let members: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let messages: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut config = Config::default();
    config.database.path = dir.path().join("db");
    let s = Services::new(config).map_err(|e| e.to_string())?;
    let e = |e: trellis::error::Error| e.to_string();
    let user = |i: usize| ruma::UserId::parse(format!("@user{i}:localhost")).map_err(|e| e.to_string());

    let started = Instant::now();
    let creator = user(0)?;
    let req = CreateRoom { preset: Some("public_chat".into()), name: Some("Big room".into()), ..Default::default() };
    let room = create(&s, &creator, req).await.map_err(e)?;
    for i in 1..members {
        membership::join(&s, &room, &user(i)?, None).await.map_err(e)?;
    }
    let joined = started.elapsed();
    for i in 0..messages {
        let sender = user(i % members)?;
        let content = json!({ "msgtype": "m.text", "body": format!("message number {i} in the big room") });
        send(&s, &room, &sender, NewEvent::message("m.room.message", content), None).await.map_err(e)?;
    }
    let sent = started.elapsed() - joined;
    s.db.flush_and_compact().map_err(e)?;

    let mut sizes = s.db.table_sizes();
    sizes.sort_by_key(|&(_, bytes)| std::cmp::Reverse(bytes));
    let total: u64 = sizes.iter().map(|(_, b)| b).sum();
    let groups = s.db.scan_all(STATE_GROUPS).map_err(e)?;
    let group_entries: usize = groups.iter().map(|(_, g)| g.added.len() + g.removed.len()).sum();
    println!("room: {members} members, {messages} messages ({} events incl. state)", members + messages + 7);
    println!("appends: {members} joins in {joined:.1?}, {messages} messages in {sent:.1?}");
    println!("state groups: {} groups holding {group_entries} entries in all", groups.len());
    println!("| table | bytes on disk |\n| --- | ---: |");
    for (table, bytes) in sizes.iter().filter(|(_, b)| *b > 0) {
        println!("| {table} | {bytes} |");
    }
    println!("| **total** | **{total}** |");
    Ok(())
}
