//! Settings of `kiln rack`.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RackConfig {
    /// The region's URL (`http://region:5240`), or several regions on one database, comma
    /// separated in the order of preference (`https://r1:5240,https://r2:5240`): the rack moves
    /// to the next when the one in use cannot be reached.
    pub region_url: String,
    /// The rack secret (`kiln admin rack-secret` on the region).
    pub secret: String,
    /// The CA certificate (PEM) the region's HTTPS certificate must chain to (`--region-ca`);
    /// unset: the public roots.
    pub region_ca: Option<String>,
    /// A one-time enrolment token (`kiln admin rack-token`; `--token-file`), instead of `secret`.
    /// When it carries the region CA's fingerprint and no `region_ca` is given, the region's
    /// certificate is pinned to it.
    pub enrolment_token: Option<String>,
    /// The rack's name (default: the host name).
    pub name: String,
    /// Where the snapshot, leases, event queue and credentials are kept.
    pub data_dir: PathBuf,
    /// DHCP server port (67; tests use others).
    pub dhcp_port: u16,
    /// Port the DHCP replies go to on clients (68).
    pub dhcp_client_port: u16,
    /// Port of the HTTP boot endpoint handed to iPXE (5248, MAAS's rack port).
    pub http_port: u16,
    /// Serve DHCP at all.
    pub dhcp_enabled: bool,
    /// Answer IPv6 router solicitations on managed interfaces (see `ra`).
    pub ra_enabled: bool,
    /// Where the HTTP boot service listens.
    pub http_bind: SocketAddr,
    /// Where TFTP listens (port 69).
    pub tftp_bind: SocketAddr,
    /// TFTP transfers at once, in all and per client.
    pub tftp_limits: crate::tftp::Limits,
    /// Power jobs running at once (each BMC still gets one at a time).
    pub power_concurrency: usize,
    /// Root on iSCSI (absent: this rack serves no volumes).
    pub iscsi: Option<IscsiConfig>,
    /// DNS (absent: `--no-dns`; `RackConfig::new` leaves it off, `kiln rack` turns it on).
    pub dns: Option<crate::dns::DnsConfig>,
    /// The caching HTTP proxy (absent: `--no-proxy`; `RackConfig::new` leaves it off).
    pub proxy: Option<crate::proxy::ProxyConfig>,
}

/// `--iscsi-store`, `--iscsi-portal`, `--iscsi-driver`, `--tgt-control-port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IscsiConfig {
    pub store: PathBuf,
    pub portal: rack_proto::iscsi::Portal,
    pub driver: String,
    pub control_port: u16,
}

impl RackConfig {
    pub fn new(region_url: &str, secret: &str, data_dir: PathBuf) -> RackConfig {
        RackConfig {
            region_url: region_url
                .split(',')
                .map(|u| u.trim().trim_end_matches('/'))
                .collect::<Vec<_>>()
                .join(","),
            secret: secret.trim().to_string(),
            region_ca: None,
            enrolment_token: None,
            name: hostname(),
            data_dir,
            dhcp_port: 67,
            dhcp_client_port: 68,
            http_port: 5248,
            dhcp_enabled: true,
            ra_enabled: true,
            http_bind: SocketAddr::from(([0, 0, 0, 0], 5248)),
            tftp_bind: SocketAddr::from(([0, 0, 0, 0], 69)),
            tftp_limits: crate::tftp::Limits::default(),
            power_concurrency: 32,
            iscsi: None,
            dns: None,
            proxy: None,
        }
    }

    /// The regions' URLs, in the order of preference.
    pub fn region_urls(&self) -> Vec<String> {
        self.region_url
            .split(',')
            .map(|u| u.trim().trim_end_matches('/').to_string())
            .filter(|u| !u.is_empty())
            .collect()
    }

    pub fn validate(&self) -> Result<()> {
        let urls = self.region_urls();
        if urls.is_empty() {
            return Err(Error::Config("no region URL (--region-url)".into()));
        }
        for u in &urls {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(Error::Config(format!(
                    "region URL must start with http:// or https:// (got {u})"
                )));
            }
        }
        match &self.enrolment_token {
            Some(t) => {
                region_api_types::EnrolmentToken::parse(t)
                    .map_err(|e| Error::Config(format!("--token-file: {e}")))?;
            }
            None if self.secret.is_empty() => return Err(Error::Config(
                "no enrolment token: pass --token-file with a token from `kiln admin rack-token`"
                    .into(),
            )),
            None => {}
        }
        if self.name.is_empty() {
            return Err(Error::Config("the rack name is empty".into()));
        }
        Ok(())
    }
}

/// The host's name, for the rack's default name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "rack".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_region_urls_in_order() {
        let c = RackConfig::new(
            " https://r1:5240/, https://r2:5240 ",
            "s",
            PathBuf::from("/tmp"),
        );
        assert_eq!(c.region_urls(), vec!["https://r1:5240", "https://r2:5240"]);
        assert!(c.validate().is_ok());
        let c = RackConfig::new("https://r1:5240,r2:5240", "s", PathBuf::from("/tmp"));
        assert!(c.validate().unwrap_err().to_string().contains("r2:5240"));
    }
}
