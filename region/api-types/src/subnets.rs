//! Subnets, their ranges and static routes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An address range inside a subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IpRange {
    pub start: String,
    pub end: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A classless static route (DHCP option 121) handed to machines on a subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaticRoute {
    /// Destination network in CIDR form.
    pub destination: String,
    pub gateway: String,
}

/// A subnet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Subnet {
    pub id: String,
    pub name: String,
    pub cidr: String,
    pub gateway: Option<String>,
    pub dns_servers: Vec<String>,
    pub domain: Option<String>,
    pub dynamic_ranges: Vec<IpRange>,
    pub reserved_ranges: Vec<IpRange>,
    pub static_routes: Vec<StaticRoute>,
    /// Whether Kiln serves DHCP on it.
    pub managed: bool,
    /// NTP servers handed out by DHCP (option 42).
    pub ntp_servers: Vec<String>,
    /// DHCP lease time on this subnet, seconds (default: the rack's, 600).
    pub lease_time_secs: Option<u32>,
    /// Relay agents whose relayed DHCP requests for this subnet a rack answers, by the address
    /// they send from; empty: any relay.
    #[serde(default)]
    pub relay_addresses: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// Body of `POST /api/v1/subnets`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubnetCreate {
    /// An IPv4 network, host bits zero.
    #[schema(
        pattern = r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])/([0-9]|[12][0-9]|3[0-2])$",
        example = "10.20.0.0/24"
    )]
    pub cidr: String,
    /// Defaults to the CIDR.
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9._/-]{1,64}$")]
    pub name: Option<String>,
    /// A host address inside the subnet.
    #[serde(default)]
    #[schema(
        pattern = r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$",
        example = "10.20.0.1"
    )]
    pub gateway: Option<String>,
    #[serde(default)]
    pub dns_servers: Option<Vec<String>>,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub dynamic_ranges: Option<Vec<IpRange>>,
    #[serde(default)]
    pub reserved_ranges: Option<Vec<IpRange>>,
    #[serde(default)]
    pub static_routes: Option<Vec<StaticRoute>>,
    /// Defaults to true (MAAS's default).
    #[serde(default)]
    pub managed: Option<bool>,
    #[serde(default)]
    pub ntp_servers: Option<Vec<String>>,
    /// 60 to 604800 seconds.
    #[serde(default)]
    #[schema(minimum = 60, maximum = 604800)]
    pub lease_time_secs: Option<u32>,
    /// IPv4 addresses of the relay agents allowed to relay for this subnet (empty: any).
    #[serde(default)]
    #[schema(max_items = 64)]
    pub relay_addresses: Option<Vec<String>>,
}

/// Body of `PATCH /api/v1/subnets/{id}`: the fields given replace the stored ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubnetPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub dns_servers: Option<Vec<String>>,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub dynamic_ranges: Option<Vec<IpRange>>,
    #[serde(default)]
    pub reserved_ranges: Option<Vec<IpRange>>,
    #[serde(default)]
    pub static_routes: Option<Vec<StaticRoute>>,
    #[serde(default)]
    pub managed: Option<bool>,
    #[serde(default)]
    pub ntp_servers: Option<Vec<String>>,
    /// 60 to 604800 seconds.
    #[serde(default)]
    pub lease_time_secs: Option<u32>,
    /// Replaces the allowed relay agents (`[]`: any relay).
    #[serde(default)]
    #[schema(max_items = 64)]
    pub relay_addresses: Option<Vec<String>>,
}
