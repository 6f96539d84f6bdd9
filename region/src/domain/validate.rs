//! Input validation: every function returns the canonical form or an [`Error::Validation`] naming the
//! field and saying what a valid value looks like.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::error::{Error, Result};

/// Architectures Kiln can boot (MAAS naming).
pub const ARCHITECTURES: &[&str] = &[
    "amd64/generic",
    "arm64/generic",
    "i386/generic",
    "ppc64el/generic",
    "s390x/generic",
];

/// A MAC address in any of the usual notations (`aa:bb:..`, `AA-BB-..`, `aabb.ccdd.eeff`, `aabbccddeeff`)
/// → lower case, colon separated. Multicast and all-zero addresses are refused.
pub fn mac(field: &str, input: &str) -> Result<String> {
    let hex: String = input
        .trim()
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | '.'))
        .collect();
    let bad = || {
        Error::validation(
            field,
            format!("'{input}' is not a MAC address; write six hex bytes like 52:54:00:12:34:56."),
        )
    };
    if hex.len() != 12 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad());
    }
    // Separators, when present, must split into six groups of two or three groups of four.
    let groups: Vec<&str> = input.trim().split([':', '-', '.']).collect();
    if groups.len() > 1
        && !(groups.len() == 6 && groups.iter().all(|g| g.len() == 2)
            || groups.len() == 3 && groups.iter().all(|g| g.len() == 4))
    {
        return Err(bad());
    }
    let lower = hex.to_ascii_lowercase();
    let bytes: Vec<&str> = (0..6).map(|i| &lower[2 * i..2 * i + 2]).collect();
    let first = u8::from_str_radix(bytes[0], 16).map_err(|_| bad())?;
    if first & 1 == 1 {
        return Err(Error::validation(
            field,
            format!("'{input}' is a multicast MAC address; a network interface has a unicast one."),
        ));
    }
    if lower == "000000000000" {
        return Err(Error::validation(
            field,
            "00:00:00:00:00:00 is not a real MAC address.",
        ));
    }
    Ok(bytes.join(":"))
}

/// A hostname: one RFC 1123 label (letters, digits, hyphens; 1–63 characters; not starting or
/// ending with a hyphen), stored lower case. A domain suffix is not part of the hostname.
pub fn hostname(field: &str, input: &str) -> Result<String> {
    let h = input.trim().to_ascii_lowercase();
    let ok = !h.is_empty()
        && h.len() <= 63
        && h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !h.starts_with('-')
        && !h.ends_with('-');
    if !ok {
        return Err(Error::validation(
            field,
            format!(
                "'{input}' is not a valid hostname: use 1 to 63 letters, digits and hyphens, not starting or ending with a hyphen (no dots: the machine's DNS domain is its own field, `domain`)."
            ),
        ));
    }
    Ok(h)
}

/// An IPv4 network in CIDR form, canonical (`10.0.0.0/24`). Host bits must be zero.
pub fn cidr(field: &str, input: &str) -> Result<Ipv4Net> {
    let net: Ipv4Net = input.trim().parse().map_err(|_| {
        Error::validation(
            field,
            format!("'{input}' is not an IPv4 network in CIDR form, like 10.20.0.0/24."),
        )
    })?;
    if net.trunc() != net {
        return Err(Error::validation(
            field,
            format!(
                "'{input}' has host bits set; the network is {}.",
                net.trunc()
            ),
        ));
    }
    Ok(net)
}

/// An IPv4 address.
pub fn ipv4(field: &str, input: &str) -> Result<Ipv4Addr> {
    input.trim().parse().map_err(|_| {
        Error::validation(
            field,
            format!("'{input}' is not an IPv4 address, like 10.20.0.1."),
        )
    })
}

/// An IPv4 address that must lie inside `net` (and not be its network or broadcast address).
pub fn ipv4_in(field: &str, input: &str, net: &Ipv4Net) -> Result<Ipv4Addr> {
    let ip = ipv4(field, input)?;
    if !net.contains(&ip) {
        return Err(Error::validation(
            field,
            format!("{ip} is outside the subnet {net}."),
        ));
    }
    if net.prefix_len() < 31 && (ip == net.network() || ip == net.broadcast()) {
        return Err(Error::validation(
            field,
            format!("{ip} is the network or broadcast address of {net}; pick a host address."),
        ));
    }
    Ok(ip)
}

pub fn architecture(field: &str, input: &str) -> Result<String> {
    let a = input.trim();
    let a = if a.contains('/') {
        a.to_string()
    } else {
        format!("{a}/generic")
    };
    if ARCHITECTURES.contains(&a.as_str()) {
        Ok(a)
    } else {
        Err(Error::validation(
            field,
            format!(
                "'{input}' is not a known architecture; use one of {}.",
                ARCHITECTURES.join(", ")
            ),
        ))
    }
}

/// A power type of the drivers' registry (`region_api_types::power_params::registry`).
pub fn power_type(field: &str, input: &str) -> Result<String> {
    let p = input.trim();
    if region_api_types::power_params::schema(p).is_some() {
        Ok(p.to_string())
    } else {
        let names: Vec<&str> = region_api_types::power_params::registry()
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        Err(Error::validation(
            field,
            format!(
                "'{input}' is not a power type; use one of {}.",
                names.join(", ")
            ),
        ))
    }
}

/// Removes secret power parameters before a machine is shown.
pub fn public_power_parameters(
    params: &serde_json::Map<String, serde_json::Value>,
) -> serde_json::Map<String, serde_json::Value> {
    crate::domain::secrets::split(params).0
}

/// A short name (zone, pool, tag, interface, subnet name): 1–64 of letters, digits, `-`, `_`, `.`.
pub fn name(field: &str, input: &str) -> Result<String> {
    let n = input.trim();
    let ok = !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(n.to_string())
    } else {
        Err(Error::validation(
            field,
            format!(
                "'{input}' is not a valid name: use 1 to 64 letters, digits, '-', '_', '.' or '/'."
            ),
        ))
    }
}

/// A username: 1–64 of letters, digits, `-`, `_`, `.`, `@`.
pub fn username(field: &str, input: &str) -> Result<String> {
    let n = input.trim();
    let ok = !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if ok {
        Ok(n.to_string())
    } else {
        Err(Error::validation(
            field,
            format!("'{input}' is not a valid username: use 1 to 64 letters, digits, '-', '_', '.' or '@'."),
        ))
    }
}

/// Free text (descriptions, comments): at most `max` bytes, no control characters but newline and tab.
pub fn text(field: &str, input: &str, max: usize) -> Result<String> {
    if input.len() > max {
        return Err(Error::validation(
            field,
            format!(
                "{field} is {} bytes long; at most {max} are allowed.",
                input.len()
            ),
        ));
    }
    if input
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(Error::validation(
            field,
            format!("{field} contains control characters."),
        ));
    }
    Ok(input.to_string())
}

/// A non-negative quantity.
pub fn non_negative(field: &str, v: i64) -> Result<i64> {
    if v < 0 {
        Err(Error::validation(
            field,
            format!("{field} must be zero or more, not {v}."),
        ))
    } else {
        Ok(v)
    }
}

/// A lower-case hex sha256.
pub fn sha256(field: &str, input: &str) -> Result<String> {
    let s = input.trim().to_ascii_lowercase();
    if s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(s)
    } else {
        Err(Error::validation(
            field,
            format!("'{input}' is not a sha256 (64 hex characters)."),
        ))
    }
}

/// A boot-resource file name: a plain name, no directories, no traversal.
pub fn filename(field: &str, input: &str) -> Result<String> {
    let ok = !input.is_empty()
        && input.len() <= 128
        && input != "."
        && input != ".."
        && input
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'));
    if ok {
        Ok(input.to_string())
    } else {
        Err(Error::validation(
            field,
            format!("'{input}' is not a valid file name: use letters, digits, '-', '_', '.' and '+' (no slashes)."),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_forms() {
        for ok in [
            "52:54:00:12:34:56",
            "52-54-00-12-34-56",
            "5254.0012.3456",
            "525400123456",
            " 52:54:00:12:34:56 ",
            "52:54:00:12:34:56".to_uppercase().as_str(),
        ] {
            assert_eq!(mac("mac", ok).unwrap(), "52:54:00:12:34:56", "{ok}");
        }
        for bad in [
            "",
            "52:54:00:12:34",
            "52:54:00:12:34:56:78",
            "zz:54:00:12:34:56",
            "525:400:123:456",
            "01:00:5e:00:00:01",
            "00:00:00:00:00:00",
            "52:54:00:12:34:5g",
        ] {
            let e = mac("boot_mac", bad).unwrap_err();
            assert!(
                matches!(e, Error::Validation { field: Some(ref f), .. } if f == "boot_mac"),
                "{bad}"
            );
        }
    }

    #[test]
    fn hostnames() {
        assert_eq!(hostname("h", "Node-01").unwrap(), "node-01");
        for bad in ["", "-a", "a-", "a.b", "a_b", &"x".repeat(64), "ünï"] {
            assert!(hostname("h", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cidrs_and_addresses() {
        let n = cidr("cidr", "10.0.0.0/24").unwrap();
        assert_eq!(n.to_string(), "10.0.0.0/24");
        assert!(cidr("cidr", "10.0.0.1/24")
            .unwrap_err()
            .to_string()
            .contains("10.0.0.0/24"));
        assert!(cidr("cidr", "10.0.0.0/33").is_err());
        assert!(cidr("cidr", "fe80::/64").is_err());
        assert!(ipv4_in("gateway", "10.0.0.1", &n).is_ok());
        assert!(ipv4_in("gateway", "10.0.1.1", &n).is_err());
        assert!(ipv4_in("gateway", "10.0.0.255", &n).is_err());
        assert!(ipv4_in("gateway", "10.0.0.0", &n).is_err());
    }

    #[test]
    fn architectures_and_power() {
        assert_eq!(architecture("a", "amd64").unwrap(), "amd64/generic");
        assert!(architecture("a", "vax").is_err());
        assert!(power_type("p", "ipmi").is_ok());
        assert!(power_type("p", "telnet").is_err());
    }

    #[test]
    fn secrets_are_removed() {
        let mut m = serde_json::Map::new();
        m.insert("power_address".into(), "10.0.0.5".into());
        m.insert("power_pass".into(), "s3cret".into());
        let p = public_power_parameters(&m);
        assert!(p.contains_key("power_address"));
        assert!(!p.contains_key("power_pass"));
    }

    #[test]
    fn filenames() {
        assert!(filename("f", "vmlinuz-6.1").is_ok());
        for bad in ["", ".", "..", "../x", "a/b", "a\0b", "a b"] {
            assert!(filename("f", bad).is_err(), "{bad:?}");
        }
    }
}
