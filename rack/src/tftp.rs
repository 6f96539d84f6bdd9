//! The TFTP shell: one socket for requests, then one task and one socket (a new TID) per transfer,
//! so transfers never wait on each other. Every decision is `rack_proto::tftp`.
//!
//! Files come from the rack's boot-file directories, searched in order (synced bootloaders first,
//! then the `ipxe` package's `/usr/lib/ipxe`). A path that resolves (through symlinks) outside its
//! root is refused like `..`.
//!
//! [`Limits`] cap the transfers running at once, in all and per client address; a request over
//! either is refused with an ERROR packet (and counted), so neither a boot storm nor a stream of
//! spoofed requests can make the rack take on more than it was told to.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rack_proto::tftp::{self, ErrorCode, ReadRequest, Step, Transfer};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::error::Result;
use crate::metrics::Metrics;

/// A file read whole into memory and shared by concurrent transfers (boot files are small and
/// hot: 200 machines booting fetch the same `undionly.kpxe`).
type Cached = Arc<Vec<u8>>;

/// Files larger than this are not cached in memory (read per transfer instead).
const CACHE_MAX_FILE: u64 = 64 << 20;

/// Where TFTP finds files, and a cache of their contents.
pub struct FileSource {
    roots: Vec<PathBuf>,
    cache: Mutex<HashMap<PathBuf, (SystemTime, Cached)>>,
}

impl FileSource {
    pub fn new(roots: Vec<PathBuf>) -> FileSource {
        FileSource {
            roots,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The file at `rel` in the first root that has it, confined to that root.
    pub fn resolve(&self, rel: &str) -> Option<PathBuf> {
        for root in &self.roots {
            let Ok(root) = root.canonicalize() else {
                continue;
            };
            let Ok(p) = root.join(rel).canonicalize() else {
                continue;
            };
            if p.starts_with(&root) && p.is_file() {
                return Some(p);
            }
        }
        None
    }

    /// The file's bytes (from the cache when unchanged).
    pub async fn read(&self, path: &Path) -> std::io::Result<Cached> {
        let meta = tokio::fs::metadata(path).await?;
        let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        if let Some((t, data)) = self.cache.lock().ok().and_then(|c| c.get(path).cloned()) {
            if t == mtime {
                return Ok(data);
            }
        }
        let data = Arc::new(tokio::fs::read(path).await?);
        if meta.len() <= CACHE_MAX_FILE {
            if let Ok(mut c) = self.cache.lock() {
                c.insert(path.to_path_buf(), (mtime, data.clone()));
            }
        }
        Ok(data)
    }
}

/// How many transfers the service runs at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// In all.
    pub max_transfers: usize,
    /// From one client address (a PXE client fetches its files one at a time).
    pub per_client: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_transfers: 1024,
            per_client: 16,
        }
    }
}

/// Transfers running now, in all and per client.
#[derive(Default)]
struct Running {
    total: usize,
    by_client: HashMap<IpAddr, usize>,
}

/// A transfer's place in [`Running`], given back when dropped.
struct Slot {
    running: Arc<Mutex<Running>>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut r = self.running.lock().unwrap_or_else(|p| p.into_inner());
        r.total = r.total.saturating_sub(1);
        if let Some(n) = r.by_client.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                r.by_client.remove(&self.ip);
            }
        }
    }
}

/// A slot for a transfer to `ip`, or why there is none.
fn take_slot(running: &Arc<Mutex<Running>>, limits: Limits, ip: IpAddr) -> Option<Slot> {
    let mut r = running.lock().unwrap_or_else(|p| p.into_inner());
    if r.total >= limits.max_transfers {
        return None;
    }
    let n = r.by_client.entry(ip).or_insert(0);
    if *n >= limits.per_client {
        return None;
    }
    *n += 1;
    r.total += 1;
    Some(Slot {
        running: running.clone(),
        ip,
    })
}

/// A finished transfer, for the boot trace.
#[derive(Debug, Clone)]
pub struct Sent {
    pub peer: SocketAddr,
    pub path: String,
    pub size: u64,
}

/// Serves TFTP on `sock` until cancelled. `on_sent` hears of every completed transfer.
pub async fn serve(
    sock: UdpSocket,
    files: Arc<FileSource>,
    limits: Limits,
    metrics: Arc<Metrics>,
    on_sent: Arc<dyn Fn(Sent) + Send + Sync>,
    cancel: CancellationToken,
) -> Result<()> {
    let sock = Arc::new(sock);
    let running = Arc::new(Mutex::new(Running::default()));
    let mut buf = vec![0u8; 2048];
    loop {
        let (n, peer) = tokio::select! {
            r = sock.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!("TFTP recv: {e}");
                    continue;
                }
            },
            _ = cancel.cancelled() => return Ok(()),
        };
        metrics.inc("tftp_requests");
        let req = match tftp::parse_request(&buf[..n]) {
            Ok(r) => r,
            Err(refused) => {
                metrics.inc("tftp_refused");
                tracing::debug!(peer = %peer, "TFTP refused: {refused}");
                let _ = sock
                    .send_to(&tftp::error_packet(refused.code, &refused.message), peer)
                    .await;
                continue;
            }
        };
        let Some(slot) = take_slot(&running, limits, peer.ip()) else {
            metrics.inc("tftp_refused_busy");
            let _ = sock
                .send_to(
                    &tftp::error_packet(ErrorCode::NotDefined, "server busy: too many transfers"),
                    peer,
                )
                .await;
            continue;
        };
        let (files, metrics, on_sent, cancel) = (
            files.clone(),
            metrics.clone(),
            on_sent.clone(),
            cancel.clone(),
        );
        let main = sock.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match transfer(&req, peer, &files, &main, cancel).await {
                Ok(Some(size)) => {
                    metrics.inc("tftp_sent");
                    on_sent(Sent {
                        peer,
                        path: req.path.clone(),
                        size,
                    });
                }
                Ok(None) => metrics.inc("tftp_aborted"),
                Err(e) => {
                    metrics.inc("tftp_errors");
                    tracing::debug!(peer = %peer, file = %req.path, "TFTP transfer failed: {e}");
                }
            }
        });
    }
}

/// One transfer; `Some(size)` when the client acknowledged the whole file.
async fn transfer(
    req: &ReadRequest,
    peer: SocketAddr,
    files: &FileSource,
    main: &UdpSocket,
    cancel: CancellationToken,
) -> std::io::Result<Option<u64>> {
    let Some(path) = files.resolve(&req.path) else {
        let _ = main
            .send_to(
                &tftp::error_packet(ErrorCode::FileNotFound, "file not found"),
                peer,
            )
            .await;
        return Ok(None);
    };
    let data = files.read(&path).await?;
    // A new TID: our own port for this transfer, talking only to the requester's.
    let local = main.local_addr()?;
    let sock = UdpSocket::bind(SocketAddr::new(local.ip(), 0)).await?;
    sock.connect(peer).await?;
    let (mut t, first) = Transfer::start(req, data.len() as u64);
    let oack = match &first {
        Step::Send(p) => p.clone(),
        _ => Vec::new(),
    };
    let mut step = first;
    let mut pkt = Vec::with_capacity(usize::from(t.blksize) + 4);
    let mut buf = vec![0u8; 1024];
    loop {
        match step {
            Step::Send(ref p) => {
                sock.send(p).await?;
            }
            Step::SendBlocks { first, last } => {
                for n in first..=last {
                    let (start, len) = t.block_range(n);
                    pkt.clear();
                    pkt.extend_from_slice(&tftp::data_header(n));
                    pkt.extend_from_slice(&data[start as usize..start as usize + len]);
                    sock.send(&pkt).await?;
                }
            }
            Step::Wait => {}
            Step::Done => return Ok(Some(data.len() as u64)),
            Step::Abort(p) => {
                if !p.is_empty() {
                    let _ = sock.send(&p).await;
                }
                return Ok(None);
            }
        }
        step = tokio::select! {
            r = tokio::time::timeout(t.timeout, sock.recv(&mut buf)) => match r {
                Ok(Ok(n)) => t.on_datagram(&buf[..n]),
                Ok(Err(e)) => return Err(e),
                Err(_) => t.on_timeout(&oack),
            },
            _ = cancel.cancelled() => return Ok(None),
        };
    }
}

/// Binds the TFTP request socket.
pub fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}
