//! The `kiln` binary: parses the command line and hands over to `region::cli`.

use clap::Parser;
use region::cli::{self, admin, AdminCommand, Cli, Command, DbCommand};
use region::config::Overrides;
use region::logging::Demote;
use tracing_subscriber::EnvFilter;

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

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
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
        Command::AllInOne(args) => {
            let cfg = server_config(&args.server)?;
            if args.server.print_config {
                print!("{}", cfg.to_toml_redacted());
                return Ok(());
            }
            init_tracing(&cfg.log_format);
            rt.block_on(async move {
                let rack_dir = cfg.data_dir.join("rack");
                let region = region::Region::start(cfg).await?;
                // The rack half talks to the region half over loopback, like any other rack
                // (over HTTPS when the region serves it, trusting what the region serves).
                let url = region.url.clone();
                let region_ca = region::tls::trust_for_local(&region.state.cfg)?;
                // Its own rack: enrolled with a fresh approved token at each start (used only
                // when the rack has no valid credentials yet; unused ones expire in an hour).
                let token = region
                    .state
                    .pool
                    .run(|c| {
                        region::domain::racks::create_token(
                            c,
                            "all-in-one",
                            3600,
                            true,
                            // The region's own rack: the operator who started both trusts it with
                            // every BMC.
                            &[region::domain::racks::ALL_NETWORKS.to_string()],
                            None,
                            region::db::now_ms(),
                        )
                    })
                    .await?;
                let mut rack_cfg = args.rack.config(&url, "", rack_dir);
                rack_cfg.enrolment_token = Some(token.token);
                rack_cfg.region_ca = region_ca;
                let cancel = tokio_util::sync::CancellationToken::new();
                let rack = tokio::spawn(rack::run(rack_cfg, cancel.clone()));
                let outcome = tokio::select! {
                    _ = region.wait_for_signal() => Ok(()),
                    r = rack => Err(match r {
                        Ok(Ok(())) => anyhow::anyhow!("the rack stopped"),
                        Ok(Err(e)) => anyhow::anyhow!("the rack failed: {e}"),
                        Err(e) => anyhow::anyhow!("the rack task died: {e}"),
                    }),
                };
                cancel.cancel();
                region.stop().await?;
                outcome
            })
        }
        Command::Rack(args) => {
            init_tracing(&args.log_format);
            let read = |p: &std::path::Path, what: &str| {
                std::fs::read_to_string(p).map_err(|e| {
                    anyhow::anyhow!("cannot read the {what} from {}: {e}", p.display())
                })
            };
            let secret = match &args.secret_file {
                Some(p) => {
                    tracing::warn!("--secret-file (the shared rack secret) is deprecated: enrol with --token-file and a token from `kiln admin rack-token`");
                    read(p, "rack secret")?
                }
                None => String::new(),
            };
            let mut cfg = args
                .service
                .config(&args.region_url, &secret, args.data_dir.clone());
            if let Some(p) = &args.token_file {
                cfg.enrolment_token = Some(read(p, "enrolment token")?.trim().to_string());
            }
            if let Some(p) = &args.region_ca {
                cfg.region_ca = Some(std::fs::read_to_string(p).map_err(|e| {
                    anyhow::anyhow!("cannot read the region CA from {}: {e}", p.display())
                })?);
            }
            rt.block_on(async move {
                let cancel = tokio_util::sync::CancellationToken::new();
                let c2 = cancel.clone();
                tokio::spawn(async move {
                    region::server::shutdown_signal().await;
                    c2.cancel();
                });
                rack::run(cfg, cancel).await?;
                anyhow::Ok(())
            })
        }
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
