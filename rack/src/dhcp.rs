//! The DHCP shell: sockets and the lease journal around `rack_proto::dhcp::handle`.
//!
//! Sockets, the way dnsmasq does it: one UDP socket on port 67 bound (`SO_BINDTODEVICE`) to each
//! interface that has an address inside a subnet the region marks managed, so direct clients are
//! answered only there; plus one unbound socket that answers **relayed** requests only (giaddr set,
//! inside a managed subnet), whichever interface they arrive on. The set is reconciled whenever
//! the snapshot changes and every 10 s (interfaces come and go).
//!
//! A reply to a client that has no address yet and did not ask for broadcast goes unicast to its
//! hardware address: a neighbour entry (`ip neigh replace`) is added first, as dnsmasq injects an
//! ARP entry; if that fails the reply is broadcast.
//!
//! Leases: every change is appended to `leases.jsonl` and fsynced before the reply is sent (so a
//! restart, even a power cut, never hands one address to two clients): see [`crate::journal`]. The
//! next datagram is handled while a reply waits for its sync, so syncs are shared (group commit).
//!
//! A listener that stops (a panic, a socket error) is started again by the reconcile loop, which
//! a stopping listener wakes; a lock poisoned by a panic is recovered.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rack_proto::dhcp::{self, BootConf, Dest, Ingress};
use rack_proto::leases::Leases;
use region_api_types::RackEvent;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::RackConfig;
use crate::error::{Error, Result};
use crate::journal::{Ack, Journal};
use crate::metrics::Metrics;
use crate::region::EventQueue;
use crate::state::Served;

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The lease table, and the journal its changes go to (in the order they were made).
pub struct LeaseStore {
    leases: Leases,
    journal: Journal,
}

impl LeaseStore {
    /// Replays `leases.jsonl` (compacting it) and starts its journal thread.
    pub fn open(dir: &Path, metrics: Arc<Metrics>) -> Result<LeaseStore> {
        let (journal, leases) = Journal::open(dir, metrics)?;
        Ok(LeaseStore { leases, journal })
    }

    pub fn leases(&self) -> &Leases {
        &self.leases
    }

    /// The MAC currently holding `ip`, if any.
    pub fn mac_of(&self, ip: Ipv4Addr) -> Option<[u8; 6]> {
        self.leases.by_ip(ip).map(|l| l.mac)
    }

    /// The store, even if a thread panicked holding it: the table is changed one whole
    /// [`LeaseChange`] at a time, so it is never left half-written, and DHCP must keep answering.
    pub fn lock(store: &Mutex<LeaseStore>) -> MutexGuard<'_, LeaseStore> {
        store.lock().unwrap_or_else(|poisoned| {
            tracing::error!("the lease table's lock was poisoned by a panic; recovering it");
            store.clear_poison();
            poisoned.into_inner()
        })
    }
}

/// Answers one datagram from the lease table: the outcome, and the journal acknowledgement its
/// reply must wait for (None: nothing changed).
fn handle_locked(
    store: &Mutex<LeaseStore>,
    msg: &dhcp::Message,
    ingress: &Ingress,
    served: &Served,
    boot: &BootConf,
) -> (dhcp::Outcome, Option<Ack>) {
    let mut store = LeaseStore::lock(store);
    let mut o = dhcp::handle(
        msg,
        ingress,
        &served.netconf,
        boot,
        &mut store.leases,
        now_secs(),
    );
    let ack = (!o.changes.is_empty()).then(|| store.journal.append(std::mem::take(&mut o.changes)));
    (o, ack)
}

/// A socket and the interface it serves (`None`: the relay socket).
struct Listener {
    iface: Option<(String, Ipv4Addr)>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// Replies waiting for the journal at once, at most; beyond that a request is dropped (and
/// counted), as a full socket buffer would, rather than queueing without bound behind a slow disk.
const IN_FLIGHT_MAX: usize = 4096;

fn bind(port: u16, device: Option<&str>) -> Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_broadcast(true)?;
    if let Some(d) = device {
        s.bind_device(Some(d.as_bytes()))?;
    }
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::from(([0, 0, 0, 0], port)).into())?;
    Ok(UdpSocket::from_std(s.into())?)
}

/// Interfaces to serve: those with an address inside a managed subnet → (name, that address).
fn wanted(served: &Served) -> HashSet<(String, Ipv4Addr)> {
    let mut out = HashSet::new();
    for i in crate::ifaces::list() {
        for (addr, _) in &i.v4 {
            if served.netconf.managed_subnet_for(*addr).is_some() {
                out.insert((i.name.clone(), *addr));
            }
        }
    }
    out
}

struct Shared {
    cfg: RackConfig,
    rx: watch::Receiver<Arc<Served>>,
    store: Arc<Mutex<LeaseStore>>,
    events: EventQueue,
    metrics: Arc<Metrics>,
    /// Neighbour entries this rack added, and when.
    neigh: Mutex<HashMap<(String, Ipv4Addr), Added>>,
    /// Our source address towards each relay.
    relay_src: Mutex<HashMap<Ipv4Addr, Ipv4Addr>>,
    in_flight: Arc<tokio::sync::Semaphore>,
    /// Wakes the reconcile loop when a listener stops.
    exited: tokio::sync::mpsc::UnboundedSender<()>,
}

/// Tells the reconcile loop its listener ended, however it ended (a panic included).
struct ExitGuard(tokio::sync::mpsc::UnboundedSender<()>);

impl Drop for ExitGuard {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

fn start_listener(
    shared: &Arc<Shared>,
    sock: UdpSocket,
    iface: Option<(String, Ipv4Addr)>,
    parent: &CancellationToken,
) -> Listener {
    let cancel = parent.child_token();
    let task = tokio::spawn(listen(
        shared.clone(),
        Arc::new(sock),
        iface.clone(),
        cancel.clone(),
    ));
    Listener {
        iface,
        cancel,
        task,
    }
}

/// Serves DHCP until cancelled.
pub async fn serve(
    cfg: RackConfig,
    mut rx: watch::Receiver<Arc<Served>>,
    store: Arc<Mutex<LeaseStore>>,
    events: EventQueue,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) -> Result<()> {
    if !cfg.dhcp_enabled {
        cancel.cancelled().await;
        return Ok(());
    }
    let (exited, mut exited_rx) = tokio::sync::mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        rx: rx.clone(),
        cfg: cfg.clone(),
        store,
        events,
        metrics,
        neigh: Mutex::new(HashMap::new()),
        relay_src: Mutex::new(HashMap::new()),
        in_flight: Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT_MAX)),
        exited,
    });
    let relay_sock = bind(cfg.dhcp_port, None).map_err(|e| {
        Error::Config(format!(
            "cannot listen for DHCP on port {}: {e}",
            cfg.dhcp_port
        ))
    })?;
    let mut listeners: Vec<Listener> = vec![start_listener(&shared, relay_sock, None, &cancel)];

    loop {
        // A listener that stopped on its own (a panic, a socket gone bad) is started again.
        listeners.retain(|l| {
            if l.task.is_finished() && !cancel.is_cancelled() {
                let on = l
                    .iface
                    .as_ref()
                    .map_or("the relay socket", |i| i.0.as_str());
                tracing::error!("DHCP listener on {on} stopped; starting it again");
                shared.metrics.inc("dhcp_listener_restarts");
                false
            } else {
                true
            }
        });
        if !listeners.iter().any(|l| l.iface.is_none()) {
            match bind(cfg.dhcp_port, None) {
                Ok(sock) => listeners.push(start_listener(&shared, sock, None, &cancel)),
                Err(e) => tracing::error!("DHCP: cannot listen for relayed requests: {e}"),
            }
        }
        let want = wanted(&rx.borrow());
        // Stop listeners no longer wanted, start the new ones.
        listeners.retain(|l| match &l.iface {
            Some(i) if !want.contains(i) => {
                tracing::info!(iface = %i.0, "DHCP: no longer serving {} ({})", i.0, i.1);
                l.cancel.cancel();
                false
            }
            _ => true,
        });
        for w in want {
            if listeners.iter().any(|l| l.iface.as_ref() == Some(&w)) {
                continue;
            }
            match bind(cfg.dhcp_port, Some(&w.0)) {
                Ok(sock) => {
                    tracing::info!(iface = %w.0, "DHCP: serving {} ({})", w.0, w.1);
                    let l = start_listener(&shared, sock, Some(w.clone()), &cancel);
                    if cfg.ra_enabled {
                        let mac = crate::ifaces::list()
                            .into_iter()
                            .find(|i| i.name == w.0)
                            .and_then(|i| i.mac.as_deref().and_then(rack_proto::parse_mac));
                        let (name, metrics, c) =
                            (w.0.clone(), shared.metrics.clone(), l.cancel.clone());
                        tokio::spawn(crate::ra::serve(name, mac, metrics, c));
                    }
                    listeners.push(l);
                }
                Err(e) => tracing::warn!(iface = %w.0, "DHCP: cannot listen on {}: {e}", w.0),
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            r = rx.changed() => if r.is_err() { break },
            _ = exited_rx.recv() => {
                // Give a listener that fails at once a moment before it is tried again.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            _ = tokio::time::sleep(Duration::from_secs(10)) => {}
        }
    }
    for l in &listeners {
        l.cancel.cancel();
    }
    Ok(())
}

async fn listen(
    shared: Arc<Shared>,
    sock: Arc<UdpSocket>,
    iface: Option<(String, Ipv4Addr)>,
    cancel: CancellationToken,
) {
    let _guard = ExitGuard(shared.exited.clone());
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, peer) = tokio::select! {
            r = sock.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    shared.metrics.inc("dhcp_recv_error");
                    tracing::debug!("DHCP recv: {e}");
                    continue;
                }
            },
            _ = cancel.cancelled() => return,
        };
        shared.metrics.inc("dhcp_received");
        let msg = match dhcp::decode_checked(&buf[..n]) {
            Ok(m) => m,
            Err(why) => {
                shared.metrics.inc("dhcp_malformed");
                tracing::debug!(peer = %peer, "DHCP: dropped malformed packet ({why:?})");
                continue;
            }
        };
        let giaddr = msg.giaddr();
        let served = shared.rx.borrow().clone();
        if !giaddr.is_unspecified() {
            let std::net::IpAddr::V4(source) = peer.ip() else {
                continue;
            };
            if !dhcp::relay_allowed(&served.netconf, giaddr, source) {
                shared.metrics.inc("dhcp_ignored_relay_not_listed");
                tracing::debug!(peer = %peer, giaddr = %giaddr, "DHCP: relayed by an address the subnet does not list; dropped");
                continue;
            }
        }
        let ingress = match &iface {
            Some((_, addr)) => Ingress { addr: *addr },
            None => {
                // The relay socket answers relayed requests only.
                if giaddr.is_unspecified() {
                    continue;
                }
                match source_towards(&shared, giaddr).await {
                    Some(addr) => Ingress { addr },
                    None => continue,
                }
            }
        };
        let boot = BootConf {
            http_port: shared.cfg.http_port,
            dns: shared.cfg.dns.as_ref().map(|d| match d.bind.ip() {
                std::net::IpAddr::V4(v4) => v4,
                std::net::IpAddr::V6(_) => std::net::Ipv4Addr::UNSPECIFIED,
            }),
        };
        let (outcome, ack) = handle_locked(&shared.store, &msg, &ingress, &served, &boot);
        match ack {
            None => deliver(&shared, &sock, &iface, outcome).await,
            Some(ack) => {
                // The reply waits for its journal record; the next datagram need not (their
                // records share the next sync).
                let Ok(permit) = shared.in_flight.clone().try_acquire_owned() else {
                    shared.metrics.inc("dhcp_dropped_overload");
                    continue;
                };
                let (shared, sock, iface) = (shared.clone(), sock.clone(), iface.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    match ack.await {
                        Ok(Ok(())) => deliver(&shared, &sock, &iface, outcome).await,
                        // Not persisted means not promised: no reply rather than a duplicate.
                        _ => shared.metrics.inc("dhcp_withheld"),
                    }
                });
            }
        }
    }
}

/// Sends the reply of `outcome` (its records, if any, are on disk) and reports what it observed.
async fn deliver(
    shared: &Shared,
    sock: &UdpSocket,
    iface: &Option<(String, Ipv4Addr)>,
    outcome: dhcp::Outcome,
) {
    let at = chrono::Utc::now().to_rfc3339();
    for ob in outcome.observed {
        shared.events.push(RackEvent {
            mac: rack_proto::fmt_mac(&ob.mac),
            event_type: ob.event_type.to_string(),
            description: ob.description,
            at: at.clone(),
            ip: ob.ip.map(|i| i.to_string()),
        });
    }
    let (reply, dest) = match outcome.reply {
        Err(why) => {
            shared
                .metrics
                .inc(&format!("dhcp_ignored_{}", why.as_str()));
            return;
        }
        Ok(x) => x,
    };
    let Some(bytes) = dhcp::encode(&reply) else {
        shared.metrics.inc("dhcp_encode_error");
        return;
    };
    let client_port = shared.cfg.dhcp_client_port;
    let to = match dest {
        Dest::Relay(g) => SocketAddrV4::new(g, 67),
        Dest::Unicast(ip) => SocketAddrV4::new(ip, client_port),
        Dest::Broadcast => SocketAddrV4::new(Ipv4Addr::BROADCAST, client_port),
        Dest::Hardware { ip, mac } => match iface {
            Some((name, _)) if add_neighbour(shared, name, ip, mac).await => {
                SocketAddrV4::new(ip, client_port)
            }
            _ => SocketAddrV4::new(Ipv4Addr::BROADCAST, client_port),
        },
    };
    match sock.send_to(&bytes, to).await {
        Ok(_) => shared.metrics.inc("dhcp_replied"),
        Err(e) => {
            shared.metrics.inc("dhcp_send_error");
            tracing::warn!(to = %to, "DHCP send failed: {e}");
        }
    }
}

/// Our address on the way to `relay` (the server identifier relayed clients must use).
async fn source_towards(shared: &Shared, relay: Ipv4Addr) -> Option<Ipv4Addr> {
    if let Some(a) = shared
        .relay_src
        .lock()
        .ok()
        .and_then(|m| m.get(&relay).copied())
    {
        return Some(a);
    }
    let s = UdpSocket::bind("0.0.0.0:0").await.ok()?;
    s.connect(SocketAddrV4::new(relay, 67)).await.ok()?;
    let SocketAddr::V4(local) = s.local_addr().ok()? else {
        return None;
    };
    let addr = *local.ip();
    if let Ok(mut m) = shared.relay_src.lock() {
        m.insert(relay, addr);
    }
    Some(addr)
}

/// Adds a neighbour entry so a unicast reply reaches a client that has no address yet.
/// A neighbour entry this rack added: the MAC, and when.
type Added = ([u8; 6], std::time::Instant);

/// How long an added neighbour entry is trusted without adding it again.
const NEIGH_FRESH: Duration = Duration::from_secs(5);

async fn add_neighbour(shared: &Shared, iface: &str, ip: Ipv4Addr, mac: [u8; 6]) -> bool {
    let key = (iface.to_string(), ip);
    // A kernel entry added as "reachable" goes stale and then fails once the machine is gone (a VM
    // powered off, a machine rebooting): re-add it unless it was added a moment ago.
    let fresh = shared
        .neigh
        .lock()
        .ok()
        .and_then(|m| m.get(&key).copied())
        .is_some_and(|(m, at)| m == mac && at.elapsed() < NEIGH_FRESH);
    if fresh {
        return true;
    }
    let ok = tokio::process::Command::new("ip")
        .args([
            "neigh",
            "replace",
            &ip.to_string(),
            "lladdr",
            &rack_proto::fmt_mac(&mac),
            "dev",
            iface,
            "nud",
            "reachable",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success());
    if ok {
        if let Ok(mut m) = shared.neigh.lock() {
            m.insert(key, (mac, std::time::Instant::now()));
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use rack_proto::netconf::{NetConf, SubnetConf};

    /// A DHCPDISCOVER from `mac`, as the bytes a client sends.
    fn discover(mac: [u8; 6]) -> Vec<u8> {
        let mut p = vec![0u8; 236];
        p[0] = 1; // BOOTREQUEST
        p[1] = 1; // Ethernet
        p[2] = 6;
        p[4..8].copy_from_slice(&[0x12, 0x34, 0x56, 0x78]);
        p[28..34].copy_from_slice(&mac);
        p.extend_from_slice(&[99, 130, 83, 99, 53, 1, 1, 255]);
        p
    }

    fn served() -> Served {
        Served {
            snapshot: None,
            netconf: NetConf {
                subnets: vec![SubnetConf {
                    id: "s".into(),
                    net: "10.20.0.0/24".parse().unwrap(),
                    gateway: None,
                    dns: vec![],
                    domain: None,
                    dynamic: vec![(Ipv4Addr::new(10, 20, 0, 100), Ipv4Addr::new(10, 20, 0, 110))],
                    reserved: vec![],
                    routes: vec![],
                    managed: true,
                    ntp: vec![],
                    lease_time: None,
                    relays: vec![],
                }],
                lease_time: 600,
                ..NetConf::default()
            },
        }
    }

    #[tokio::test]
    async fn a_lock_poisoned_by_a_panic_still_answers_and_journals() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Mutex::new(
            LeaseStore::open(dir.path(), Arc::new(Metrics::default())).unwrap(),
        ));
        // A handler panics while it holds the table.
        let s = store.clone();
        let _ = std::thread::spawn(move || {
            let _held = s.lock().unwrap();
            panic!("a bug in a handler");
        })
        .join();
        assert!(store.is_poisoned());
        let msg = dhcp::decode_checked(&discover([2, 0, 0, 0, 0, 7])).unwrap();
        let ingress = Ingress {
            addr: Ipv4Addr::new(10, 20, 0, 2),
        };
        let boot = BootConf {
            http_port: 5248,
            dns: None,
        };
        let (o, ack) = handle_locked(&store, &msg, &ingress, &served(), &boot);
        assert!(o.reply.is_ok(), "no offer: {:?}", o.reply.err());
        ack.expect("an offer holds an address")
            .await
            .unwrap()
            .unwrap();
        assert!(!store.is_poisoned());
        let (back, _) = crate::journal::replay(&dir.path().join("leases.jsonl"));
        assert_eq!(back.len(), 1, "the offer is on disk before its reply");
    }
}
