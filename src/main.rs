//! The `trellis` command: serve, write an example config, or administer local accounts.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use trellis::config::Config;
use trellis::services::Services;
use trellis::users::{accounts, password};

#[derive(Parser)]
#[command(name = "trellis", version, about = "Trellis, a Matrix homeserver")]
struct Cli {
    /// TOML configuration file (every key also settable as TRELLIS_<SECTION>__<KEY>).
    #[arg(long, short, global = true, env = "TRELLIS_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Print the documented example configuration (or write it to --output).
    GenerateConfig {
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Manage local accounts directly in the database (stop the server first).
    #[command(subcommand)]
    User(UserCommand),
    /// Retire the server's signing key and generate a new one (stop the server first); the old
    /// key stays published in `old_verify_keys`.
    RotateKey,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account.
    Create {
        /// Localpart (`alice`) or full user ID (`@alice:example.org`).
        user: String,
        #[arg(long)]
        password: Option<String>,
        #[arg(long)]
        admin: bool,
        /// Bind this email address (for `m.id.thirdparty` login).
        #[arg(long)]
        email: Option<String>,
    },
    /// Set a new password and log out every device.
    ResetPassword { user: String, password: String },
    /// Deactivate an account; --erase also drops its profile and account data.
    Deactivate {
        user: String,
        #[arg(long)]
        erase: bool,
    },
}

/// Keep memory small (docs/benchmarks.md, "Memory"): no transparent huge pages, where the kernel
/// makes every touched 2 MiB region of the heap resident and zeroes it whole; and two glibc
/// malloc arenas (RocksDB's C++ allocations) instead of one per thread.
#[allow(unsafe_code)]
fn limit_memory() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain process-wide settings, made before any other thread exists; failures are
    // harmless (the defaults stay).
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn main() -> ExitCode {
    limit_memory();
    let cli = Cli::parse();
    if let Some(Command::GenerateConfig { output }) = &cli.command {
        return match output {
            Some(path) => match std::fs::write(path, Config::example_toml()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&format!("cannot write {}: {e}", path.display())),
            },
            None => {
                print!("{}", Config::example_toml());
                ExitCode::SUCCESS
            }
        };
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(&format!("invalid configuration: {e}")),
    };
    trellis::init_logging(&config);
    // Argon2 hashing and timers run on the blocking pool; a bounded pool keeps memory bounded.
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().max_blocking_threads(64).build() {
        Ok(r) => r,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    let result = match cli.command {
        None | Some(Command::Serve) => runtime.block_on(trellis::serve(config)),
        Some(Command::User(cmd)) => runtime.block_on(user_command(config, cmd)),
        Some(Command::RotateKey) => rotate_key(&config),
        Some(Command::GenerateConfig { .. }) => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("trellis: {message}");
    ExitCode::from(2)
}

fn rotate_key(config: &Config) -> Result<(), String> {
    let db =
        trellis::storage::Storage::open(&config.database.path, config.database.cache_mb).map_err(|e| e.to_string())?;
    let key = trellis::server_keys::rotate(&db).map_err(|e| e.to_string())?;
    println!("new signing key {}", key.key_id());
    Ok(())
}

async fn user_command(config: Config, cmd: UserCommand) -> Result<(), String> {
    let s = Services::new(config).map_err(|e| e.to_string())?;
    let text = |e: trellis::error::Error| e.to_string();
    match cmd {
        UserCommand::Create { user, password: pw, admin, email } => {
            let user_id = s.resolve_user(&user).map_err(text)?;
            trellis::users::validate_localpart(user_id.localpart(), s.server_name.as_str(), &[]).map_err(text)?;
            let password_hash = match pw {
                Some(pw) => Some(password::hash(pw).await.map_err(text)?),
                None => None,
            };
            let new = accounts::NewAccount { password_hash, admin, ..Default::default() };
            accounts::create(&s.db, &user_id, new).map_err(text)?;
            if let Some(email) = email {
                accounts::add_threepid(&s.db, &user_id, "email", &email).map_err(text)?;
            }
            println!("created {user_id}");
        }
        UserCommand::ResetPassword { user, password: pw } => {
            let user_id = s.resolve_user(&user).map_err(text)?;
            let hash = password::hash(pw).await.map_err(text)?;
            accounts::set_password(&s.db, &user_id, hash).map_err(text)?;
            trellis::users::devices::delete_all(&s.db, &user_id, None).map_err(text)?;
            println!("password reset for {user_id}; all devices logged out");
        }
        UserCommand::Deactivate { user, erase } => {
            let user_id = s.resolve_user(&user).map_err(text)?;
            accounts::deactivate(&s.db, &user_id, erase).map_err(text)?;
            println!("deactivated {user_id}");
        }
    }
    Ok(())
}
