//! The `kiln` binary: parses the command line and hands over to `region::cli`.

use clap::Parser;
use region::cli::{self, admin, AdminCommand, Cli, Command, DbCommand};
use region::config::Overrides;
use region::logging::Demote;
use tracing_subscriber::EnvFilter;

#[cfg(feature = "all-in-one")]
mod rack_run;

fn init_tracing(format: &str) {
    use std::io::IsTerminal;
    use tracing_subscriber::prelude::*;
    let spec = std::env::var("KILN_LOG").unwrap_or_else(|_| "info".into());
    let filter = || EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // A client's malformed request is logged at debug, not as the server's error (`region::logging`).
    let out = if format == "json" {
        Demote::new(fmt.json().boxed(), filter()).boxed()
    } else {
        Demote::new(fmt.boxed(), filter()).boxed()
    };
    tracing_subscriber::registry()
        .with(filter())
        .with(out)
        .init();
}

fn server_config(args: &cli::ServerArgs) -> anyhow::Result<region::Config> {
    admin::load_config(
        &args.db,
        Overrides {
            listen: args.listen,
            node_timeout_secs: args.node_timeout,
            enlist_commission: args.enlist_commission,
            log_format: args.log_format.clone(),
            tls_mode: if args.plain_http {
                Some("off".into())
            } else {
                args.tls.clone()
            },
            tls_cert: args.tls_cert.clone(),
            tls_key: args.tls_key.clone(),
            tls_names: args.tls_names.clone(),
            ..Default::default()
        },
    )
}

/// glibc's malloc gives threads arenas of their own (up to eight per core) and keeps what they
/// free: with the database's blocking threads that tripled a region's memory at 10,000 machines
/// (512 MB against 156 MB with two arenas, BENCHMARKS.md). glibc reads its limit from the
/// environment before `main` runs, so a long-running command that was not given one runs itself
/// again with `MALLOC_ARENA_MAX=2` (the same process: `exec`, not a child). An operator's own
/// setting is kept.
fn limit_malloc_arenas(cli: &Cli) {
    use std::os::unix::process::CommandExt;
    let long_running = match cli.command {
        Command::Region(_) => true,
        #[cfg(feature = "all-in-one")]
        Command::Rack(_) | Command::AllInOne(_) => true,
        _ => false,
    };
    if !long_running || std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("MALLOC_ARENA_MAX", "2")
        .exec();
    // Only reached if the exec failed: run as we are.
    eprintln!("note: could not re-run with MALLOC_ARENA_MAX=2 ({err}); continuing");
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    limit_malloc_arenas(&cli);
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Region(args) => {
            let cfg = server_config(&args)?;
            if args.print_config {
                print!("{}", cfg.to_toml_redacted());
                return Ok(());
            }
            init_tracing(&cfg.log_format);
            rt.block_on(async move {
                let region = region::Region::start(cfg).await?;
                region.run_until_signal().await?;
                anyhow::Ok(())
            })
        }
        #[cfg(feature = "all-in-one")]
        Command::AllInOne(args) => rack_run::all_in_one(&rt, args),
        #[cfg(feature = "all-in-one")]
        Command::Rack(args) => rack_run::rack(&rt, args),
        Command::Admin(AdminCommand::CreateUser {
            name,
            admin,
            password_stdin,
            db,
        }) => admin::create_user(&name, admin, password_stdin, &db),
        Command::Admin(AdminCommand::CreateToken {
            name,
            token_name,
            scope,
            expires,
            db,
        }) => admin::create_token(&name, &token_name, scope, expires.as_deref(), &db),
        Command::Admin(AdminCommand::RackSecret { db }) => admin::rack_secret(&db),
        Command::Admin(AdminCommand::RackToken {
            ttl,
            auto_approve,
            power_networks,
            db,
        }) => admin::rack_token(&ttl, auto_approve, &power_networks, &db),
        Command::Db(DbCommand::Migrate { db }) => admin::migrate(&db),
        Command::Machines(a) => rt.block_on(cli::commands::machines(a)),
        Command::Subnets(a) => rt.block_on(cli::subnets::subnets(a)),
        Command::Images(a) => rt.block_on(cli::images::images(a)),
        Command::Scripts(a) => rt.block_on(cli::scripts::scripts(a)),
        Command::Users(a) => rt.block_on(cli::users::users(a)),
        Command::Tokens(a) => rt.block_on(cli::users::tokens(a)),
        Command::Sshkeys(a) => rt.block_on(cli::commands::sshkeys(a)),
        Command::Racks(a) => rt.block_on(cli::racks::racks(a)),
        Command::Events(a) => rt.block_on(cli::racks::events(a)),
        Command::Volumes(a) => rt.block_on(cli::volumes::volumes(a)),
        Command::Settings(a) => rt.block_on(cli::settings::settings(a)),
        Command::Dns(a) => rt.block_on(cli::dns::dns(a)),
        Command::Pods(a) => rt.block_on(cli::pods::pods(a)),
        Command::Bench(b) => rt.block_on(cli::bench::run(b)),
    }
}
