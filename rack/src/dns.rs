//! The rack's DNS server: hickory-server receives the queries (UDP and TCP on `--dns-bind`, port
//! 53), [`Handler`] answers each from the zones `rack_proto::dns` built from the snapshot and this
//! rack's leases, forwards other names to `--dns-forwarder`s for clients inside managed subnets, and
//! refuses everyone else. The zones are rebuilt (and the SOA serial bumped) when the snapshot, this
//! rack's leases or its own addresses change, so a new lease resolves here at once and on the other
//! racks as soon as the region's snapshot carries it.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use hickory_server::proto::op::{Edns, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::{DNSClass, Record};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use rack_proto::dns::{next_serial, Decision, Inputs, Zones};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::dhcp::LeaseStore;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::state::Served;

/// `--dns-bind`, `--dns-forwarder`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    pub bind: SocketAddr,
    pub forwarders: Vec<SocketAddr>,
}

/// How long one forwarder gets to answer.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the leases and the rack's addresses are looked at.
const TICK: Duration = Duration::from_millis(250);

/// Answers queries from the zones in effect.
pub struct Handler {
    zones: Arc<RwLock<Arc<Zones>>>,
    forwarders: Vec<SocketAddr>,
    metrics: Arc<Metrics>,
    queries: Arc<std::sync::atomic::AtomicU64>,
    answered: Arc<std::sync::atomic::AtomicU64>,
}

impl Handler {
    fn zones(&self) -> Arc<Zones> {
        match self.zones.read() {
            Ok(z) => z.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

async fn send<R: ResponseHandler>(
    mut rh: R,
    request: &Request,
    meta: Metadata,
    edns: Option<&Edns>,
    answers: &[&Record],
    authority: &[&Record],
    additional: &[&Record],
) -> ResponseInfo {
    let mut b = MessageResponseBuilder::from_message_request(request);
    if let Some(e) = edns {
        b.edns(e);
    }
    let resp = b.build(
        meta,
        answers.iter().copied(),
        authority.iter().copied(),
        std::iter::empty(),
        additional.iter().copied(),
    );
    match rh.send_response(resp).await {
        Ok(info) => info,
        Err(e) => {
            tracing::debug!("DNS answer not sent: {e}");
            let mut m = meta;
            m.response_code = ResponseCode::ServFail;
            ResponseInfo::from(hickory_server::proto::op::Header {
                metadata: m,
                counts: Default::default(),
            })
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: hickory_server::net::runtime::Time>(
        &self,
        request: &Request,
        rh: R,
    ) -> ResponseInfo {
        use std::sync::atomic::Ordering::Relaxed;
        let m = &self.metrics;
        self.queries.fetch_add(1, Relaxed);
        let mut meta = Metadata::response_from_request(&request.metadata);
        let resp_edns = request.edns.as_ref().map(|e| {
            let mut r = Edns::new();
            r.set_max_payload(e.max_payload().max(512));
            r.set_version(0);
            r
        });
        let edns = resp_edns.as_ref();
        let zones = self.zones();
        meta.recursion_available = !self.forwarders.is_empty();
        let refuse = |mut meta: Metadata, code: ResponseCode| {
            meta.response_code = code;
            meta
        };
        if !zones.allows(request.src().ip()) {
            m.inc("dns_refused_client");
            let meta = refuse(meta, ResponseCode::Refused);
            return send(rh, request, meta, edns, &[], &[], &[]).await;
        }
        if request.metadata.message_type != MessageType::Query
            || request.metadata.op_code != OpCode::Query
        {
            m.inc("dns_not_implemented");
            let meta = refuse(meta, ResponseCode::NotImp);
            return send(rh, request, meta, edns, &[], &[], &[]).await;
        }
        if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            let meta = refuse(meta, ResponseCode::BADVERS);
            return send(rh, request, meta, edns, &[], &[], &[]).await;
        }
        let queries = request.queries.queries();
        let [query] = queries else {
            m.inc("dns_malformed");
            let meta = refuse(meta, ResponseCode::FormErr);
            return send(rh, request, meta, edns, &[], &[], &[]).await;
        };
        if query.query_class() != DNSClass::IN {
            m.inc("dns_refused_class");
            let meta = refuse(meta, ResponseCode::Refused);
            return send(rh, request, meta, edns, &[], &[], &[]).await;
        }
        let recursion = request.metadata.recursion_desired;
        match zones.decide(
            query.name(),
            query.query_type(),
            recursion,
            !self.forwarders.is_empty(),
        ) {
            Decision::Answer(a) => {
                meta.authoritative = true;
                if a.nxdomain {
                    m.inc("dns_nxdomain");
                    meta.response_code = ResponseCode::NXDomain;
                } else {
                    self.answered.fetch_add(1, Relaxed);
                }
                send(
                    rh,
                    request,
                    meta,
                    edns,
                    &a.answers,
                    &a.authority,
                    &a.additional,
                )
                .await
            }
            Decision::Refuse => {
                m.inc("dns_refused_recursion");
                let meta = refuse(meta, ResponseCode::Refused);
                send(rh, request, meta, edns, &[], &[], &[]).await
            }
            Decision::Forward => {
                m.inc("dns_forwarded");
                match forward(&self.forwarders, request.as_slice()).await {
                    Some(up) => {
                        meta.response_code = up.metadata.response_code;
                        meta.truncation = up.metadata.truncation;
                        let ans: Vec<&Record> = up.answers.iter().collect();
                        let auth: Vec<&Record> = up.authorities.iter().collect();
                        let add: Vec<&Record> = up.additionals.iter().collect();
                        send(rh, request, meta, edns, &ans, &auth, &add).await
                    }
                    None => {
                        m.inc("dns_forward_failed");
                        let meta = refuse(meta, ResponseCode::ServFail);
                        send(rh, request, meta, edns, &[], &[], &[]).await
                    }
                }
            }
        }
    }
}

/// Asks each forwarder in turn (a fresh socket, so a fresh source port, per question); over TCP
/// when the UDP answer is truncated.
async fn forward(forwarders: &[SocketAddr], query: &[u8]) -> Option<Message> {
    for f in forwarders {
        match tokio::time::timeout(FORWARD_TIMEOUT, ask(*f, query)).await {
            Ok(Ok(m)) => return Some(m),
            Ok(Err(e)) => tracing::debug!(forwarder = %f, "DNS forwarder failed: {e}"),
            Err(_) => tracing::debug!(forwarder = %f, "DNS forwarder timed out"),
        }
    }
    None
}

/// A query ID nobody on the path can predict (the client's own is put back on the answer).
fn fresh_id() -> u16 {
    use std::hash::BuildHasher;
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // RandomState is seeded from the OS's randomness.
    (std::collections::hash_map::RandomState::new().hash_one(n) & 0xffff) as u16
}

/// Whether `up` answers `sent`: a response with its ID and the same question.
fn answers(up: &Message, sent: &Message) -> bool {
    up.metadata.id == sent.metadata.id
        && up.metadata.message_type == MessageType::Response
        && up.queries == sent.queries
}

async fn ask(to: SocketAddr, query: &[u8]) -> std::io::Result<Message> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let bad = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let mut sent = Message::from_vec(query).map_err(|e| bad(e.to_string()))?;
    // The upstream sees an ID of Kiln's choosing, not the client's: a spoofer must guess it and
    // the source port.
    let mut wire = query.to_vec();
    let id = fresh_id();
    wire[..2].copy_from_slice(&id.to_be_bytes());
    sent.metadata.id = id;
    let local: SocketAddr = if to.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = tokio::net::UdpSocket::bind(local).await?;
    sock.connect(to).await?;
    sock.send(&wire).await?;
    let mut buf = vec![0u8; 65_535];
    let msg = loop {
        let n = sock.recv(&mut buf).await?;
        match Message::from_vec(&buf[..n]) {
            // Only the answer to this question (a connected socket hears only the forwarder).
            Ok(m) if answers(&m, &sent) => break m,
            _ => continue,
        }
    };
    if !msg.metadata.truncation {
        return Ok(msg);
    }
    let mut tcp = tokio::net::TcpStream::connect(to).await?;
    let len = u16::try_from(wire.len()).map_err(|_| bad("query too long".into()))?;
    tcp.write_all(&len.to_be_bytes()).await?;
    tcp.write_all(&wire).await?;
    let n = usize::from(tcp.read_u16().await?);
    let mut body = vec![0u8; n];
    tcp.read_exact(&mut body).await?;
    let m = Message::from_vec(&body).map_err(|e| bad(e.to_string()))?;
    if !answers(&m, &sent) {
        return Err(bad("the TCP answer is not for this question".into()));
    }
    Ok(m)
}

/// What the zones were last built from (to rebuild only on a change).
fn fingerprint(
    etag: Option<&str>,
    leases: &[(rack_proto::Mac, Ipv4Addr)],
    servers: &[Ipv4Addr],
) -> u64 {
    let mut h = DefaultHasher::new();
    etag.hash(&mut h);
    leases.hash(&mut h);
    servers.hash(&mut h);
    h.finish()
}

/// This rack's bound, unexpired leases, in a stable order.
fn current_leases(store: &Mutex<LeaseStore>) -> Vec<(rack_proto::Mac, Ipv4Addr)> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let st = LeaseStore::lock(store);
    let mut out: Vec<_> = st
        .leases()
        .all()
        .filter(|l| l.state == rack_proto::leases::LeaseState::Bound && l.expires > now)
        .map(|l| (l.mac, l.ip))
        .collect();
    out.sort();
    out
}

/// The rack's own addresses inside managed subnets (the name server's A records).
fn own_addresses(served: &Served) -> Vec<Ipv4Addr> {
    let nets: Vec<ipnet::Ipv4Net> = served
        .netconf
        .subnets
        .iter()
        .filter(|s| s.managed)
        .map(|s| s.net)
        .collect();
    let mut out: Vec<Ipv4Addr> = crate::ifaces::list()
        .into_iter()
        .flat_map(|i| i.v4.into_iter().map(|(a, _)| a))
        .filter(|a| nets.iter().any(|n| n.contains(a)))
        .collect();
    out.sort();
    out.dedup();
    out
}

fn build(
    served: &Served,
    leases: &[(rack_proto::Mac, Ipv4Addr)],
    servers: &[Ipv4Addr],
    serial: u32,
) -> Zones {
    let empty = region_api_types::SnapshotDns::default();
    let (dns, machines, subnets) = match &served.snapshot {
        Some(s) => (&s.dns, s.machines.as_slice(), s.subnets.as_slice()),
        None => (&empty, &[][..], &[][..]),
    };
    Zones::build(
        Inputs {
            dns,
            machines,
            subnets,
            leases,
            servers,
        },
        serial,
    )
}

/// Whether forwarding to `f` reaches the server bound at `bind` (an address of this host on the
/// same port: one the host can bind to).
fn forwards_to_itself(bind: SocketAddr, f: SocketAddr) -> bool {
    if f.port() != bind.port() {
        return false;
    }
    if f.ip() == bind.ip() {
        return true;
    }
    bind.ip().is_unspecified()
        && (f.ip().is_loopback()
            || f.ip().is_unspecified()
            || std::net::UdpSocket::bind((f.ip(), 0)).is_ok())
}

/// Binds `cfg.bind` for UDP and TCP (before anything else starts: a port that is taken stops the
/// rack with a sentence saying so).
pub fn bind(cfg: &DnsConfig) -> Result<(std::net::UdpSocket, std::net::TcpListener)> {
    let taken = |proto: &str, e: std::io::Error| {
        Error::Config(format!(
            "cannot listen for DNS on {} ({proto}): {e}; another DNS server may hold the port: pass --dns-bind ADDR:PORT, or --no-dns",
            cfg.bind
        ))
    };
    for f in &cfg.forwarders {
        if forwards_to_itself(cfg.bind, *f) {
            return Err(Error::Config(format!(
                "--dns-forwarder {f} is this rack's own DNS server (--dns-bind {}): queries would loop; name an upstream resolver",
                cfg.bind
            )));
        }
    }
    let udp = std::net::UdpSocket::bind(cfg.bind).map_err(|e| taken("UDP", e))?;
    let tcp = std::net::TcpListener::bind(cfg.bind).map_err(|e| taken("TCP", e))?;
    udp.set_nonblocking(true)?;
    tcp.set_nonblocking(true)?;
    Ok((udp, tcp))
}

/// Serves DNS on the sockets [`bind`] made until `cancel`.
pub async fn serve(
    cfg: DnsConfig,
    sockets: (std::net::UdpSocket, std::net::TcpListener),
    mut rx: watch::Receiver<Arc<Served>>,
    store: Arc<Mutex<LeaseStore>>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) -> Result<()> {
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    };
    let mut serial = next_serial(0, now());
    let (mut leases, mut servers) = (current_leases(&store), own_addresses(&rx.borrow()));
    let mut last = fingerprint(rx.borrow().etag(), &leases, &servers);
    let zones = Arc::new(RwLock::new(Arc::new(build(
        &rx.borrow(),
        &leases,
        &servers,
        serial,
    ))));
    let handler = Handler {
        zones: zones.clone(),
        forwarders: cfg.forwarders.clone(),
        queries: metrics.counter("dns_queries"),
        answered: metrics.counter("dns_answered"),
        metrics,
    };
    // Queries are answered on a thread of their own (a single-threaded runtime: no work stealing or
    // cross-thread wake-ups per packet, measured 10+ % faster); this task keeps the zones fresh.
    let stop = cancel.child_token();
    let server_stop = stop.clone();
    let server = tokio::task::spawn_blocking(move || -> Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let udp = tokio::net::UdpSocket::from_std(sockets.0)?;
            let tcp = tokio::net::TcpListener::from_std(sockets.1)?;
            let mut server = hickory_server::Server::new(handler);
            server.register_socket(udp);
            server.register_listener(tcp, Duration::from_secs(5), 65_535);
            server_stop.cancelled().await;
            server
                .shutdown_gracefully()
                .await
                .map_err(|e| Error::Internal(format!("DNS server: {e}")))
        })
    });
    tracing::info!(bind = %cfg.bind, forwarders = ?cfg.forwarders, "DNS serving");
    let mut tick = tokio::time::interval(TICK);
    let mut ticks: u64 = 0;
    loop {
        let snapshot_changed = tokio::select! {
            _ = cancel.cancelled() => break,
            r = rx.changed() => if r.is_err() { break } else { true },
            _ = tick.tick() => false,
        };
        ticks += 1;
        leases = current_leases(&store);
        let served = rx.borrow_and_update().clone();
        // The rack's own addresses: on a new snapshot (new subnets), and every 5 s.
        if snapshot_changed || ticks.is_multiple_of(20) {
            servers = own_addresses(&served);
        }
        let fp = fingerprint(served.etag(), &leases, &servers);
        if fp == last {
            continue;
        }
        last = fp;
        serial = next_serial(serial, now());
        let z = build(&served, &leases, &servers, serial);
        tracing::debug!(serial, names = z.len(), "DNS zones rebuilt");
        match zones.write() {
            Ok(mut w) => *w = Arc::new(z),
            Err(p) => *p.into_inner() = Arc::new(z),
        }
    }
    stop.cancel();
    server
        .await
        .map_err(|e| Error::Internal(format!("DNS server thread: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_server::proto::op::Query;
    use hickory_server::proto::rr::{Name, RecordType};

    fn query(id: u16, name: &str) -> Message {
        let mut m = Message::query();
        m.metadata.id = id;
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        m
    }

    #[test]
    fn a_forwarder_that_is_the_rack_itself_is_refused() {
        let any: SocketAddr = "0.0.0.0:53".parse().unwrap();
        let lo: SocketAddr = "127.0.0.1:53".parse().unwrap();
        assert!(forwards_to_itself(any, lo));
        assert!(forwards_to_itself(lo, lo));
        assert!(forwards_to_itself(any, "127.0.0.53:53".parse().unwrap()));
        assert!(!forwards_to_itself(any, "127.0.0.1:5353".parse().unwrap()));
        assert!(!forwards_to_itself(lo, "127.0.0.2:53".parse().unwrap()));
        // An address this host does not have is somebody else's resolver.
        assert!(!forwards_to_itself(any, "192.0.2.53:53".parse().unwrap()));
        let cfg = DnsConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            forwarders: vec!["127.0.0.1:0".parse().unwrap()],
        };
        let e = bind(&cfg).unwrap_err().to_string();
        assert!(e.contains("would loop"), "{e}");
    }

    /// A real UDP peer on loopback answers first with another question, then with this one: only
    /// the second is taken, it was asked under an ID other than the client's.
    #[tokio::test]
    async fn forwarding_takes_only_the_answer_to_its_question_under_its_own_id() {
        let up = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = up.local_addr().unwrap();
        let client = query(0x1234, "example.org.");
        let wire = client.to_vec().unwrap();
        let peer = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let (n, from) = up.recv_from(&mut buf).await.unwrap();
            let asked = Message::from_vec(&buf[..n]).unwrap();
            let mut wrong = query(asked.metadata.id, "evil.example.");
            wrong.metadata.message_type = MessageType::Response;
            up.send_to(&wrong.to_vec().unwrap(), from).await.unwrap();
            let mut right = asked.clone();
            right.metadata.message_type = MessageType::Response;
            right.metadata.response_code = ResponseCode::NXDomain;
            up.send_to(&right.to_vec().unwrap(), from).await.unwrap();
            asked.metadata.id
        });
        let got = tokio::time::timeout(Duration::from_secs(5), ask(to, &wire))
            .await
            .unwrap()
            .unwrap();
        let upstream_id = peer.await.unwrap();
        assert_eq!(got.queries, client.queries);
        assert_eq!(got.metadata.response_code, ResponseCode::NXDomain);
        assert_ne!(upstream_id, 0x1234, "the client's ID went upstream");
    }
}
