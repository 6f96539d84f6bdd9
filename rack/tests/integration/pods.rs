//! The libvirt pod driver against a private libvirtd (`tests/peers/libvirt`, TCG): discovery
//! matches the host, a composed UEFI VM starts (OVMF picked from the host's firmware descriptors,
//! its own NVRAM), boot order is per device, a compose that fails halfway leaves nothing, a VM
//! defined by hand is counted, and a decompose removes domain, NVRAM and volumes.

use std::process::Command;

use rack::pods::{virsh::VirshHost, PodHost};
use region_api_types::{BootDevice, PodDiscovery, PowerAction, PowerState, VmDisk, VmNic, VmSpec};
use serde_json::json;

use crate::power::{fast, params, run, Peer};

fn virsh(uri: &str, args: &[&str]) -> String {
    let out = Command::new("virsh")
        .args(["-c", uri])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "virsh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn spec(id: &str, name: &str, firmware: &str, secure_boot: bool, nics: Vec<VmNic>) -> VmSpec {
    VmSpec {
        system_id: id.into(),
        name: name.into(),
        cores: 1,
        memory_mib: 256,
        virt_type: "qemu".into(),
        arch: "x86_64".into(),
        firmware: firmware.into(),
        secure_boot,
        disks: vec![VmDisk {
            pool: "kiln".into(),
            name: format!("{name}-disk0"),
            size_bytes: 1 << 30,
            serial: format!("{id}-d0"),
        }],
        nics,
    }
}

fn pool(d: &PodDiscovery) -> &region_api_types::HostPool {
    d.pools.iter().find(|p| p.name == "kiln").unwrap()
}

/// The host's memory as its kernel counts it per NUMA node (what libvirt reports; on some VMs
/// it is less than /proc/meminfo's MemTotal), or MemTotal without NUMA nodes.
fn host_memory_mib() -> i64 {
    let kb = |text: &str| -> i64 {
        text.lines()
            .filter(|l| l.contains("MemTotal:"))
            .filter_map(|l| l.split_whitespace().rev().nth(1)?.parse::<i64>().ok())
            .sum()
    };
    let nodes: i64 = std::fs::read_dir("/sys/devices/system/node")
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("node"))
                .filter_map(|e| std::fs::read_to_string(e.path().join("meminfo")).ok())
                .map(|t| kb(&t))
                .sum()
        })
        .unwrap_or(0);
    if nodes > 0 {
        nodes / 1024
    } else {
        kb(&std::fs::read_to_string("/proc/meminfo").unwrap()) / 1024
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pod_host_against_libvirtd() {
    let t0 = std::time::Instant::now();
    let mark = |what: &str| eprintln!("[{:>6.1} s] {what}", t0.elapsed().as_secs_f64());
    let d = Peer::start("libvirt", &[]);
    mark("libvirtd up");
    let uri = d.stdout.lines().last().unwrap().trim().to_string();
    let pool_dir = d.path("pool");
    virsh(
        &uri,
        &[
            "pool-define-as",
            "kiln",
            "dir",
            "--target",
            pool_dir.to_str().unwrap(),
        ],
    );
    virsh(&uri, &["pool-build", "kiln"]);
    virsh(&uri, &["pool-start", "kiln"]);
    let host = VirshHost::new(&uri, "");

    mark("(1) What the host has.");
    // (1) What the host has.
    let before = host.discover().unwrap();
    let cpus = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    assert_eq!(before.cores, i64::try_from(cpus).unwrap(), "{before:?}");
    assert_eq!(before.memory_mib, host_memory_mib());
    assert_eq!(before.architecture, "x86_64");
    assert!(
        before.uefi && before.secure_boot,
        "Debian's OVMF has both: {before:?}"
    );
    let st = nix::sys::statvfs::statvfs(&pool_dir).unwrap();
    let fs_bytes = i64::try_from(st.blocks() * st.fragment_size()).unwrap();
    let p = pool(&before);
    assert!(p.active && p.pool_type == "dir", "{p:?}");
    assert_eq!(p.capacity_bytes, fs_bytes, "{p:?}");
    assert_eq!(p.committed_bytes, 0);
    assert!(before.vms.is_empty());

    mark("A UEFI VM (no NIC");
    // A UEFI VM (no NIC, so it can start without a bridge): sparse volume, per-device boot order.
    let vm = spec("pod001", "kiln-pod-uefi", "uefi", false, vec![]);
    let said = host.compose(&vm).unwrap();
    assert!(said.contains("defined"), "{said}");
    let img = pool_dir.join("kiln-pod-uefi-disk0");
    let meta = std::fs::metadata(&img).unwrap();
    assert_eq!(meta.len(), 1 << 30);
    assert!(
        std::os::unix::fs::MetadataExt::blocks(&meta) < 1024,
        "the volume is sparse"
    );
    let xml = virsh(&uri, &["dumpxml", "--inactive", "kiln-pod-uefi"]);
    assert!(!xml.contains("<boot dev="), "{xml}");
    assert!(xml.contains("<boot order='1'/>"), "{xml}");
    let after = host.discover().unwrap();
    let v = after
        .vms
        .iter()
        .find(|v| v.name == "kiln-pod-uefi")
        .unwrap();
    assert_eq!(v.system_id.as_deref(), Some("pod001"));
    assert_eq!((v.cores, v.memory_mib), (1, 256));
    assert_eq!(v.disks[0].size_bytes, 1 << 30);
    assert_eq!(pool(&after).committed_bytes, 1 << 30);

    mark("The power driver's boot order");
    // The power driver's boot order on it: disk first, by renumbering, never <os><boot dev>.
    let pp = params(json!({"power_address": uri, "power_id": "kiln-pod-uefi"}));
    let r = run(
        "virsh",
        &pp,
        PowerAction::On,
        Some(BootDevice::Disk),
        &fast(30),
    )
    .await;
    assert!(r.ok && r.power_state == PowerState::On, "{r:?}");
    let xml = virsh(&uri, &["dumpxml", "kiln-pod-uefi"]);
    assert!(!xml.contains("<boot dev="), "{xml}");
    assert!(
        xml.contains("loader") && xml.contains("OVMF"),
        "OVMF picked: {xml}"
    );
    let nvram = nvram_of(&xml);
    let nvram_file = d.path("ov/var/up").join(nvram.trim_start_matches("/var/"));
    assert!(nvram_file.exists(), "per-VM NVRAM {}", nvram_file.display());
    assert!(nvram.contains("kiln-pod-uefi"), "{nvram}");

    mark("Secure Boot");
    // Secure Boot: SMM on, a secure OVMF build, and it starts under TCG.
    let sb = spec("pod002", "kiln-pod-sb", "uefi", true, vec![]);
    host.compose(&sb).unwrap();
    virsh(&uri, &["start", "kiln-pod-sb"]);
    let xml = virsh(&uri, &["dumpxml", "kiln-pod-sb"]);
    assert!(xml.contains("secure='yes'"), "{xml}");

    mark("(5) A VM defined by hand");
    // (5) A VM defined by hand counts, with no machine.
    let hand = d.path("hand.xml");
    std::fs::write(
        &hand,
        "<domain type='qemu'><name>hand-made</name><memory unit='MiB'>512</memory><vcpu>2</vcpu>\
         <os><type arch='x86_64' machine='pc'>hvm</type></os><devices></devices></domain>",
    )
    .unwrap();
    virsh(&uri, &["define", hand.to_str().unwrap()]);
    let now = host.discover().unwrap();
    let h = now.vms.iter().find(|v| v.name == "hand-made").unwrap();
    assert_eq!((h.cores, h.memory_mib, h.system_id.clone()), (2, 512, None));

    mark("A compose that fails after");
    // A compose that fails after its volume was made leaves nothing; a taken name is refused.
    let mut bad = spec("pod003", "kiln-pod-bad", "uefi", false, vec![]);
    bad.virt_type = "no-such-hypervisor".into();
    let e = host.compose(&bad).unwrap_err();
    assert!(e.0.contains("cannot define VM 'kiln-pod-bad'"), "{e}");
    assert!(!pool_dir.join("kiln-pod-bad-disk0").exists());
    let e = host
        .compose(&spec("pod004", "hand-made", "bios", false, vec![]))
        .unwrap_err();
    assert!(e.0.contains("already has a VM named 'hand-made'"), "{e}");
    assert!(!pool_dir.join("hand-made-disk0").exists());
    // A NIC on a bridge: defined (it is checked when the VM starts).
    let nic = vec![VmNic {
        mac: "52:54:00:aa:00:01".into(),
        network: None,
        bridge: Some("br-kiln".into()),
    }];
    host.compose(&spec("pod005", "kiln-pod-nic", "bios", false, nic))
        .unwrap();
    let xml = virsh(&uri, &["dumpxml", "--inactive", "kiln-pod-nic"]);
    let (ni, di) = (xml.find("<interface").unwrap(), xml.find("<disk").unwrap());
    let order_in =
        |from: usize| &xml[from + xml[from..].find("<boot order='").unwrap() + 13..][..1];
    assert_eq!((order_in(ni), order_in(di)), ("1", "2"), "{xml}");

    mark("(4) Decompose a running VM");
    // (4) Decompose a running VM: domain, NVRAM and volume gone; capacity back.
    let said = host.decompose(&vm).unwrap();
    assert!(said.contains("destroyed"), "{said}");
    assert!(!img.exists());
    assert!(!nvram_file.exists(), "NVRAM removed");
    assert!(!virsh(&uri, &["list", "--all", "--name"]).contains("kiln-pod-uefi"));
    // Again: already gone is fine. A domain of another machine is not touched.
    assert!(host.decompose(&vm).unwrap().contains("nothing to remove"));
    let mut other = vm.clone();
    other.name = "hand-made".into();
    assert!(host
        .decompose(&other)
        .unwrap()
        .contains("nothing to remove"));
    assert!(virsh(&uri, &["list", "--all", "--name"]).contains("hand-made"));
    for v in [&sb, &spec("pod005", "kiln-pod-nic", "bios", false, vec![])] {
        host.decompose(v).unwrap();
    }
    let end = host.discover().unwrap();
    assert_eq!(pool(&end).committed_bytes, 0);
    assert_eq!(end.vms.len(), 1, "only the hand-made VM: {:?}", end.vms);

    mark("Unreachable host");
    // Unreachable host: an error in words.
    let gone = VirshHost::new("qemu:///system?socket=/nonexistent/sock", "");
    let e = gone.discover().unwrap_err();
    assert!(e.0.contains("cannot connect to libvirt"), "{e}");
}

fn nvram_of(xml: &str) -> String {
    let i = xml.find("<nvram").unwrap();
    let start = i + xml[i..].find('>').unwrap() + 1;
    let end = start + xml[start..].find("</nvram>").unwrap();
    xml[start..end].to_string()
}
