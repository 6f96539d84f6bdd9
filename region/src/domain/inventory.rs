//! Commissioning output → hardware inventory. Pure: takes the outputs of Kiln's built-in scripts
//! (see `region/scripts/commissioning/`) and returns an [`api::Hardware`], or says which script's
//! output could not be read and why.

use std::collections::HashMap;

use region_api_types as api;
use serde::Deserialize;

/// Names of the built-in scripts whose output is parsed.
pub const CPU: &str = "kiln-cpu";
pub const MEMORY: &str = "kiln-memory";
pub const BLOCK_DEVICES: &str = "kiln-block-devices";
pub const INTERFACES: &str = "kiln-interfaces";
pub const DMIDECODE: &str = "kiln-dmidecode";
pub const BMC: &str = "kiln-bmc";

/// Why an output could not be read: the script and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub script: &'static str,
    pub reason: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot read the output of {}: {}",
            self.script, self.reason
        )
    }
}

fn err(script: &'static str, reason: impl Into<String>) -> ParseError {
    ParseError {
        script,
        reason: reason.into(),
    }
}

/// Builds the inventory from the outputs (script name → output). `commissioned_at` is RFC 3339.
pub fn parse(
    outputs: &HashMap<String, String>,
    commissioned_at: &str,
) -> Result<api::Hardware, ParseError> {
    let get = |name: &'static str| {
        outputs
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| err(name, "the machine sent no output for it"))
    };
    let (cpu_count, cpu_model) = cpu(get(CPU)?)?;
    let memory_mib = memory(get(MEMORY)?)?;
    let disks = disks(get(BLOCK_DEVICES)?)?;
    let nics = nics(get(INTERFACES)?)?;
    let dmi = dmidecode(get(DMIDECODE)?);
    let bmc_present = get(BMC)?.lines().any(|l| l.trim() == "bmc: present");
    Ok(api::Hardware {
        cpu_count,
        cpu_model,
        memory_mib,
        firmware: dmi.firmware,
        system_vendor: dmi.vendor,
        system_product: dmi.product,
        system_serial: dmi.serial,
        disks,
        nics,
        bmc_present,
        commissioned_at: commissioned_at.to_string(),
    })
}

#[derive(Deserialize)]
struct LscpuField {
    field: String,
    data: Option<String>,
    #[serde(default)]
    children: Vec<LscpuField>,
}

#[derive(Deserialize)]
struct Lscpu {
    lscpu: Vec<LscpuField>,
}

fn lscpu_find<'a>(fields: &'a [LscpuField], name: &str) -> Option<&'a str> {
    fields.iter().find_map(|f| {
        if f.field == name {
            f.data.as_deref()
        } else {
            lscpu_find(&f.children, name)
        }
    })
}

/// `lscpu -J` → (logical CPUs, model name).
pub fn cpu(out: &str) -> Result<(i32, String), ParseError> {
    let l: Lscpu =
        serde_json::from_str(out).map_err(|e| err(CPU, format!("not lscpu JSON ({e})")))?;
    let count = lscpu_find(&l.lscpu, "CPU(s):")
        .ok_or_else(|| err(CPU, "no \"CPU(s):\" field"))?
        .trim()
        .parse::<i32>()
        .map_err(|_| err(CPU, "\"CPU(s):\" is not a number"))?;
    let model = lscpu_find(&l.lscpu, "Model name:")
        .unwrap_or("")
        .trim()
        .to_string();
    Ok((count, model))
}

/// MemTotal line + `dmidecode -t 17` → MiB installed: the DIMM sizes' sum, else MemTotal.
pub fn memory(out: &str) -> Result<i64, ParseError> {
    let mut dimms_mib: i64 = 0;
    let mut in_device = false;
    let mut mem_total_kib: Option<i64> = None;
    for line in out.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("MemTotal:") {
            mem_total_kib = rest.split_whitespace().next().and_then(|n| n.parse().ok());
            continue;
        }
        if !line.starts_with(char::is_whitespace) {
            in_device = t == "Memory Device";
            continue;
        }
        if in_device {
            if let Some(size) = t.strip_prefix("Size:") {
                let mut parts = size.split_whitespace();
                let (Some(n), Some(unit)) = (parts.next(), parts.next()) else {
                    continue; // "No Module Installed"
                };
                let Ok(n) = n.parse::<i64>() else { continue };
                let mib = match unit {
                    "kB" | "KB" => n / 1024,
                    "MB" => n,
                    "GB" => n.saturating_mul(1024),
                    "TB" => n.saturating_mul(1024 * 1024),
                    _ => 0,
                };
                dimms_mib = dimms_mib.saturating_add(mib);
            }
        }
    }
    if dimms_mib > 0 {
        return Ok(dimms_mib);
    }
    mem_total_kib
        .map(|k| k / 1024)
        .ok_or_else(|| err(MEMORY, "neither SMBIOS memory devices nor a MemTotal line"))
}

/// The first JSON document of an output (scripts may add a human-readable part after `----`).
fn json_part(out: &str) -> &str {
    out.split("\n----").next().unwrap_or(out)
}

/// The block-device script's JSON → disks, by name.
pub fn disks(out: &str) -> Result<Vec<api::Disk>, ParseError> {
    let mut d: Vec<api::Disk> = serde_json::from_str(json_part(out))
        .map_err(|e| err(BLOCK_DEVICES, format!("not the expected JSON ({e})")))?;
    d.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(d)
}

/// The interface script's JSON → Ethernet NICs, by name, MACs lower-case. Entries without a usable
/// Ethernet address (an unset virtual function, a name that is not a plain interface name) are
/// left out rather than failing the whole inventory.
pub fn nics(out: &str) -> Result<Vec<api::Nic>, ParseError> {
    let n: Vec<api::Nic> = serde_json::from_str(json_part(out))
        .map_err(|e| err(INTERFACES, format!("not the expected JSON ({e})")))?;
    let mut n: Vec<api::Nic> = n
        .into_iter()
        .filter_map(|mut nic| {
            nic.mac = crate::domain::validate::mac("mac", &nic.mac).ok()?;
            let name_ok = !nic.name.is_empty()
                && nic.name.len() <= 15
                && nic
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
            (name_ok && nic.mac != "00:00:00:00:00:00").then_some(nic)
        })
        .collect();
    n.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(n)
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Dmi {
    pub firmware: String,
    pub vendor: String,
    pub product: String,
    pub serial: String,
}

/// `firmware: …` + full `dmidecode` → firmware and the System Information section.
pub fn dmidecode(out: &str) -> Dmi {
    let mut d = Dmi {
        firmware: "unknown".into(),
        ..Dmi::default()
    };
    let mut in_system = false;
    for line in out.lines() {
        if let Some(fw) = line.strip_prefix("firmware:") {
            d.firmware = fw.trim().to_string();
            continue;
        }
        if !line.starts_with(char::is_whitespace) {
            in_system = line.trim() == "System Information";
            continue;
        }
        if in_system {
            let t = line.trim();
            if let Some((k, v)) = t.split_once(':') {
                let v = v.trim().to_string();
                match k {
                    "Manufacturer" => d.vendor = v,
                    "Product Name" => d.product = v,
                    "Serial Number" => d.serial = v,
                    _ => {}
                }
            }
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    const LSCPU: &str = r#"{
   "lscpu": [
      {"field": "Architecture:", "data": "x86_64",
         "children": [
            {"field": "CPU op-mode(s):", "data": "32-bit, 64-bit"}
         ]
      },
      {"field": "CPU(s):", "data": "2",
         "children": [
            {"field": "On-line CPU(s) list:", "data": "0,1"}
         ]
      },
      {"field": "Vendor ID:", "data": "AuthenticAMD",
         "children": [
            {"field": "Model name:", "data": "QEMU Virtual CPU version 2.5+"}
         ]
      }
   ]
}"#;

    const MEMORY_OUT: &str = "MemTotal:        1001452 kB
# dmidecode 3.4
Getting SMBIOS data from sysfs.
SMBIOS 2.8 present.

Handle 0x1100, DMI type 17, 40 bytes
Memory Device
\tArray Handle: 0x1000
\tSize: 1 GB
\tForm Factor: DIMM

Handle 0x1101, DMI type 17, 40 bytes
Memory Device
\tSize: 512 MB

Handle 0x1102, DMI type 17, 40 bytes
Memory Device
\tSize: No Module Installed
";

    #[test]
    fn cpu_count_and_model_from_nested_lscpu() {
        assert_eq!(
            cpu(LSCPU).unwrap(),
            (2, "QEMU Virtual CPU version 2.5+".to_string())
        );
        assert!(cpu("{}").is_err());
        assert!(cpu(r#"{"lscpu":[{"field":"CPU(s):","data":"two"}]}"#).is_err());
    }

    #[test]
    fn memory_sums_dimms_and_falls_back_to_memtotal() {
        assert_eq!(memory(MEMORY_OUT).unwrap(), 1536);
        assert_eq!(memory("MemTotal:        2048000 kB\n").unwrap(), 2000);
        assert!(memory("nothing here").is_err());
    }

    #[test]
    fn disks_and_nics_parse_and_sort() {
        let d = disks(
            r#"[{"name":"vdb","size_bytes":2147483648,"model":"","serial":"K2","rotational":true,"transport":"virtio"},
                {"name":"vda","size_bytes":4294967296,"model":"","serial":"K1","rotational":true,"transport":"virtio"}]
----
NAME SIZE"#,
        )
        .unwrap();
        assert_eq!(d[0].name, "vda");
        assert_eq!(d[0].size_bytes, 4 << 30);
        assert_eq!(d[1].serial, "K2");
        let n = nics(r#"[{"name":"eth1","mac":"52:54:00:AA:00:02","link":false,"speed_mbps":null,"driver":"e1000"},
                         {"name":"eth0","mac":"52:54:00:aa:00:01","link":true,"speed_mbps":1000,"driver":"virtio_net"}]"#).unwrap();
        assert_eq!(n[0].name, "eth0");
        assert_eq!(n[0].speed_mbps, Some(1000));
        assert_eq!(n[1].mac, "52:54:00:aa:00:02");
        let odd = nics(r#"[{"name":"ib0","mac":"nope","link":true,"speed_mbps":null,"driver":""},
                          {"name":"eth2","mac":"00:00:00:00:00:00","link":false,"speed_mbps":null,"driver":"ixgbevf"},
                          {"name":"eth0","mac":"52:54:00:aa:00:01","link":true,"speed_mbps":null,"driver":"e1000"}]"#).unwrap();
        assert_eq!(odd.len(), 1, "odd NICs are left out, the rest is kept");
        assert!(nics("not json").is_err());
        assert!(disks("lsblk: command not found").is_err());
    }

    #[test]
    fn dmidecode_system_section() {
        let d = dmidecode(
            "firmware: uefi\n# dmidecode 3.4\n\nHandle 0x0100, DMI type 1, 27 bytes\nSystem Information\n\tManufacturer: QEMU\n\tProduct Name: Standard PC (Q35 + ICH9, 2009)\n\tSerial Number: KILN-42\n\nHandle 0x0200\nBase Board Information\n\tManufacturer: Other\n",
        );
        assert_eq!(
            d,
            Dmi {
                firmware: "uefi".into(),
                vendor: "QEMU".into(),
                product: "Standard PC (Q35 + ICH9, 2009)".into(),
                serial: "KILN-42".into()
            }
        );
    }

    #[test]
    fn whole_inventory_names_the_script_that_is_missing() {
        let mut o = HashMap::new();
        o.insert(CPU.to_string(), LSCPU.to_string());
        let e = parse(&o, "2026-11-21T00:00:00Z").unwrap_err();
        assert_eq!(e.script, MEMORY);
        o.insert(MEMORY.to_string(), MEMORY_OUT.to_string());
        o.insert(BLOCK_DEVICES.to_string(), "[]".to_string());
        o.insert(INTERFACES.to_string(), "[]".to_string());
        o.insert(DMIDECODE.to_string(), "firmware: bios\n".to_string());
        o.insert(BMC.to_string(), "bmc: present\n".to_string());
        let h = parse(&o, "2026-11-21T00:00:00Z").unwrap();
        assert_eq!((h.cpu_count, h.memory_mib, h.bmc_present), (2, 1536, true));
        assert_eq!(h.firmware, "bios");
    }
}
