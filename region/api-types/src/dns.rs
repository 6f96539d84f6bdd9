//! DNS: the domains Kiln is authoritative for, operators' own records, and what racks serve from.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// MAAS's default TTL, seconds.
pub const DEFAULT_DNS_TTL: u32 = 30;

/// A domain Kiln is authoritative for: every rack serves its forward zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DnsDomain {
    pub id: String,
    /// Lower case, without the trailing dot (`kiln`, `lab.example.com`).
    pub name: String,
    /// TTL of the domain's records, seconds (default 30).
    pub ttl: u32,
    /// Machines that name no domain of their own are in the default domain, and DHCP hands it out
    /// as the search domain on subnets that name none.
    pub is_default: bool,
    /// Records operators added to it.
    #[serde(default)]
    pub records: i64,
    /// Machines named in it.
    #[serde(default)]
    pub machines: i64,
    pub created_at: String,
}

/// Body of `POST /api/v1/dns/domains`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsDomainCreate {
    #[schema(
        max_length = 253,
        pattern = r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$",
        example = "lab.example"
    )]
    pub name: String,
    /// Seconds, 1 to 604800.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 604800)]
    pub ttl: Option<u32>,
    /// Make it the default domain (the previous default stays, as an ordinary domain).
    #[serde(default)]
    pub is_default: bool,
}

/// Body of `PATCH /api/v1/dns/domains/{id}`: only the fields given change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsDomainPatch {
    #[serde(default)]
    pub ttl: Option<u32>,
    /// `true` makes it the default domain (there is always exactly one; `false` is refused).
    #[serde(default)]
    pub is_default: Option<bool>,
}

/// A record an operator added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DnsRecord {
    pub id: String,
    /// Fully qualified, lower case, without the trailing dot (`www.kiln`).
    pub name: String,
    /// `A`, `AAAA`, `CNAME`, `TXT`, `SRV` or `MX`.
    #[serde(rename = "type")]
    pub rtype: String,
    /// In zone-file form: `10.0.0.5`, `node1.kiln`, `"some text"`, `10 5 80 web.kiln` (SRV:
    /// priority weight port target), `10 mail.kiln` (MX: preference exchange).
    pub data: String,
    pub ttl: u32,
    /// The Kiln domain the name is in.
    pub domain: String,
    pub created_at: String,
}

/// Body of `POST /api/v1/dns/records`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsRecordCreate {
    /// A name inside one of Kiln's DNS domains.
    #[schema(
        max_length = 253,
        pattern = r"^([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\\.)*[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$",
        example = "www.lab.example"
    )]
    pub name: String,
    #[serde(rename = "type")]
    #[schema(pattern = r"^(A|AAAA|CNAME|TXT|SRV|MX)$", example = "A")]
    pub rtype: String,
    /// What the type holds: an address (A, AAAA), a name (CNAME), text (TXT),
    /// `priority weight port target` (SRV), `preference exchange` (MX).
    #[schema(min_length = 1, max_length = 1024, example = "10.20.0.5")]
    pub data: String,
    /// Seconds, 1 to 604800 (default: the domain's TTL).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 604800)]
    pub ttl: Option<u32>,
}

/// A record as a rack serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SnapshotDnsRecord {
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: String,
    pub data: String,
    pub ttl: u32,
}

/// A domain as a rack serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SnapshotDnsDomain {
    pub name: String,
    pub ttl: u32,
}

/// What a rack needs to serve DNS (the machines' names come with the machines).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SnapshotDns {
    pub default_domain: String,
    pub domains: Vec<SnapshotDnsDomain>,
    pub records: Vec<SnapshotDnsRecord>,
}

impl Default for SnapshotDns {
    /// What a rack serves from a snapshot older than DNS: the default domain, empty.
    fn default() -> Self {
        SnapshotDns {
            default_domain: "kiln".into(),
            domains: vec![SnapshotDnsDomain {
                name: "kiln".into(),
                ttl: DEFAULT_DNS_TTL,
            }],
            records: Vec::new(),
        }
    }
}
