//! Starting the region: open the database (migrating it), the image store, the HTTP server, and the
//! background task that expires in-progress deadlines.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::{ServerHandle, Service};
use actix_web::{web, App, HttpServer};
use futures_util::FutureExt;

use crate::api::{self, AppState};
use crate::config::Config;
use crate::db::{now_ms, Pool};
use crate::domain::secrets::SecretBox;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::store::Store;

/// A region serving HTTP.
pub struct Region {
    /// The address the API listens on (the real port when the config said 0).
    pub addr: SocketAddr,
    /// `https://addr` or `http://addr` (loopback addresses as 127.0.0.1, for clients on this host).
    pub url: String,
    pub state: AppState,
    handle: ServerHandle,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    deadlines: tokio::task::JoinHandle<()>,
    /// Hears other regions' changes (PostgreSQL only).
    _listener: Option<crate::changes::ListenerGuard>,
}

impl Region {
    /// Opens everything and starts serving. Fails (without serving) if the database cannot be
    /// opened or migrated, or the address cannot be bound.
    pub async fn start(cfg: Config) -> Result<Region> {
        let cfg = Arc::new(cfg);
        std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
            Error::Config(format!(
                "cannot create data_dir {}: {e}",
                cfg.data_dir.display()
            ))
        })?;
        let url = cfg.database_url();
        let pool = tokio::task::spawn_blocking(move || Pool::open(&url))
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
        let store = Store::open(&cfg.image_dir())?;
        let orphans = crate::domain::images::collect_orphans(&pool, &store).await?;
        if orphans > 0 {
            tracing::info!("removed {orphans} stored image file(s) no boot resource refers to");
        }
        let secrets = Arc::new(SecretBox::load_or_create(&cfg.secret_key_path())?);
        {
            let sb = secrets.clone();
            let sealed = pool
                .run(move |c| crate::domain::power::seal_plain_secrets(c, &sb))
                .await?;
            if sealed > 0 {
                tracing::info!(
                    "sealed the power secrets of {sealed} machine(s) stored in the clear"
                );
            }
        }
        let state = AppState {
            pool,
            cfg: cfg.clone(),
            store,
            metrics: Arc::new(Metrics::default()),
            secrets,
            power_wake: Arc::new(tokio::sync::Notify::new()),
            power_done: Arc::new(tokio::sync::Notify::new()),
            pod_wake: Arc::new(tokio::sync::Notify::new()),
            pod_done: Arc::new(tokio::sync::Notify::new()),
            shutdown: tokio_util::sync::CancellationToken::new(),
            logins: Arc::new(crate::domain::login::Limiter::default()),
        };
        tokio::task::spawn_blocking(crate::domain::login::warm_up);
        let listener = (state.pool.backend() == crate::db::Backend::Postgres).then(|| {
            crate::changes::listen_postgres(cfg.database_url(), state.pool.changes().clone())
        });
        let app_state = state.clone();
        let server = HttpServer::new(move || {
            let metrics = app_state.metrics.clone();
            App::new()
                .app_data(web::Data::new(app_state.clone()))
                .app_data(api::json_config(app_state.cfg.api.max_json_bytes))
                .app_data(api::query_config())
                .wrap_fn(move |req, srv| {
                    let start = Instant::now();
                    let method = req.method().to_string();
                    let path = req.path().to_string();
                    let metrics = metrics.clone();
                    srv.call(req).map(move |res| {
                        if let Ok(r) = &res {
                            let status = r.status().as_u16();
                            let secs = start.elapsed().as_secs_f64();
                            metrics.record(&method, status, secs);
                            tracing::debug!(http.method = %method, http.path = %path, http.status = status, elapsed_ms = secs * 1000.0, "{method} {path} {status}");
                        }
                        res
                    })
                })
                .configure(api::configure)
                .configure(crate::web::configure)
        })
        .disable_signals()
        .shutdown_timeout(10);
        let transport = crate::tls::decide(cfg.listen, &cfg.tls)?;
        let tls = crate::tls::prepare(&transport, &cfg.data_dir, cfg.listen, &cfg.tls.names)?;
        let cannot =
            |e: std::io::Error| Error::Config(format!("cannot listen on {}: {e}", cfg.listen));
        let (server, scheme, tls_line) = match tls {
            Some((rustls_cfg, line)) => (
                server
                    .bind_rustls_0_23(cfg.listen, rustls_cfg)
                    .map_err(cannot)?,
                "https",
                line,
            ),
            None => {
                if let crate::tls::Transport::Plain { reason } = &transport {
                    if !cfg.listen.ip().is_loopback() {
                        tracing::warn!(
                            "the API serves plain HTTP on {} ({reason}): passwords, tokens and BMC credentials cross the network in clear",
                            cfg.listen
                        );
                    }
                }
                (
                    server.bind(cfg.listen).map_err(cannot)?,
                    "http",
                    String::new(),
                )
            }
        };
        let addr = server
            .addrs()
            .first()
            .copied()
            .ok_or_else(|| Error::Internal("server bound no address".into()))?;
        let server = server.run();
        let handle = server.handle();
        let server = tokio::spawn(server);

        let pool = state.pool.clone();
        let every = Duration::from_secs(cfg.lifecycle.deadline_check_secs);
        let file_cfg = cfg.clone();
        let wake = state.power_wake.clone();
        let pod_wake = state.pod_wake.clone();
        let lifecycle = cfg.lifecycle.clone();
        let deadlines = tokio::spawn(async move {
            let mut last_poll = 0i64;
            let mut last_prune = 0i64;
            loop {
                let p = pool.clone();
                match p
                    .run(|c| crate::domain::deadlines::expire_deadlines(c, now_ms()))
                    .await
                {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(
                        "{n} machine(s) moved to a failed status after their deadline"
                    ),
                    Err(e) => tracing::warn!("deadline check failed: {e}"),
                }
                // Operators may change these at run time (domain::settings): read each round.
                let fc = file_cfg.clone();
                let (lc_now, power_cfg) = match p
                    .run(move |c| crate::domain::settings::effective(c, &fc))
                    .await
                {
                    Ok(both) => both,
                    Err(e) => {
                        tracing::warn!("reading the settings failed: {e}");
                        (file_cfg.lifecycle.clone(), file_cfg.power.clone())
                    }
                };
                let prune_ms = i64::try_from(lc_now.prune_secs).unwrap_or(3600) * 1000;
                if prune_ms > 0 && now_ms() - last_prune >= prune_ms {
                    last_prune = now_ms();
                    match p
                        .run(move |c| crate::domain::prune::prune(c, &lc_now, now_ms()))
                        .await
                    {
                        Ok(n) if n.total() == 0 => {}
                        Ok(n) => tracing::info!(
                            "removed {} expired session(s) and token(s), {} boot token(s), {} old event(s), {} old audit entries",
                            n.tokens, n.boot_tokens, n.events, n.audit
                        ),
                        Err(e) => tracing::warn!("pruning failed: {e}"),
                    }
                }
                let timeout = i64::try_from(power_cfg.job_timeout_secs).unwrap_or(300) * 1000;
                match p
                    .run(move |c| crate::domain::power::expire(c, now_ms(), timeout))
                    .await
                {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::warn!("{n} power job(s) failed: no rack finished them in time")
                    }
                    Err(e) => tracing::warn!("power job expiry failed: {e}"),
                }
                let poll_ms = i64::try_from(power_cfg.poll_secs).unwrap_or(0) * 1000;
                if poll_ms > 0 && now_ms() - last_poll >= (poll_ms / 10).max(1000) {
                    last_poll = now_ms();
                    match p
                        .run(move |c| crate::domain::power::enqueue_polls(c, now_ms(), poll_ms))
                        .await
                    {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::debug!("queued {n} power state check(s)");
                            wake.notify_waiters();
                        }
                        Err(e) => tracing::warn!("power polling failed: {e}"),
                    }
                }
                let lc = lifecycle.clone();
                match p
                    .run(move |c| crate::domain::pod_jobs::expire(c, &lc, now_ms(), timeout))
                    .await
                {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!("{n} pod job(s) failed: no rack finished them in time"),
                    Err(e) => tracing::warn!("pod job expiry failed: {e}"),
                }
                let refresh_ms = i64::try_from(power_cfg.pod_refresh_secs).unwrap_or(0) * 1000;
                if refresh_ms > 0 {
                    match p
                        .run(move |c| {
                            crate::domain::pod_jobs::enqueue_refreshes(c, now_ms(), refresh_ms)
                        })
                        .await
                    {
                        Ok(0) => {}
                        Ok(_) => pod_wake.notify_waiters(),
                        Err(e) => tracing::warn!("pod refresh failed: {e}"),
                    }
                }
                tokio::time::sleep(every).await;
            }
        });
        let host = if addr.ip().is_unspecified() || addr.ip().is_loopback() {
            format!("127.0.0.1:{}", addr.port())
        } else {
            addr.to_string()
        };
        let url = format!("{scheme}://{host}");
        tracing::info!(listen = %addr, database = %crate::config::redact_url(&cfg.database_url()), "region listening on {scheme}://{addr} {tls_line}");
        Ok(Region {
            addr,
            url,
            state,
            handle,
            server,
            deadlines,
            _listener: listener,
        })
    }

    /// Waits for SIGINT/SIGTERM.
    pub async fn wait_for_signal(&self) {
        shutdown_signal().await;
        tracing::info!("shutting down");
    }

    /// Serves until SIGINT/SIGTERM, then stops gracefully.
    pub async fn run_until_signal(self) -> Result<()> {
        shutdown_signal().await;
        tracing::info!("shutting down");
        self.stop().await
    }

    /// Stops serving: in-flight requests finish (up to 10 s), the background task ends.
    pub async fn stop(self) -> Result<()> {
        self.deadlines.abort();
        // Live pages' event streams never end by themselves.
        self.state.shutdown.cancel();
        self.handle.stop(true).await;
        match self.server.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.into()),
            Err(e) => Err(Error::Internal(format!("server task: {e}"))),
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
