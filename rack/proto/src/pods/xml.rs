//! libvirt XML, both ways: the domain and volume definitions of a composed VM, the per-device
//! boot order of a domain, and what discovery reads back from domains, pools and the host's
//! domain capabilities.

use region_api_types::{BootDevice, VmDisk, VmSpec};

/// Namespace of the metadata Kiln writes into the domains it composes.
pub const KILN_NS: &str = "https://kiln.dev/xmlns/libvirt/machine/1";

/// Escapes text for XML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '\'' => o.push_str("&apos;"),
            '"' => o.push_str("&quot;"),
            c => o.push(c),
        }
    }
    o
}

/// A sparse raw volume (no bytes allocated up front).
pub fn volume_xml(d: &VmDisk) -> String {
    format!(
        "<volume>\n  <name>{}</name>\n  <capacity unit='bytes'>{}</capacity>\n  <allocation unit='bytes'>0</allocation>\n  <target><format type='raw'/></target>\n</volume>\n",
        esc(&d.name),
        d.size_bytes.max(0)
    )
}

/// The domain of a composed VM. Boot order is per device (NICs first, then disks), never
/// `<os><boot dev>`, which OVMF's own boot entries fight with. UEFI lets libvirt pick an OVMF
/// build from the host's firmware descriptors (with or without Secure Boot) and give the VM its own
/// NVRAM copy of the variable store; BIOS is SeaBIOS.
pub fn domain_xml(s: &VmSpec) -> String {
    let mut x = String::new();
    x.push_str(&format!("<domain type='{}'>\n", esc(&s.virt_type)));
    x.push_str(&format!("  <name>{}</name>\n", esc(&s.name)));
    x.push_str(&format!(
        "  <metadata>\n    <kiln:machine xmlns:kiln='{KILN_NS}'>\n      <kiln:system_id>{}</kiln:system_id>\n    </kiln:machine>\n  </metadata>\n",
        esc(&s.system_id)
    ));
    x.push_str(&format!(
        "  <memory unit='MiB'>{}</memory>\n  <vcpu>{}</vcpu>\n",
        s.memory_mib, s.cores
    ));
    let machine = if s.arch == "x86_64" {
        " machine='q35'"
    } else {
        ""
    };
    if s.firmware == "uefi" {
        let sb = if s.secure_boot { "yes" } else { "no" };
        x.push_str(&format!(
            "  <os firmware='efi'>\n    <type arch='{}'{machine}>hvm</type>\n    <firmware>\n      <feature enabled='{sb}' name='secure-boot'/>\n      <feature enabled='{sb}' name='enrolled-keys'/>\n    </firmware>\n  </os>\n",
            esc(&s.arch)
        ));
    } else {
        x.push_str(&format!(
            "  <os>\n    <type arch='{}'{machine}>hvm</type>\n  </os>\n",
            esc(&s.arch)
        ));
    }
    x.push_str("  <features>\n    <acpi/>\n    <apic/>\n");
    if s.secure_boot {
        // Secure Boot firmware keeps its variables safe through SMM.
        x.push_str("    <smm state='on'/>\n");
    }
    x.push_str("  </features>\n");
    if s.virt_type == "kvm" {
        x.push_str("  <cpu mode='host-passthrough'/>\n");
    }
    x.push_str("  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>restart</on_reboot>\n  <on_crash>destroy</on_crash>\n  <devices>\n");
    let mut order = 1;
    for n in &s.nics {
        let source = match (&n.network, &n.bridge) {
            (_, Some(b)) => format!("type='bridge'>\n      <source bridge='{}'/>", esc(b)),
            (Some(net), None) => format!("type='network'>\n      <source network='{}'/>", esc(net)),
            (None, None) => "type='network'>\n      <source network='default'/>".to_string(),
        };
        x.push_str(&format!(
            "    <interface {source}\n      <mac address='{}'/>\n      <model type='virtio'/>\n      <boot order='{order}'/>\n    </interface>\n",
            esc(&n.mac)
        ));
        order += 1;
    }
    for (i, d) in s.disks.iter().enumerate() {
        let dev = format!("vd{}", char::from(b'a' + u8::try_from(i % 26).unwrap_or(0)));
        x.push_str(&format!(
            "    <disk type='volume' device='disk'>\n      <driver name='qemu' type='raw' discard='unmap'/>\n      <source pool='{}' volume='{}'/>\n      <target dev='{dev}' bus='virtio'/>\n      <serial>{}</serial>\n      <boot order='{order}'/>\n    </disk>\n",
            esc(&d.pool),
            esc(&d.name),
            esc(&d.serial)
        ));
        order += 1;
    }
    x.push_str("    <serial type='pty'/>\n    <console type='pty'/>\n");
    x.push_str("    <rng model='virtio'>\n      <backend model='random'>/dev/urandom</backend>\n    </rng>\n  </devices>\n</domain>\n");
    x
}

/// Renumbers the per-device `<boot order>` of a domain so NICs come first (`Pxe`) or disks do
/// (`Disk`), keeping the order within each kind. Only devices that already boot are renumbered.
/// `Ok(None)`: the domain has no per-device boot order.
pub fn with_device_boot_order(xml: &str, first: BootDevice) -> Result<Option<String>, String> {
    let doc =
        roxmltree::Document::parse(xml).map_err(|e| format!("the domain XML is not valid: {e}"))?;
    // (range of the <boot> element, is a NIC, old order)
    let mut boots: Vec<(std::ops::Range<usize>, bool, u32)> = Vec::new();
    for dev in doc
        .descendants()
        .filter(|n| n.has_tag_name("devices"))
        .flat_map(|d| d.children())
        .filter(|n| n.is_element())
    {
        let nic = dev.has_tag_name("interface");
        if !nic && !dev.has_tag_name("disk") && !dev.has_tag_name("hostdev") {
            continue;
        }
        for b in dev.children().filter(|c| c.has_tag_name("boot")) {
            let n = b
                .attribute("order")
                .and_then(|o| o.parse().ok())
                .unwrap_or(u32::MAX);
            boots.push((b.range(), nic, n));
        }
    }
    if boots.is_empty() {
        return Ok(None);
    }
    let mut ranked: Vec<usize> = (0..boots.len()).collect();
    let nic_first = first == BootDevice::Pxe;
    ranked.sort_by_key(|&i| (boots[i].1 != nic_first, boots[i].2, i));
    let mut new_order = vec![0u32; boots.len()];
    for (rank, &i) in ranked.iter().enumerate() {
        new_order[i] = u32::try_from(rank).unwrap_or(u32::MAX - 1) + 1;
    }
    let mut out = xml.to_string();
    // From the end, so earlier ranges stay valid.
    let mut idx: Vec<usize> = (0..boots.len()).collect();
    idx.sort_by_key(|&i| std::cmp::Reverse(boots[i].0.start));
    for i in idx {
        out.replace_range(
            boots[i].0.clone(),
            &format!("<boot order='{}'/>", new_order[i]),
        );
    }
    Ok(Some(out))
}

/// A disk of a domain: the file, block device or pool volume behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskSource {
    Path(String),
    Volume { pool: String, volume: String },
}

/// What discovery reads from a domain's XML.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DomainFacts {
    pub name: String,
    pub uuid: String,
    pub cores: i64,
    pub memory_mib: i64,
    pub disks: Vec<DiskSource>,
    /// Kiln's marker: the machine this domain is.
    pub system_id: Option<String>,
    /// The per-VM NVRAM file (UEFI domains).
    pub nvram: Option<String>,
}

fn text_of<'a>(n: roxmltree::Node<'a, 'a>, tag: &str) -> Option<&'a str> {
    n.children()
        .find(|c| c.has_tag_name(tag))
        .and_then(|c| c.text())
        .map(str::trim)
}

fn kib(value: &str, unit: Option<&str>) -> i64 {
    let v: i64 = value.trim().parse().unwrap_or(0);
    let mult: i64 = match unit.unwrap_or("KiB") {
        "b" | "bytes" => return v / 1024,
        "KB" => return v * 1000 / 1024,
        "k" | "KiB" => 1,
        "MB" => return v * 1_000_000 / 1024,
        "M" | "MiB" => 1024,
        "GB" => return v * 1_000_000_000 / 1024,
        "G" | "GiB" => 1024 * 1024,
        "T" | "TiB" => 1024 * 1024 * 1024,
        _ => 1,
    };
    v.saturating_mul(mult)
}

/// Reads a domain's name, uuid, vCPUs, memory, disks and Kiln marker.
pub fn parse_domain(xml: &str) -> Result<DomainFacts, String> {
    let doc =
        roxmltree::Document::parse(xml).map_err(|e| format!("the domain XML is not valid: {e}"))?;
    let root = doc.root_element();
    let mut f = DomainFacts {
        name: text_of(root, "name").unwrap_or_default().to_string(),
        uuid: text_of(root, "uuid").unwrap_or_default().to_string(),
        ..Default::default()
    };
    f.cores = text_of(root, "vcpu")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    if let Some(m) = root.children().find(|c| c.has_tag_name("memory")) {
        f.memory_mib = kib(m.text().unwrap_or("0"), m.attribute("unit")) / 1024;
    }
    for n in root.descendants() {
        if n.tag_name().namespace() == Some(KILN_NS) && n.tag_name().name() == "system_id" {
            f.system_id = n
                .text()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty());
        }
        if n.has_tag_name("nvram") {
            f.nvram = n
                .text()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty());
        }
    }
    for d in root
        .descendants()
        .filter(|n| n.has_tag_name("disk") && n.attribute("device").unwrap_or("disk") == "disk")
    {
        let Some(src) = d.children().find(|c| c.has_tag_name("source")) else {
            continue;
        };
        if let (Some(pool), Some(volume)) = (src.attribute("pool"), src.attribute("volume")) {
            f.disks.push(DiskSource::Volume {
                pool: pool.into(),
                volume: volume.into(),
            });
        } else if let Some(p) = src.attribute("file").or(src.attribute("dev")) {
            f.disks.push(DiskSource::Path(p.into()));
        }
    }
    Ok(f)
}

/// A storage pool's type and target path.
pub fn parse_pool(xml: &str) -> Result<(String, Option<String>), String> {
    let doc =
        roxmltree::Document::parse(xml).map_err(|e| format!("the pool XML is not valid: {e}"))?;
    let root = doc.root_element();
    let kind = root.attribute("type").unwrap_or("").to_string();
    let path = root
        .children()
        .find(|c| c.has_tag_name("target"))
        .and_then(|t| text_of(t, "path"))
        .map(str::to_string);
    Ok((kind, path))
}

/// From `virConnectGetDomainCapabilities`: whether the host can run UEFI guests, and Secure Boot
/// ones (libvirt lists the OVMF builds its firmware descriptors offer).
pub fn parse_firmware_caps(xml: &str) -> Result<(bool, bool), String> {
    let doc = roxmltree::Document::parse(xml)
        .map_err(|e| format!("the domain capabilities are not valid XML: {e}"))?;
    let Some(os) = doc.root_element().children().find(|c| c.has_tag_name("os")) else {
        return Ok((false, false));
    };
    let values = |parent: roxmltree::Node<'_, '_>, name: &str| -> Vec<String> {
        parent
            .children()
            .filter(|c| c.has_tag_name("enum") && c.attribute("name") == Some(name))
            .flat_map(|e| e.children().filter(|v| v.has_tag_name("value")))
            .filter_map(|v| v.text().map(str::to_string))
            .collect()
    };
    let loader = os.children().find(|c| c.has_tag_name("loader"));
    let uefi = values(os, "firmware").iter().any(|v| v == "efi")
        || loader.is_some_and(|l| {
            l.children().filter(|v| v.has_tag_name("value")).any(|v| {
                v.text()
                    .is_some_and(|t| t.contains("OVMF") || t.contains("edk2"))
            })
        });
    let secure = uefi && loader.is_some_and(|l| values(l, "secure").iter().any(|v| v == "yes"));
    Ok((uefi, secure))
}

#[cfg(test)]
mod tests {
    use super::*;
    use region_api_types::VmNic;

    fn spec(firmware: &str, sb: bool) -> VmSpec {
        VmSpec {
            system_id: "abc123".into(),
            name: "vm-<1>".into(),
            cores: 2,
            memory_mib: 1536,
            virt_type: "qemu".into(),
            arch: "x86_64".into(),
            firmware: firmware.into(),
            secure_boot: sb,
            disks: vec![
                VmDisk {
                    pool: "default".into(),
                    name: "vm-disk0".into(),
                    size_bytes: 8 << 30,
                    serial: "abc123-d0".into(),
                },
                VmDisk {
                    pool: "fast".into(),
                    name: "vm-disk1".into(),
                    size_bytes: 1 << 30,
                    serial: "abc123-d1".into(),
                },
            ],
            nics: vec![
                VmNic {
                    mac: "52:54:00:01:02:03".into(),
                    network: None,
                    bridge: Some("br0".into()),
                },
                VmNic {
                    mac: "52:54:00:01:02:04".into(),
                    network: Some("default".into()),
                    bridge: None,
                },
            ],
        }
    }

    #[test]
    fn uefi_domain_boots_nics_then_disks_per_device_and_reads_back() {
        let x = domain_xml(&spec("uefi", false));
        assert!(x.contains("<os firmware='efi'>"), "{x}");
        assert!(
            x.contains("<feature enabled='no' name='secure-boot'/>"),
            "{x}"
        );
        assert!(!x.contains("<boot dev"), "never <os><boot dev>: {x}");
        assert!(!x.contains("<smm"), "{x}");
        assert!(x.contains("<name>vm-&lt;1&gt;</name>"), "escaped: {x}");
        let orders: Vec<&str> = x
            .match_indices("<boot order='")
            .map(|(i, _)| &x[i + 13..i + 14])
            .collect();
        assert_eq!(orders, ["1", "2", "3", "4"]);
        let nic = x.find("<source bridge='br0'/>").unwrap();
        let disk = x
            .find("<source pool='default' volume='vm-disk0'/>")
            .unwrap();
        assert!(nic < disk);
        let f = parse_domain(&x).unwrap();
        assert_eq!(f.name, "vm-<1>");
        assert_eq!(f.cores, 2);
        assert_eq!(f.memory_mib, 1536);
        assert_eq!(f.system_id.as_deref(), Some("abc123"));
        assert_eq!(
            f.disks,
            vec![
                DiskSource::Volume {
                    pool: "default".into(),
                    volume: "vm-disk0".into()
                },
                DiskSource::Volume {
                    pool: "fast".into(),
                    volume: "vm-disk1".into()
                },
            ]
        );
    }

    #[test]
    fn secure_boot_turns_on_smm_and_the_firmware_features_and_bios_has_no_firmware() {
        let x = domain_xml(&spec("uefi", true));
        assert!(
            x.contains("<feature enabled='yes' name='secure-boot'/>"),
            "{x}"
        );
        assert!(
            x.contains("<feature enabled='yes' name='enrolled-keys'/>"),
            "{x}"
        );
        assert!(x.contains("<smm state='on'/>"), "{x}");
        let b = domain_xml(&spec("bios", false));
        assert!(!b.contains("firmware"), "{b}");
        assert!(
            b.contains("<type arch='x86_64' machine='q35'>hvm</type>"),
            "{b}"
        );
    }

    #[test]
    fn device_boot_order_is_renumbered_within_devices_only() {
        let x = domain_xml(&spec("uefi", false));
        let disk_first = with_device_boot_order(&x, BootDevice::Disk)
            .unwrap()
            .unwrap();
        let pos = |s: &str, needle: &str| s.find(needle).unwrap();
        // Disks get 1 and 2, NICs 3 and 4, each kind in its old order.
        let order_after = |s: &str, anchor: &str| {
            let i = pos(s, anchor);
            let j = i + s[i..].find("<boot order='").unwrap() + 13;
            s[j..j + 1].to_string()
        };
        assert_eq!(order_after(&disk_first, "volume='vm-disk0'"), "1");
        assert_eq!(order_after(&disk_first, "volume='vm-disk1'"), "2");
        assert_eq!(order_after(&disk_first, "bridge='br0'"), "3");
        assert_eq!(order_after(&disk_first, "network='default'"), "4");
        assert!(!disk_first.contains("<boot dev"));
        let back = with_device_boot_order(&disk_first, BootDevice::Pxe)
            .unwrap()
            .unwrap();
        assert_eq!(back, x, "network first again is the original");
        // A domain without per-device order is not this function's.
        let plain =
            "<domain><os><boot dev='hd'/></os><devices><disk device='disk'/></devices></domain>";
        assert_eq!(
            with_device_boot_order(plain, BootDevice::Pxe).unwrap(),
            None
        );
        assert!(with_device_boot_order("<domain", BootDevice::Pxe).is_err());
    }

    #[test]
    fn hand_made_domains_parse_with_file_disks_and_units() {
        let x = "<domain type='kvm'><name>hand</name><uuid>u-1</uuid><memory unit='GiB'>2</memory>\
                 <vcpu placement='static'>3</vcpu><os><nvram>/var/lib/libvirt/qemu/nvram/hand_VARS.fd</nvram></os>\
                 <devices><disk type='file' device='cdrom'><source file='/x.iso'/></disk>\
                 <disk type='file' device='disk'><source file='/var/lib/libvirt/images/hand.qcow2'/></disk>\
                 </devices></domain>";
        let f = parse_domain(x).unwrap();
        assert_eq!((f.cores, f.memory_mib), (3, 2048));
        assert_eq!(f.system_id, None);
        assert_eq!(
            f.nvram.as_deref(),
            Some("/var/lib/libvirt/qemu/nvram/hand_VARS.fd")
        );
        assert_eq!(
            f.disks,
            vec![DiskSource::Path(
                "/var/lib/libvirt/images/hand.qcow2".into()
            )]
        );
        assert_eq!(kib("1073741824", Some("bytes")), 1 << 20);
    }

    #[test]
    fn pools_and_firmware_capabilities() {
        let p = "<pool type='dir'><name>default</name><target><path>/var/lib/libvirt/images</path></target></pool>";
        assert_eq!(
            parse_pool(p).unwrap(),
            ("dir".into(), Some("/var/lib/libvirt/images".into()))
        );
        let caps = "<domainCapabilities><os supported='yes'><enum name='firmware'><value>bios</value><value>efi</value></enum>\
                    <loader supported='yes'><value>/usr/share/OVMF/OVMF_CODE_4M.ms.fd</value>\
                    <enum name='secure'><value>yes</value><value>no</value></enum></loader></os></domainCapabilities>";
        assert_eq!(parse_firmware_caps(caps).unwrap(), (true, true));
        let bios = "<domainCapabilities><os supported='yes'><loader supported='yes'><value>/usr/share/seabios/bios.bin</value>\
                    <enum name='secure'><value>no</value></enum></loader></os></domainCapabilities>";
        assert_eq!(parse_firmware_caps(bios).unwrap(), (false, false));
    }

    #[test]
    fn volumes_are_sparse_raw() {
        let v = volume_xml(&VmDisk {
            pool: "p".into(),
            name: "a&b".into(),
            size_bytes: 5,
            serial: "s".into(),
        });
        assert!(v.contains("<name>a&amp;b</name>"));
        assert!(v.contains("<capacity unit='bytes'>5</capacity>"));
        assert!(v.contains("<allocation unit='bytes'>0</allocation>"));
    }
}
