//! The rack's caching HTTP proxy (`--proxy-bind`, port 8000), for clients inside managed subnets:
//! GET/HEAD of `http://` URLs through an on-disk cache (size-capped, least recently used dropped
//! first; package files kept as they are, apt's indexes revalidated with the origin on every
//! request, a stale copy served when the origin cannot be reached), CONNECT to port 443 passed
//! through; everything optionally through a parent proxy (`--proxy-upstream`). What is allowed and
//! cached is `rack_proto::proxy`; this is the IO. Kiln builds it in (one binary, its own metrics,
//! the managed subnets as its ACL) rather than running squid as MAAS does.
//!
//! Without a parent proxy, the proxy never connects to loopback, link-local or unspecified
//! addresses (by name or literal): a client cannot reach the rack host's own services through it.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use rack_proto::proxy::{self, Policy, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::state::Served;

mod cache;
#[cfg(test)]
mod cache_tests;

use cache::{Cache, Meta};

/// `--proxy-bind`, `--proxy-upstream`, `--proxy-cache-mib`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    pub bind: SocketAddr,
    /// A parent proxy every request goes through (`http://host:port`).
    pub upstream: Option<String>,
    /// The cache's size cap, bytes.
    pub cache_bytes: u64,
}

/// How long a client may take to send its whole request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting to an origin (or the parent proxy) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an origin may stay silent mid-response.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Connections served at once; more are answered 503 at once.
pub const MAX_CONNECTIONS: usize = 1024;

/// Addresses the proxy never connects to on a client's behalf.
fn forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback() || v4.is_link_local() || v4.is_unspecified() || v4.is_broadcast()
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| forbidden(IpAddr::V4(v4)))
        }
    }
}

/// Name resolution for upstream requests that leaves out forbidden addresses.
struct Guarded;

impl reqwest::dns::Resolve for Guarded {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| !forbidden(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} has no address this proxy may connect to").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

struct Shared {
    cfg: ProxyConfig,
    rx: watch::Receiver<Arc<Served>>,
    cache: Cache,
    http: reqwest::Client,
    metrics: Arc<Metrics>,
    slots: Arc<tokio::sync::Semaphore>,
}

/// Binds `--proxy-bind` (before anything else starts).
pub fn bind(cfg: &ProxyConfig) -> Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(cfg.bind).map_err(|e| {
        Error::Config(format!(
            "cannot listen for the proxy on {}: {e}; pass --proxy-bind ADDR:PORT, or --no-proxy",
            cfg.bind
        ))
    })?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Serves the proxy on `listener` until `cancel`.
pub async fn serve(
    cfg: ProxyConfig,
    listener: std::net::TcpListener,
    data_dir: &Path,
    rx: watch::Receiver<Arc<Served>>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) -> Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT);
    b = match &cfg.upstream {
        Some(u) => b.proxy(
            reqwest::Proxy::all(u)
                .map_err(|e| Error::Config(format!("--proxy-upstream {u}: {e}")))?,
        ),
        None => b.no_proxy().dns_resolver(Arc::new(Guarded)),
    };
    let shared = Arc::new(Shared {
        cache: Cache::open(&data_dir.join("proxy-cache"), cfg.cache_bytes)?,
        http: b.build()?,
        cfg,
        rx,
        metrics,
        slots: Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS)),
    });
    tracing::info!(bind = %shared.cfg.bind, upstream = ?shared.cfg.upstream, "proxy serving");
    loop {
        let (sock, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!("proxy accept: {e}");
                    continue;
                }
            },
            _ = cancel.cancelled() => return Ok(()),
        };
        let shared = shared.clone();
        let Ok(slot) = shared.slots.clone().try_acquire_owned() else {
            shared.metrics.inc("proxy_busy");
            tokio::spawn(async move {
                let mut sock = sock;
                let _ = tokio::time::timeout(
                    Duration::from_secs(2),
                    error(
                        &mut sock,
                        503,
                        "Service Unavailable",
                        "The proxy is at its connection limit; try again shortly.",
                    ),
                )
                .await;
            });
            continue;
        };
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = connection(sock, peer, &shared).await {
                tracing::debug!(peer = %peer, "proxy connection: {e}");
            }
        });
    }
}

/// Clients inside managed subnets, and the rack host itself.
fn allowed(served: &Served, ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => return v6.is_loopback(),
        },
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || served
                    .netconf
                    .subnets
                    .iter()
                    .any(|s| s.managed && s.net.contains(&v4))
        }
        IpAddr::V6(_) => false,
    }
}

async fn error(sock: &mut TcpStream, status: u16, reason: &str, message: &str) -> Result<()> {
    let body = format!("{message}\n");
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).await?;
    sock.write_all(body.as_bytes()).await?;
    Ok(())
}

async fn connection(mut sock: TcpStream, peer: SocketAddr, sh: &Shared) -> Result<()> {
    let m = &sh.metrics;
    if !allowed(&sh.rx.borrow(), peer.ip()) {
        m.inc("proxy_refused_client");
        return error(
            &mut sock,
            403,
            "Forbidden",
            "This proxy serves machines on Kiln's managed networks only.",
        )
        .await;
    }
    let mut buf = Vec::with_capacity(4096);
    // One deadline for the whole head: a client trickling a byte at a time cannot hold a slot.
    let deadline = tokio::time::Instant::now() + HEAD_TIMEOUT;
    let (req, used) = loop {
        let mut chunk = [0u8; 4096];
        let n = match tokio::time::timeout_at(deadline, sock.read(&mut chunk)).await {
            Ok(Ok(0)) | Err(_) => return Ok(()),
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(e.into()),
        };
        buf.extend_from_slice(&chunk[..n]);
        match proxy::parse(&buf) {
            Ok(Some(x)) => break x,
            Ok(None) => continue,
            Err(r) => {
                m.inc("proxy_refused");
                return error(&mut sock, r.status, r.reason, &r.message).await;
            }
        }
    };
    m.inc("proxy_requests");
    match req {
        Request::Connect { host, port } => tunnel(sock, &buf[used..], &host, port, sh).await,
        Request::Fetch {
            head_only,
            host,
            port,
            path,
            headers,
        } => fetch(sock, head_only, &host, port, &path, &headers, sh).await,
    }
}

/// CONNECT: a byte pipe to `host:port` (or through the parent proxy).
async fn tunnel(
    mut sock: TcpStream,
    early: &[u8],
    host: &str,
    port: u16,
    sh: &Shared,
) -> Result<()> {
    let m = &sh.metrics;
    let upstream = match &sh.cfg.upstream {
        Some(parent) => {
            tokio::time::timeout(CONNECT_TIMEOUT, connect_via(parent, host, port)).await
        }
        None => tokio::time::timeout(CONNECT_TIMEOUT, connect_checked(host, port)).await,
    }
    .unwrap_or_else(|_| Err(std::io::Error::other("timed out connecting")));
    let mut up = match upstream {
        Ok(s) => s,
        Err(e) => {
            m.inc("proxy_upstream_errors");
            return error(
                &mut sock,
                502,
                "Bad Gateway",
                &format!("Cannot reach {host}:{port}: {e}."),
            )
            .await;
        }
    };
    m.inc("proxy_connect");
    sock.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await?;
    if !early.is_empty() {
        up.write_all(early).await?;
    }
    let _ = tokio::io::copy_bidirectional(&mut sock, &mut up).await;
    Ok(())
}

async fn connect_checked(host: &str, port: u16) -> std::io::Result<TcpStream> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await?
        .filter(|a| !forbidden(a.ip()))
        .collect();
    if addrs.is_empty() {
        return Err(std::io::Error::other(
            "no address this proxy may connect to",
        ));
    }
    TcpStream::connect(&addrs[..]).await
}

async fn connect_via(parent: &str, host: &str, port: u16) -> std::io::Result<TcpStream> {
    let authority = parent
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut s = TcpStream::connect(authority.as_str()).await?;
    s.write_all(
        format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let b = s.read_u8().await?;
        head.push(b);
        if head.len() > proxy::MAX_HEAD {
            return Err(std::io::Error::other(
                "the parent proxy's answer is too long",
            ));
        }
    }
    let line = String::from_utf8_lossy(&head);
    if line.split_whitespace().nth(1) != Some("200") {
        return Err(std::io::Error::other(format!(
            "the parent proxy said {}",
            line.lines().next().unwrap_or("")
        )));
    }
    Ok(s)
}

fn header_map(h: &reqwest::header::HeaderMap) -> BTreeMap<String, String> {
    h.iter()
        .filter_map(|(k, v)| {
            Some((
                k.as_str().to_ascii_lowercase(),
                v.to_str().ok()?.to_string(),
            ))
        })
        .collect()
}

fn has(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

/// Sends a stored response (304 when the client's validators match it).
async fn from_cache(
    sock: &mut TcpStream,
    body: std::fs::File,
    meta: &Meta,
    client: &[(String, String)],
    head_only: bool,
    how: &str,
    sh: &Shared,
) -> Result<()> {
    let not_modified = has(client, "if-none-match")
        .is_some_and(|v| meta.headers.get("etag") == Some(&v))
        || has(client, "if-modified-since")
            .is_some_and(|v| meta.headers.get("last-modified") == Some(&v));
    let mut head = if not_modified {
        "HTTP/1.1 304 Not Modified\r\n".to_string()
    } else {
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n", meta.size)
    };
    for k in proxy::KEPT_HEADERS {
        if let Some(v) = meta.headers.get(k) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str(&format!(
        "X-Cache: {how} from kiln-rack\r\nConnection: close\r\n\r\n"
    ));
    sock.write_all(head.as_bytes()).await?;
    if not_modified || head_only {
        return Ok(());
    }
    let mut f = tokio::fs::File::from_std(body);
    let n = tokio::io::copy(&mut f, sock).await?;
    sh.metrics.add("proxy_bytes_hit", n);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn fetch(
    mut sock: TcpStream,
    head_only: bool,
    host: &str,
    port: u16,
    path: &str,
    client: &[(String, String)],
    sh: &Shared,
) -> Result<()> {
    let m = &sh.metrics;
    // The host as the HTTP client reads it (URL parsing turns `127.1`, `2130706433`, `0x7f.1`, a
    // trailing dot… into 127.0.0.1), checked in that form, also with a parent proxy: no spelling
    // of loopback gets through.
    // An IPv6 literal goes into a URL in brackets.
    let authority = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let literal = reqwest::Url::parse(&format!("http://{authority}:{port}/"))
        .ok()
        .and_then(|u| {
            u.host_str().and_then(|h| {
                h.trim_matches(|c| c == '[' || c == ']')
                    .parse::<IpAddr>()
                    .ok()
            })
        });
    if literal.is_some_and(forbidden) {
        m.inc("proxy_refused");
        return error(
            &mut sock,
            403,
            "Forbidden",
            "This proxy does not connect to loopback or link-local addresses.",
        )
        .await;
    }
    let url = if port == 80 {
        format!("http://{authority}{path}")
    } else {
        format!("http://{authority}:{port}{path}")
    };
    let key = proxy::key(host, port, path);
    let policy = proxy::policy(path);
    let ranged = has(client, "range").is_some();
    let personal = has(client, "authorization").is_some() || has(client, "cookie").is_some();
    let cached = if ranged || personal {
        None
    } else {
        sh.cache.get(&key)
    };
    let cached = match (cached, policy) {
        (Some((meta, body)), Policy::Immutable) => {
            m.inc("proxy_hits");
            return from_cache(&mut sock, body, &meta, client, head_only, "HIT", sh).await;
        }
        (c, _) => c,
    };
    // Ask the origin: conditionally when a copy is kept, for the whole object otherwise (the
    // client's own validators and ranges go along only when nothing will be stored).
    let mut rb = sh.http.request(
        if head_only {
            reqwest::Method::HEAD
        } else {
            reqwest::Method::GET
        },
        &url,
    );
    for (k, v) in client {
        let lk = k.to_ascii_lowercase();
        if !ranged
            && matches!(
                lk.as_str(),
                "if-none-match"
                    | "if-modified-since"
                    | "if-match"
                    | "if-unmodified-since"
                    | "if-range"
            )
        {
            continue;
        }
        rb = rb.header(k.as_str(), v.as_str());
    }
    if let Some((meta, _)) = &cached {
        if let Some(e) = meta.headers.get("etag") {
            rb = rb.header("If-None-Match", e.as_str());
        }
        if let Some(l) = meta.headers.get("last-modified") {
            rb = rb.header("If-Modified-Since", l.as_str());
        }
    }
    let resp = match rb.send().await {
        Ok(r) => r,
        Err(e) => {
            m.inc("proxy_upstream_errors");
            if let Some((meta, body)) = cached {
                m.inc("proxy_stale");
                return from_cache(&mut sock, body, &meta, client, head_only, "STALE", sh).await;
            }
            return error(
                &mut sock,
                502,
                "Bad Gateway",
                &format!("Cannot fetch {url}: {e}."),
            )
            .await;
        }
    };
    let cached = match cached {
        Some((meta, body)) if resp.status() == reqwest::StatusCode::NOT_MODIFIED => {
            m.inc("proxy_revalidated");
            return from_cache(&mut sock, body, &meta, client, head_only, "REVALIDATED", sh).await;
        }
        c => c,
    };
    // The old copy (if any) is not what goes out: let its file go.
    drop(cached);
    m.inc("proxy_misses");
    let status = resp.status();
    let headers = header_map(resp.headers());
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    for (k, v) in &headers {
        if !matches!(
            k.as_str(),
            "connection"
                | "keep-alive"
                | "transfer-encoding"
                | "proxy-connection"
                | "te"
                | "trailer"
                | "upgrade"
        ) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str("X-Cache: MISS from kiln-rack\r\nConnection: close\r\n\r\n");
    sock.write_all(head.as_bytes()).await?;
    if head_only {
        return Ok(());
    }
    let length: Option<u64> = headers.get("content-length").and_then(|v| v.parse().ok());
    // A response to a request with credentials or cookies is that client's own: never shared.
    let fits = length.is_none_or(|l| l <= sh.cache.max_object());
    let mut tmp =
        if fits && !ranged && !personal && proxy::storable(status.as_u16(), &headers, policy) {
            tempfile::Builder::new()
                .suffix(".tmp")
                .tempfile_in(&sh.cache.dir)
                .ok()
        } else {
            None
        };
    let mut body = resp.bytes_stream();
    let mut n: u64 = 0;
    let mut client_there = true;
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                m.inc("proxy_upstream_errors");
                tracing::debug!("proxy: {url} cut short: {e}");
                return Ok(());
            }
        };
        n += chunk.len() as u64;
        if n > sh.cache.max_object() {
            // Larger than the whole cache (a response without a length): not kept.
            tmp = None;
        }
        if let Some(t) = tmp.as_mut() {
            use std::io::Write;
            if t.write_all(&chunk).is_err() {
                tmp = None;
            }
        }
        if client_there && sock.write_all(&chunk).await.is_err() {
            // The client went away: what is being fetched is still worth keeping if it completes.
            client_there = false;
            if tmp.is_none() {
                return Ok(());
            }
        }
    }
    m.add("proxy_bytes_miss", n);
    if let Some(t) = tmp {
        if length.is_none_or(|l| l == n) {
            let kept: BTreeMap<String, String> = proxy::KEPT_HEADERS
                .iter()
                .filter_map(|k| Some((k.to_string(), headers.get(*k)?.clone())))
                .collect();
            let meta = Meta {
                url: url.clone(),
                headers: kept,
                size: n,
                body: String::new(),
            };
            if let Err(e) = sh.cache.store(&key, meta, t) {
                tracing::warn!("proxy: cannot keep {url}: {e}");
            }
        }
    }
    Ok(())
}
