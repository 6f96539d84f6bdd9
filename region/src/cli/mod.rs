//! The `kiln` command line: servers (`region`, `all-in-one`), admin commands that open the database
//! directly (`admin`, `db`), client commands that use the REST API (`machines`, `subnets`, `images`,
//! ...), and `bench`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub mod admin;
pub mod bench;
pub mod client;
pub mod commands;
pub mod deploy;
pub mod dns;
pub mod images;
pub mod output;
pub mod pods;
pub mod racks;
pub mod scripts;
pub mod settings;
pub mod subnets;
pub mod users;
pub mod volumes;

/// Kiln: bare-metal provisioning.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the region controller (API, database, lifecycle).
    Region(ServerArgs),
    /// Run region and rack in one process (the single-box default).
    #[cfg(feature = "all-in-one")]
    AllInOne(AllInOneArgs),
    /// Run a rack controller: DHCP, TFTP and HTTP boot for the machines on its networks.
    #[cfg(feature = "all-in-one")]
    Rack(RackArgs),
    /// Administration that works on the database directly (no token needed).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Database maintenance.
    #[command(subcommand)]
    Db(DbCommand),
    /// Machines (through the API: KILN_URL, KILN_TOKEN).
    Machines(client::ClientArgs<commands::MachinesCommand>),
    /// Subnets (through the API).
    Subnets(client::ClientArgs<subnets::SubnetsCommand>),
    /// Boot images / boot resources (through the API).
    Images(client::ClientArgs<images::ImagesCommand>),
    /// Commissioning scripts (through the API).
    Scripts(client::ClientArgs<scripts::ScriptsCommand>),
    /// Users (through the API; admins).
    Users(client::ClientArgs<users::UsersCommand>),
    /// API tokens (through the API).
    Tokens(client::ClientArgs<users::TokensCommand>),
    /// Your SSH public keys, which your deployed machines get (through the API).
    Sshkeys(client::ClientArgs<deploy::SshkeysCommand>),
    /// Rack controllers (through the API).
    Racks(client::ClientArgs<racks::RacksCommand>),
    /// The event log (through the API).
    Events(client::ClientArgs<racks::EventsCommand>),
    /// Root-on-iSCSI volumes (through the API).
    Volumes(client::ClientArgs<volumes::VolumesCommand>),
    /// Lifecycle and power settings changed at run time (through the API).
    Settings(client::ClientArgs<settings::SettingsCommand>),
    /// DNS domains and records every rack serves (through the API).
    Dns(client::ClientArgs<dns::DnsCommand>),
    /// KVM pods: libvirt hosts Kiln composes VMs on (through the API).
    Pods(client::ClientArgs<pods::PodsCommand>),
    /// Benchmarks of a running region.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// Where the database is, for commands that open it directly.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// TOML configuration file.
    #[arg(long, env = "KILN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (SQLite database, image store).
    #[arg(long, env = "KILN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// `postgres://…` or a SQLite path; default SQLite in the data directory.
    #[arg(long, env = "KILN_DATABASE_URL")]
    pub database_url: Option<String>,
}

/// Flags of `kiln region` and `kiln all-in-one`.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Address of the API (default 0.0.0.0:5240).
    #[arg(long, env = "KILN_LISTEN")]
    pub listen: Option<std::net::SocketAddr>,
    /// Seconds before commissioning/deploying/testing fail (default 1800).
    #[arg(long, env = "KILN_NODE_TIMEOUT")]
    pub node_timeout: Option<u64>,
    /// Whether machines enlisted by PXE booting start commissioning at once (default true).
    #[arg(long, env = "KILN_ENLIST_COMMISSION")]
    pub enlist_commission: Option<bool>,
    /// `text` or `json` logs.
    #[arg(long, env = "KILN_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// HTTPS on the API port: `auto` (unless it listens on loopback only), `on`, or `off`.
    #[arg(long, env = "KILN_TLS", value_parser = ["auto", "on", "off"])]
    pub tls: Option<String>,
    /// Serve plain HTTP even on a network address (same as `--tls off`).
    #[arg(long, conflicts_with = "tls")]
    pub plain_http: bool,
    /// Your certificate chain (PEM, leaf first) instead of one from the region's own CA.
    #[arg(long, env = "KILN_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The key of --tls-cert (PEM).
    #[arg(long, env = "KILN_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// A DNS name or address the generated certificate also covers (repeatable).
    #[arg(long = "tls-name")]
    pub tls_names: Vec<String>,
    /// Print the effective configuration (secrets hidden) and exit.
    #[arg(long)]
    pub print_config: bool,
}

/// Flags of `kiln all-in-one`: the region's, plus the rack's.
#[derive(Debug, Clone, Args)]
pub struct AllInOneArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub rack: RackServiceArgs,
}

/// Rack service settings shared by `kiln rack` and `kiln all-in-one`.
#[derive(Debug, Clone, Args)]
pub struct RackServiceArgs {
    /// Do not serve DHCP (other services keep running).
    #[arg(long, env = "KILN_NO_DHCP")]
    pub no_dhcp: bool,
    /// Do not answer IPv6 router solicitations on managed networks (iPXE then waits ~13 s for
    /// IPv6 autoconfiguration on networks that have no IPv6 router).
    #[arg(long, env = "KILN_NO_RA")]
    pub no_ra: bool,
    /// DHCP server port.
    #[arg(long, default_value_t = 67, hide = true)]
    pub dhcp_port: u16,
    /// DHCP client port replies go to.
    #[arg(long, default_value_t = 68, hide = true)]
    pub dhcp_client_port: u16,
    /// Port of the rack's HTTP boot endpoint (MAAS's 5248).
    #[arg(long, default_value_t = 5248)]
    pub http_port: u16,
    /// The rack's name (default: the host name).
    #[arg(long, env = "KILN_RACK_NAME")]
    pub rack_name: Option<String>,
    /// Where TFTP listens.
    #[arg(long, env = "KILN_TFTP_BIND", default_value = "0.0.0.0:69")]
    pub tftp_bind: std::net::SocketAddr,
    /// TFTP transfers at once; more are refused with an ERROR.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub tftp_max_transfers: u32,
    /// TFTP transfers at once to one client address.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub tftp_max_per_client: u32,
    /// Where the HTTP boot service listens (its port is the one handed to iPXE unless --http-port says otherwise).
    #[arg(long, env = "KILN_HTTP_BIND", default_value = "0.0.0.0:5248")]
    pub http_bind: std::net::SocketAddr,
    /// Root on iSCSI: the volume store (golden volumes and per-machine clones; XFS or btrfs
    /// clone copy-on-write). Needs --iscsi-portal and a running tgtd.
    #[arg(long, env = "KILN_ISCSI_STORE", requires = "iscsi_portal")]
    pub iscsi_store: Option<PathBuf>,
    /// Where initiators log in: IP[:PORT] (port 3260 by default), an address of this host.
    #[arg(long, env = "KILN_ISCSI_PORTAL", value_parser = parse_portal, requires = "iscsi_store")]
    pub iscsi_portal: Option<rack_proto::iscsi::Portal>,
    /// The iSCSI target driver (tgt; LIO needs configfs, which is not here).
    #[arg(long, env = "KILN_ISCSI_DRIVER", default_value = "tgt")]
    pub iscsi_driver: String,
    /// tgtd's control port (`tgtd -C N`; 0 is tgtd's default).
    #[arg(long, env = "KILN_TGT_CONTROL_PORT", default_value_t = 0)]
    pub tgt_control_port: u16,
    /// Do not serve DNS (machines' names, reverse zones, forwarding).
    #[arg(long, env = "KILN_NO_DNS")]
    pub no_dns: bool,
    /// Where DNS listens (UDP and TCP).
    #[arg(long, env = "KILN_DNS_BIND", default_value = "0.0.0.0:53")]
    pub dns_bind: std::net::SocketAddr,
    /// An upstream resolver for names outside Kiln's zones, IP[:PORT] (repeatable; none: such
    /// queries are refused).
    #[arg(long = "dns-forwarder", value_name = "IP[:PORT]", value_parser = parse_forwarder)]
    pub dns_forwarders: Vec<std::net::SocketAddr>,
    /// Do not run the caching HTTP proxy for machines.
    #[arg(long, env = "KILN_NO_PROXY")]
    pub no_proxy: bool,
    /// Where the proxy listens (deployed machines' apt uses it).
    #[arg(long, env = "KILN_PROXY_BIND", default_value = "0.0.0.0:8000")]
    pub proxy_bind: std::net::SocketAddr,
    /// A parent proxy for everything the rack's proxy fetches (http://host:port).
    #[arg(long, env = "KILN_PROXY_UPSTREAM", value_name = "URL")]
    pub proxy_upstream: Option<String>,
    /// The proxy cache's size cap, MiB (least recently used objects go first).
    #[arg(long, env = "KILN_PROXY_CACHE_MIB", default_value_t = 4096)]
    pub proxy_cache_mib: u64,
}

fn parse_forwarder(s: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(a) = s.parse::<std::net::SocketAddr>() {
        return Ok(a);
    }
    s.parse::<std::net::IpAddr>()
        .map(|ip| std::net::SocketAddr::new(ip, 53))
        .map_err(|_| format!("'{s}' is not an address (IP or IP:PORT)"))
}

fn parse_portal(s: &str) -> Result<rack_proto::iscsi::Portal, String> {
    rack_proto::iscsi::Portal::parse(s)
}

/// Flags of `kiln rack`.
#[derive(Debug, Clone, Args)]
pub struct RackArgs {
    /// The region's URL, e.g. https://region:5240; several regions on one database comma
    /// separated, in the order of preference (the rack moves to the next when one is away).
    #[arg(long, env = "KILN_REGION_URL")]
    pub region_url: String,
    /// Deprecated (use --token-file): file holding the shared rack secret.
    #[arg(long, env = "KILN_RACK_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,
    /// File holding a one-time enrolment token (`kiln admin rack-token`), instead of --secret-file.
    #[arg(
        long,
        env = "KILN_RACK_TOKEN_FILE",
        required_unless_present = "secret_file"
    )]
    pub token_file: Option<PathBuf>,
    /// The region's CA certificate (PEM; `<data dir>/tls/ca.pem` on the region): its HTTPS
    /// certificate must chain to it. Unset: the public roots (an operator's own certificate).
    #[arg(long, env = "KILN_REGION_CA")]
    pub region_ca: Option<PathBuf>,
    /// Where the rack keeps its snapshot, leases, event queue and credentials.
    #[arg(long, env = "KILN_RACK_DATA_DIR", default_value = "/var/lib/kiln-rack")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub service: RackServiceArgs,
    /// `text` or `json` logs.
    #[arg(long, env = "KILN_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

#[cfg(feature = "all-in-one")]
impl RackServiceArgs {
    /// The rack configuration for these flags.
    pub fn config(&self, region_url: &str, secret: &str, data_dir: PathBuf) -> rack::RackConfig {
        let mut c = rack::RackConfig::new(region_url, secret, data_dir);
        c.dhcp_enabled = !self.no_dhcp;
        c.ra_enabled = !self.no_ra;
        c.dhcp_port = self.dhcp_port;
        c.dhcp_client_port = self.dhcp_client_port;
        c.http_port = self.http_port;
        c.tftp_bind = self.tftp_bind;
        c.tftp_limits = rack::tftp::Limits {
            max_transfers: self.tftp_max_transfers as usize,
            per_client: self.tftp_max_per_client as usize,
        };
        c.http_bind = self.http_bind;
        if let (Some(store), Some(portal)) = (&self.iscsi_store, self.iscsi_portal) {
            c.iscsi = Some(rack::config::IscsiConfig {
                store: store.clone(),
                portal,
                driver: self.iscsi_driver.clone(),
                control_port: self.tgt_control_port,
            });
        }
        if let Some(n) = &self.rack_name {
            c.name = n.clone();
        }
        if !self.no_proxy {
            c.proxy = Some(rack::proxy::ProxyConfig {
                bind: self.proxy_bind,
                upstream: self.proxy_upstream.clone(),
                cache_bytes: self.proxy_cache_mib.saturating_mul(1 << 20),
            });
        }
        if !self.no_dns {
            c.dns = Some(rack::dns::DnsConfig {
                bind: self.dns_bind,
                forwarders: self.dns_forwarders.clone(),
            });
        }
        c
    }
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a user. The password is read from standard input.
    CreateUser {
        name: String,
        /// Make the user an administrator.
        #[arg(long)]
        admin: bool,
        /// Read the password from standard input (required: passwords never go on the command line).
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Create an API token for a user; prints only the token.
    CreateToken {
        /// The user the token acts as.
        name: String,
        /// A label for the token.
        #[arg(long, default_value = "cli")]
        token_name: String,
        /// What the token may do: read, operator or admin (default: all the user may).
        #[arg(long, value_parser = users::parse_scope)]
        scope: Option<region_api_types::TokenScope>,
        /// When it stops working: after a time (`30d`, `12h`) or at one (RFC 3339).
        #[arg(long)]
        expires: Option<String>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Deprecated (use rack-token): print the shared secret racks could register with.
    RackSecret {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Print a one-time enrolment token for one rack (`kiln rack --token-file`); it carries the
    /// region CA's fingerprint, which the rack pins.
    RackToken {
        /// How long it may be used: 90m, 1h, 2d (at most 7d).
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// The rack is approved at once (otherwise: `kiln racks approve ID`).
        #[arg(long)]
        auto_approve: bool,
        /// A network whose BMCs the rack drives (IPv4 CIDR, repeatable; 0.0.0.0/0: all).
        #[arg(long = "power-network")]
        power_networks: Vec<String>,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Apply pending migrations and exit.
    Migrate {
        #[command(flatten)]
        db: DbArgs,
    },
}
