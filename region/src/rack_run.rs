//! `kiln all-in-one` and `kiln rack`: the commands that run a rack (the `all-in-one` feature,
//! on by default; a region built without it links no rack code and no libvirt).

use region::cli::{AllInOneArgs, RackArgs};

use crate::{init_tracing, server_config};

/// A region and its own rack in one process.
pub fn all_in_one(rt: &tokio::runtime::Runtime, args: AllInOneArgs) -> anyhow::Result<()> {
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

/// A rack on its own, talking to one region or several.
pub fn rack(rt: &tokio::runtime::Runtime, args: RackArgs) -> anyhow::Result<()> {
    init_tracing(&args.log_format);
    let read = |p: &std::path::Path, what: &str| {
        std::fs::read_to_string(p)
            .map_err(|e| anyhow::anyhow!("cannot read the {what} from {}: {e}", p.display()))
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
        cfg.region_ca =
            Some(std::fs::read_to_string(p).map_err(|e| {
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
