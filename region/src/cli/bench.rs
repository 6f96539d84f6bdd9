//! `kiln bench`: load a running region and time it; and the streamed, progress-reporting upload
//! shared with `kiln images upload`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Subcommand;
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use region_api_types as api;
use reqwest::Method;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::client::{api_error, seg, Client};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Create COUNT machines through the API and report the creation rate.
    Create {
        #[arg(long, env = "KILN_URL", default_value = "http://127.0.0.1:5240")]
        url: String,
        #[arg(long, env = "KILN_TOKEN", hide_env_values = true)]
        token: String,
        #[arg(long, default_value_t = 10_000)]
        count: u32,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Give machine i the static address IP_BASE + i (a reservation on its subnet).
        #[arg(long)]
        ip_base: Option<std::net::Ipv4Addr>,
    },
    /// CLIENTS concurrent TFTP downloads of FILE from SERVER; total time and throughput.
    Tftp {
        /// host:port of the TFTP server.
        #[arg(long)]
        server: std::net::SocketAddr,
        #[arg(long)]
        file: String,
        #[arg(long, default_value_t = 200)]
        clients: usize,
        #[arg(long, default_value_t = 1468)]
        blksize: u16,
        /// A label for the result line.
        #[arg(long, default_value = "server")]
        label: String,
    },
    /// CLIENTS concurrent clients, each downloading every URL once; total time and throughput.
    Http {
        #[arg(long = "url", required = true)]
        urls: Vec<String>,
        #[arg(long, default_value_t = 100)]
        clients: usize,
        #[arg(long, default_value = "server")]
        label: String,
    },
    /// GET each URL REQUESTS times (sequentially) and report p50/p99 latency and bytes; the first URL is
    /// the baseline of the ratios. URLs under the region get the token; others are fetched plainly.
    Get {
        #[arg(long, env = "KILN_TOKEN", hide_env_values = true)]
        token: Option<String>,
        #[arg(long = "url", required = true)]
        urls: Vec<String>,
        #[arg(long, default_value_t = 50)]
        requests: u32,
        /// Read VmRSS/VmHWM of this process (the region) at the end.
        #[arg(long)]
        pid: Option<u32>,
        /// Log in to the web UI as this user first (password on standard input) and send the
        /// session cookie to the URLs outside the API (the UI's pages).
        #[arg(long)]
        login: Option<String>,
        /// Where to log in with `--login` (default: the first URL's scheme, host and port).
        #[arg(long)]
        login_base: Option<String>,
    },
}

fn bar(len: u64, msg: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(
            "{msg:>10} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.set_message(msg.to_string());
    pb
}

/// Hashes `path` (with a progress bar), then streams it to the region with its sha256 and size.
/// Uploads one file with its sha256 (the region checks it). With `expected` (a bundle's
/// manifest), a file whose hash differs is refused here, before anything is sent.
pub async fn upload_file(
    c: &Client,
    resource_id: &str,
    path: &Path,
    expected: Option<&str>,
) -> anyhow::Result<api::BootResource> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} has no usable file name", path.display()))?
        .to_string();
    let size = tokio::fs::metadata(path)
        .await
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    let sha = hash_file(path, size, "hashing").await?;
    if let Some(want) = expected {
        if !want.eq_ignore_ascii_case(&sha) {
            anyhow::bail!(
                "{} has sha256 {sha} but the bundle's manifest says {want}: the bundle is damaged; rebuild it (kiln images build)",
                path.display()
            );
        }
    }
    send_file(c, resource_id, path, &name, size, &sha).await
}

/// The sha256 of the file at `path` (`size` bytes), with a progress bar labelled `what`.
pub async fn hash_file(path: &Path, size: u64, what: &str) -> anyhow::Result<String> {
    let pb = bar(size, what);
    let mut f = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        pb.inc(n as u64);
    }
    pb.finish_and_clear();
    Ok(hex::encode(h.finalize()))
}

/// Uploads a file whose sha256 is known (the region checks it again as it arrives).
pub async fn send_file(
    c: &Client,
    resource_id: &str,
    path: &Path,
    name: &str,
    size: u64,
    sha: &str,
) -> anyhow::Result<api::BootResource> {
    let pb = bar(size, "uploading");
    let f = tokio::fs::File::open(path).await?;
    let pbc = pb.clone();
    let stream = tokio_util::io::ReaderStream::with_capacity(f, 1 << 20).inspect(move |chunk| {
        if let Ok(c) = chunk {
            pbc.inc(c.len() as u64);
        }
    });
    let rb = c
        .request(
            Method::PUT,
            &format!(
                "/api/v1/boot-resources/{}/files/{}",
                seg(resource_id),
                seg(name)
            ),
        )
        .query(&[("sha256", sha), ("size", &size.to_string())])
        .header(reqwest::header::CONTENT_LENGTH, size)
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .body(reqwest::Body::wrap_stream(stream));
    let r: api::BootResource = c.send(rb).await?;
    pb.finish_and_clear();
    eprintln!("{name}: {size} bytes, sha256 {sha} verified by the region");
    Ok(r)
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Create {
            url,
            token,
            count,
            concurrency,
            ip_base,
        } => create(&url, token, count, concurrency, ip_base).await,
        BenchCommand::Get {
            token,
            urls,
            requests,
            pid,
            login,
            login_base,
        } => {
            let session = match login {
                Some(user) => {
                    let mut password = String::new();
                    std::io::stdin()
                        .read_line(&mut password)
                        .context("reading the password from standard input")?;
                    let base = login_base
                        .or_else(|| urls.first().map(|u| origin_of(u)))
                        .unwrap_or_default();
                    Some(ui_login(&base, &user, password.trim_end_matches(['\n', '\r'])).await?)
                }
                None => None,
            };
            get(token, session, &urls, requests, pid).await
        }
        BenchCommand::Tftp {
            server,
            file,
            clients,
            blksize,
            label,
        } => tftp_bench(server, &file, clients, blksize, &label).await,
        BenchCommand::Http {
            urls,
            clients,
            label,
        } => http_bench(&urls, clients, &label).await,
    }
}

async fn create(
    url: &str,
    token: String,
    count: u32,
    concurrency: usize,
    ip_base: Option<std::net::Ipv4Addr>,
) -> anyhow::Result<()> {
    let c = Client::new(url, Some(token))?;
    let run_tag = crate::db::random_id(4);
    let pb = ProgressBar::new(u64::from(count));
    pb.set_style(
        ProgressStyle::with_template("creating [{bar:40}] {pos}/{len} ({per_sec}, {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let start = Instant::now();
    let results = futures_util::stream::iter(0..count)
        .map(|i| {
            let c = c.clone();
            let run_tag = run_tag.clone();
            let pb = pb.clone();
            async move {
                let mac = format!(
                    "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                    run_tag.as_bytes()[0],
                    (i >> 24) & 0xff,
                    (i >> 16) & 0xff,
                    (i >> 8) & 0xff,
                    i & 0xff
                );
                let body = api::MachineCreate {
                    hostname: Some(format!("bench-{run_tag}-{i}")),
                    boot_mac: Some(mac.clone()),
                    tags: Some(vec!["bench".into()]),
                    cpu_count: Some(4),
                    memory_mib: Some(8192),
                    storage_bytes: Some(256 << 30),
                    ..Default::default()
                };
                let r: anyhow::Result<api::Machine> = c.post("/api/v1/machines", &body).await;
                let r = match (r, ip_base) {
                    (Ok(m), Some(base)) => {
                        let ip = std::net::Ipv4Addr::from(u32::from(base).wrapping_add(i));
                        let put = c
                            .request(
                                reqwest::Method::PUT,
                                &format!("/api/v1/machines/{}/interfaces/{mac}", m.system_id),
                            )
                            .json(&api::InterfaceUpdate {
                                ip: Some(ip.to_string()),
                            });
                        c.send::<api::Machine>(put).await.map(|_| ())
                    }
                    (r, _) => r.map(|_| ()),
                };
                pb.inc(1);
                r
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    pb.finish_and_clear();
    let elapsed = start.elapsed();
    let failed = results.iter().filter(|r| r.is_err()).count();
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        eprintln!("first failure: {e}");
    }
    println!(
        "created {} machines in {:.2} s: {:.0} machines/s ({failed} failed, concurrency {concurrency})",
        count as usize - failed,
        elapsed.as_secs_f64(),
        (count as usize - failed) as f64 / elapsed.as_secs_f64()
    );
    if failed > 0 {
        bail!("{failed} creations failed");
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// `scheme://host:port` of a URL.
fn origin_of(url: &str) -> String {
    match url.find("://") {
        Some(i) => match url[i + 3..].find('/') {
            Some(j) => url[..i + 3 + j].to_string(),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// The value of cookie `name` among a response's Set-Cookie headers.
fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let first = v.split(';').next()?;
            let (k, val) = first.split_once('=')?;
            (k.trim() == name).then(|| val.to_string())
        })
}

/// Logs in through the web UI's form, as a browser does; returns the `kiln_session` cookie.
async fn ui_login(base: &str, user: &str, password: &str) -> anyhow::Result<String> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let page = http.get(format!("{base}/login")).send().await?;
    let login_cookie = set_cookie(&page, "kiln_login").context("no login cookie")?;
    let html = page.text().await?;
    let csrf = html
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|s| s.split('"').next())
        .context("no CSRF token on the login page")?
        .to_string();
    let r = http
        .post(format!("{base}/login"))
        .header(
            reqwest::header::COOKIE,
            format!("kiln_login={login_cookie}"),
        )
        .form(&[("username", user), ("password", password), ("csrf", &csrf)])
        .send()
        .await?;
    set_cookie(&r, "kiln_session")
        .with_context(|| format!("login as {user} failed ({})", r.status()))
}

async fn get(
    token: Option<String>,
    session: Option<String>,
    urls: &[String],
    requests: u32,
    pid: Option<u32>,
) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let mut p50s = Vec::new();
    println!("| target | requests | bytes | p50 ms | p99 ms | p50 ratio to first |");
    println!("|---|---|---|---|---|---|");
    for url in urls {
        let mut times = Vec::with_capacity(requests as usize);
        let mut size = 0usize;
        for _ in 0..requests {
            let mut rb = http.get(url);
            if url.contains("/api/v1/") {
                if let Some(t) = &token {
                    rb = rb.bearer_auth(t);
                }
            } else if let Some(s) = &session {
                rb = rb.header(reqwest::header::COOKIE, format!("kiln_session={s}"));
            }
            let start = Instant::now();
            let resp = rb.send().await.with_context(|| format!("GET {url}"))?;
            let status = resp.status();
            let body = resp.bytes().await?;
            times.push(start.elapsed());
            if !status.is_success() {
                return Err(api_error(status, &body));
            }
            size = body.len();
        }
        times.sort();
        let p50 = percentile(&times, 0.5);
        let p99 = percentile(&times, 0.99);
        p50s.push(p50);
        let ratio = p50.as_secs_f64() / p50s[0].as_secs_f64().max(1e-9);
        println!(
            "| {url} | {requests} | {size} | {:.2} | {:.2} | {ratio:.2} |",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }
    if let Some(pid) = pid {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("no process {pid}"))?;
        for line in status
            .lines()
            .filter(|l| l.starts_with("VmRSS") || l.starts_with("VmHWM"))
        {
            println!("region {line}");
        }
    }
    Ok(())
}

/// One TFTP download (RFC 1350 + blksize option); returns the bytes received.
async fn tftp_get(server: std::net::SocketAddr, file: &str, blksize: u16) -> anyhow::Result<u64> {
    use tokio::net::UdpSocket;
    let sock = UdpSocket::bind("0.0.0.0:0").await?;
    let mut rrq = vec![0u8, 1];
    for part in [file, "octet", "blksize", &blksize.to_string()] {
        rrq.extend_from_slice(part.as_bytes());
        rrq.push(0);
    }
    sock.send_to(&rrq, server).await?;
    let mut last: Vec<u8> = rrq;
    let mut last_to = server;
    let mut peer: Option<std::net::SocketAddr> = None;
    let mut expect: u64 = 1;
    // Until an OACK says otherwise, the server uses 512-byte blocks.
    let mut size = 512usize;
    let mut total = 0u64;
    let mut buf = vec![0u8; 65536];
    let mut tries = 0;
    loop {
        let (n, from) =
            match tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf)).await {
                Ok(r) => r?,
                Err(_) => {
                    tries += 1;
                    if tries > 5 {
                        bail!("timed out");
                    }
                    sock.send_to(&last, last_to).await?;
                    continue;
                }
            };
        if peer.is_some_and(|p| p != from) || n < 4 {
            continue;
        }
        peer = Some(from);
        last_to = from;
        tries = 0;
        match u16::from_be_bytes([buf[0], buf[1]]) {
            6 => {
                let opts: Vec<&[u8]> = buf[2..n].split(|b| *b == 0).collect();
                for w in opts.chunks(2) {
                    if w.len() == 2 && w[0].eq_ignore_ascii_case(b"blksize") {
                        size = std::str::from_utf8(w[1])
                            .ok()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(size);
                    }
                }
                last = vec![0, 4, 0, 0];
                sock.send_to(&last, from).await?;
            }
            3 => {
                let wire = u16::from_be_bytes([buf[2], buf[3]]);
                if u64::from(wire) == (expect & 0xffff) {
                    total += (n - 4) as u64;
                    last = vec![0, 4, buf[2], buf[3]];
                    sock.send_to(&last, from).await?;
                    if n - 4 < size {
                        return Ok(total);
                    }
                    expect += 1;
                } else {
                    sock.send_to(&last, from).await?;
                }
            }
            5 => bail!(
                "server error: {}",
                String::from_utf8_lossy(&buf[4..n.saturating_sub(1)])
            ),
            _ => {}
        }
    }
}

async fn tftp_bench(
    server: std::net::SocketAddr,
    file: &str,
    clients: usize,
    blksize: u16,
    label: &str,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let jobs: Vec<_> = (0..clients)
        .map(|_| {
            let file = file.to_string();
            tokio::spawn(async move { tftp_get(server, &file, blksize).await })
        })
        .collect();
    let mut bytes = 0u64;
    let mut failed = 0;
    for j in jobs {
        match j.await? {
            Ok(b) => bytes += b,
            Err(e) => {
                failed += 1;
                eprintln!("{label}: {e}");
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("| {label} | TFTP {clients} clients, blksize {blksize} | {secs:.2} s | {:.1} MB/s | {failed} failed |", bytes as f64 / secs / 1e6);
    Ok(())
}

async fn http_bench(urls: &[String], clients: usize, label: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()?;
    let start = Instant::now();
    let jobs: Vec<_> = (0..clients)
        .map(|_| {
            let http = http.clone();
            let urls = urls.to_vec();
            tokio::spawn(async move {
                let mut n = 0u64;
                for u in &urls {
                    let resp = http.get(u).send().await?.error_for_status()?;
                    let mut s = resp.bytes_stream();
                    while let Some(c) = s.next().await {
                        n += c?.len() as u64;
                    }
                }
                anyhow::Ok(n)
            })
        })
        .collect();
    let mut bytes = 0u64;
    let mut failed = 0;
    for j in jobs {
        match j.await? {
            Ok(b) => bytes += b,
            Err(e) => {
                failed += 1;
                eprintln!("{label}: {e}");
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("| {label} | HTTP {clients} clients x {} files | {secs:.2} s | {:.1} MB/s | {failed} failed |", urls.len(), bytes as f64 / secs / 1e6);
    Ok(())
}
