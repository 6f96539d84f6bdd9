//! End to end deployment in the virtual lab: QEMU machines powered by a real BMC (`ipmi_sim`
//! wired to QEMU: power on starts it, off stops it; a guest reboot restarts it) are commissioned,
//! deployed with the Debian image `kiln images build` made, reboot from their own disk, and are
//! reached over SSH with the owner's key; release with erase leaves zeros on the disk. What is
//! checked is what the machines did: the region's state, SSH into them, their disk images.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::e2e::{repo, Lab};

pub(crate) const DEPLOY_TIMEOUT: Duration = Duration::from_secs(1500);

/// A VM with one disk, powered by its own `ipmi_sim` on `port`, created in Kiln with IPMI power
/// and commissioned to Ready (by Kiln alone).
pub(crate) fn commissioned_vm(
    lab: &Lab,
    vm: &str,
    mac: &str,
    port: &str,
    extra: &[&str],
) -> String {
    let id = ipmi_vm(lab, vm, mac, port, extra);
    lab.cli(&["machines", "commission", &id]);
    let m = lab.settled(&id);
    assert_eq!(
        m["status"],
        "ready",
        "{m:#}\n{}",
        lab.cli(&["machines", "results", &id])
    );
    id
}

/// As [`commissioned_vm`], left New (not commissioned).
pub(crate) fn ipmi_vm(lab: &Lab, vm: &str, mac: &str, port: &str, extra: &[&str]) -> String {
    let bmc = lab.dir.join(format!("{vm}-bmc"));
    let cmd = lab.dir.join(format!("{vm}.cmd"));
    let mut opts = vec!["--mac", mac];
    // `--no-disk`: diskless (root on iSCSI); else one 6 GiB disk unless `--disk` says otherwise.
    let diskless = extra.contains(&"--no-disk");
    if !extra.contains(&"--disk") && !diskless {
        opts.extend(["--disk", "6"]);
    }
    let extra: Vec<&str> = extra
        .iter()
        .copied()
        .filter(|a| *a != "--no-disk")
        .collect();
    let extra = extra.as_slice();
    opts.extend([
        "--mem",
        "1536",
        "--reboot",
        "--bmc-port",
        port,
        "--cmd-file",
        cmd.to_str().unwrap(),
    ]);
    opts.extend_from_slice(extra);
    lab.vm(vm, &opts);
    let out = lab.ns_cmd(&[
        repo().join("tests/peers/ipmi/start.sh").to_str().unwrap(),
        bmc.to_str().unwrap(),
        port,
        cmd.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "ipmi_sim: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = lab.json(&[
        "machines",
        "create",
        "--hostname",
        vm,
        "--mac",
        mac,
        "--power-type",
        "ipmi",
        "--power-address",
        "127.0.0.1",
        "--power-param",
        &format!("power_port={port}"),
        "--power-param",
        "power_user=admin",
        "--power-param",
        "power_pass=secret",
        // BMC auto-configuration is the commissioning tests' subject; in-band IPMI through
        // ipmi_sim is slow under load, so these machines keep the credentials given here.
        "--skip-bmc-config",
        "true",
    ]);
    m["system_id"].as_str().unwrap().to_string()
}

/// The first and last MiB of a disk image.
fn disk_ends(path: &Path) -> (Vec<u8>, Vec<u8>) {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).unwrap();
    let mut head = vec![0u8; 1 << 20];
    f.read_exact(&mut head).unwrap();
    let mut tail = vec![0u8; 1 << 20];
    f.seek(SeekFrom::End(-(1 << 20))).unwrap();
    f.read_exact(&mut tail).unwrap();
    (head, tail)
}

pub(crate) fn ssh_key(lab: &Lab) -> std::path::PathBuf {
    let key = lab.dir.join("id_ed25519");
    if !key.exists() {
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "e2e@kiln", "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(st.success());
        lab.cli(&[
            "sshkeys",
            "add",
            "--file",
            &format!("{}.pub", key.display()),
        ]);
    }
    key
}

/// The machine's address (the rack's lease, or its static reservation).
pub(crate) fn address(m: &Value) -> String {
    m["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|i| i["ip"].as_str())
        .unwrap_or_else(|| panic!("no address for {m:#}"))
        .to_string()
}

pub(crate) fn ssh(lab: &Lab, key: &Path, ip: &str, command: &str) -> Result<String, String> {
    let out = lab.ns_cmd(&[
        "ssh",
        "-i",
        key.to_str().unwrap(),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "ConnectTimeout=10",
        "-o",
        "BatchMode=yes",
        &format!("debian@{ip}"),
        command,
    ]);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

pub(crate) fn user_data(lab: &Lab) -> std::path::PathBuf {
    let ud = lab.dir.join("user-data");
    std::fs::write(
        &ud,
        "#cloud-config\nruncmd:\n  - [sh, -c, 'cat /etc/machine-id > /var/tmp/kiln-marker']\n",
    )
    .unwrap();
    ud
}

/// Deploys with user-data that writes a marker, waits for Deployed (a progress line per step),
/// checks the machine over SSH; returns the machine's address.
fn deploy_and_check(lab: &Lab, id: &str, vm: &str, firmware: &str) -> String {
    // The owner's keys are taken when the deployment starts.
    ssh_key(lab);
    let ud = user_data(lab);
    let out = lab.cli(&[
        "machines",
        "deploy",
        id,
        "--user-data",
        ud.to_str().unwrap(),
        "--wait",
        "--timeout",
        &DEPLOY_TIMEOUT.as_secs().to_string(),
    ]);
    for step in ["image:", "bootloader:", "os_installed", "deployed"] {
        assert!(out.contains(step), "no {step} in the progress:\n{out}");
    }
    check_deployed(lab, id, vm, firmware)
}

/// Stops a process started for a test, by PID, when dropped.
struct Stop(std::process::Child);

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The deployed system's apt goes through the rack's proxy (cloud-init wrote it from Kiln's
/// vendor-data): `apt-get update` of a package mirror the test serves on an address only the rack
/// host has (the machine has no route to it) succeeds, and the proxy counted the fetches.
fn apt_goes_through_the_rack_proxy(lab: &Lab, ip: &str) {
    use sha2::{Digest, Sha256};
    let mirror = lab.dir.join("mirror");
    std::fs::create_dir_all(&mirror).unwrap();
    let packages = b"";
    std::fs::write(mirror.join("Packages"), packages).unwrap();
    let release = format!(
        "Origin: kiln-test\nLabel: kiln-test\nSuite: kiln\nCodename: kiln\nArchitectures: amd64 all\nDate: Wed, 02 Dec 2026 00:00:00 UTC\nSHA256:\n {} {} Packages\n",
        hex::encode(Sha256::digest(packages)),
        packages.len()
    );
    std::fs::write(mirror.join("Release"), release).unwrap();
    assert!(lab
        .ns_cmd(&["ip", "addr", "add", "10.77.0.1/32", "dev", "lo"])
        .status
        .success());
    let log = std::fs::File::create(lab.dir.join("mirror.log")).unwrap();
    let _mirror = Stop(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &lab.ns,
                "python3",
                "-u",
                "-m",
                "http.server",
                "--bind",
                "10.77.0.1",
                "--directory",
            ])
            .arg(&mirror)
            .arg("8081")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let key = ssh_key(lab);
    let out = lab.wait("apt-get update through the proxy", Duration::from_secs(120), || {
        ssh(
            lab,
            &key,
            ip,
            "apt-config dump | grep -i 'Acquire::http::Proxy'; echo 'deb [trusted=yes] http://10.77.0.1:8081/ ./' > /tmp/kiln.list; mkdir -p /tmp/none; sudo apt-get update -o Dir::Etc::SourceList=/tmp/kiln.list -o Dir::Etc::SourceParts=/tmp/none 2>&1; rc=$?; sync; echo rc=$rc",
        )
        .ok()
        .filter(|o| o.contains("rc=0"))
    });
    assert!(
        out.contains("http://10.20.0.2:8000/"),
        "apt has no proxy setting: {out}"
    );
    let origin = std::fs::read_to_string(lab.dir.join("mirror.log")).unwrap_or_default();
    assert!(
        origin.contains("GET /Release"),
        "the mirror saw no request: {origin}\n{out}"
    );
    let m = lab.ns_cmd(&["curl", "-sf", "http://127.0.0.1:5248/metrics"]);
    let m = String::from_utf8_lossy(&m.stdout);
    assert!(m.contains("what=\"proxy_misses\""), "{m}");
}

/// The machine is Deployed and is what was asked for, seen over SSH with the owner's key.
pub(crate) fn check_deployed_over_ssh(lab: &Lab, id: &str, vm: &str, firmware: &str) -> String {
    let key = ssh_key(lab);
    let m = lab.json(&["machines", "show", id]);
    assert_eq!(m["status"], "deployed", "{m:#}");
    let ip = address(&m);
    let got = lab.wait("SSH into the deployed machine", Duration::from_secs(120), || {
        ssh(lab, &key, &ip, "hostname; cat /var/tmp/kiln-marker; findmnt -no FSTYPE,SOURCE /; test -d /sys/firmware/efi && echo uefi || echo bios").ok()
    });
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.first().copied(), Some(vm), "{got}");
    assert_eq!(
        lines.get(1).map(|l| l.len()),
        Some(32),
        "marker (machine-id) missing: {got}"
    );
    // findmnt pads its columns.
    let root: Vec<&str> = lines
        .get(2)
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    assert!(
        root.first() == Some(&"ext4") && root.get(1).is_some_and(|d| d.starts_with("/dev/vda")),
        "{got}"
    );
    assert_eq!(lines.get(3).copied(), Some(firmware), "{got}");
    ip
}

/// The machine is Deployed as [`check_deployed_over_ssh`] sees it, and its serial console shows
/// the installer's end and the local-disk boot.
fn check_deployed(lab: &Lab, id: &str, vm: &str, firmware: &str) -> String {
    let ip = check_deployed_over_ssh(lab, id, vm, firmware);
    // The machine booted its disk through Kiln's local-boot script, not the installer again.
    let serial = lab.serial(vm);
    assert!(serial.contains("KILN-DEPLOY-INSTALLED"), "{serial}");
    assert!(serial.contains("booting from the local disk"), "{serial}");
    ip
}

/// (1) BIOS: commissioned → allocated → deployed with user-data, reboots from its disk, SSH as
/// `debian` with the owner's key; (3) release with quick erase → Ready, the disk's first MiB is
/// zero; (4) redeploy gives a new instance-id, here with the first deployment's disk uploaded as
/// an operator's raw/zstd image (streamed to the disk, booted by its own bootloader).
#[test]
fn e2e_bios_machine_deploys_to_disk_then_release_erases_it() {
    let lab = Lab::new("dbios");
    let id = commissioned_vm(&lab, "dep1", "52:54:00:e3:00:01", "9633", &["--disk", "3"]);
    let m = lab.json(&["machines", "allocate", &id]);
    assert_eq!(m["status"], "allocated");
    let ip = deploy_and_check(&lab, &id, "dep1", "bios");
    apt_goes_through_the_rack_proxy(&lab, &ip);
    let first: Value = lab.json(&["machines", "show", &id]);
    let instance = first["deployment"]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();

    // The deployed disk, taken with the machine off, becomes an operator's raw/zstd disk image.
    lab.cli(&["machines", "power-off", &id]);
    lab.wait("the machine to be off", Duration::from_secs(120), || {
        (lab.json(&["machines", "power", &id])["power_state"] == "off").then_some(())
    });
    let raw = lab.dir.join("mine.raw.zst");
    let st = Command::new("zstd")
        .args(["-q", "-3", "-T2", "-f", "-o"])
        .arg(&raw)
        .arg(lab.dir.join("dep1-d0.img"))
        .status()
        .unwrap();
    assert!(st.success(), "zstd");

    // Release with quick erase: Disk erasing → Ready, powered off by Kiln; the disk is zero where
    // the partition table and boot code were.
    let out = lab.cli(&["machines", "release", &id, "--erase", "--quick", "--wait"]);
    assert!(out.contains("disk_erased"), "{out}");
    let m = lab.json(&["machines", "show", &id]);
    assert_eq!(m["status"], "ready", "{m:#}");
    lab.wait(
        "Kiln to power the machine off",
        Duration::from_secs(180),
        || (lab.json(&["machines", "show", &id])["power_state"] == "off").then_some(()),
    );
    let (head, tail) = disk_ends(&lab.dir.join("dep1-d0.img"));
    assert!(head.iter().all(|b| *b == 0), "the first MiB is not zero");
    assert!(tail.iter().all(|b| *b == 0), "the last MiB is not zero");

    // The raw image deploys: streamed onto the disk and hashed on the fly, its own bootloader
    // boots it, and cloud-init runs for the new instance.
    lab.cli(&[
        "images",
        "upload",
        "--os",
        "mine",
        "--release",
        "1",
        "--kind",
        "os",
        raw.to_str().unwrap(),
    ]);
    let out = lab.cli(&[
        "machines",
        "deploy",
        &id,
        "--os",
        "mine",
        "--wait",
        "--timeout",
        &DEPLOY_TIMEOUT.as_secs().to_string(),
    ]);
    assert!(out.contains("streamed to /dev/vda and verified"), "{out}");
    assert!(out.contains("brings its own bootloader"), "{out}");
    let m = lab.json(&["machines", "show", &id]);
    assert_eq!(m["status"], "deployed", "{m:#}");
    let raw_instance = m["deployment"]["instance_id"].as_str().unwrap().to_string();
    assert_ne!(raw_instance, instance);
    let key = ssh_key(&lab);
    let ip = address(&m);
    let got = lab.wait(
        "SSH into the raw-image machine",
        Duration::from_secs(120),
        || {
            ssh(
                &lab,
                &key,
                &ip,
                "cat /var/lib/cloud/data/instance-id; findmnt -no FSTYPE,SOURCE /",
            )
            .ok()
        },
    );
    let got: Vec<&str> = got.split_whitespace().collect();
    assert_eq!(got, [raw_instance.as_str(), "ext4", "/dev/vda2"], "{got:?}");
}

/// (2) UEFI (OVMF): the same, with grub in the ESP and the removable path; the local boot goes
/// through grub-local.efi with the machine's ESP UUID.
#[test]
fn e2e_uefi_machine_deploys_to_disk_through_a_region_crash() {
    let mut lab = Lab::new("duefi");
    let id = commissioned_vm(&lab, "dep2", "52:54:00:e3:00:02", "9643", &["--uefi"]);
    // Commissioning saw an OVMF machine with a virtio NIC.
    let m = lab.json(&["machines", "show", &id]);
    assert_eq!(m["hardware"]["firmware"], "uefi", "{m:#}");
    assert_eq!(m["hardware"]["memory_mib"], 1536);
    assert_eq!(m["hardware"]["disks"][0]["size_bytes"], 6_i64 << 30);
    assert_eq!(m["hardware"]["nics"][0]["driver"], "virtio_net");
    // The region (and its rack) killed with -9 while the installer works: after the restart the
    // machine is still Deploying and the installer's retried reports finish the deployment.
    ssh_key(&lab);
    let ud = user_data(&lab);
    lab.cli(&[
        "machines",
        "deploy",
        &id,
        "--user-data",
        ud.to_str().unwrap(),
    ]);
    lab.wait("the installer to start", DEPLOY_TIMEOUT, || {
        lab.serial("dep2")
            .contains("kiln-deploy: step image")
            .then_some(())
    });
    lab.crash_and_restart();
    assert_eq!(lab.json(&["machines", "show", &id])["status"], "deploying");
    lab.wait("Deployed after the crash", DEPLOY_TIMEOUT, || {
        let m = lab.json(&["machines", "show", &id]);
        (m["status"] != "deploying").then_some(())
    });
    check_deployed(&lab, &id, "dep2", "uefi");
    let m = lab.json(&["machines", "show", &id]);
    let evs = lab
        .json(&["machines", "events", &id, "--limit", "500"])
        .to_string();
    assert!(
        evs.contains("sent grub-local.efi over HTTP (chainloads the ESP"),
        "{evs}"
    );
    assert_eq!(m["status"], "deployed");
}

/// (5) Memory target: the machine boots the OS image into RAM (squashfs + tmpfs overlay), its
/// cloud-init signals Deployed, SSH works, and its disk was never written; (6) a broken image
/// gives Failed deployment with the installer's output; (7) released, it deploys with the lvm
/// layout onto the disk asked for; (8) release with secure erase: the NVMe drive is formatted by
/// its own controller, the virtio disk (no erase command) gets zeros over every byte.
#[test]
fn e2e_memory_deployment_leaves_the_disk_alone() {
    use std::os::unix::fs::MetadataExt;
    let lab = Lab::new("dmem");
    let id = commissioned_vm(
        &lab,
        "dep3",
        "52:54:00:e3:00:03",
        "9653",
        &["--disk", "3", "--nvme", "1"],
    );
    let key = ssh_key(&lab);
    let out = lab.cli(&[
        "machines",
        "deploy",
        &id,
        "--target",
        "memory",
        "--wait",
        "--timeout",
        &DEPLOY_TIMEOUT.as_secs().to_string(),
    ]);
    assert!(out.contains("deployed"), "{out}");
    let m = lab.json(&["machines", "show", &id]);
    assert_eq!(m["status"], "deployed", "{m:#}");
    assert_eq!(m["deployment"]["target"], "memory");
    let ip = address(&m);
    let got = lab.wait(
        "SSH into the machine in memory",
        Duration::from_secs(120),
        || ssh(&lab, &key, &ip, "hostname; findmnt -no FSTYPE /").ok(),
    );
    let got: Vec<&str> = got.split_whitespace().collect();
    assert_eq!(got, ["dep3", "overlay"], "{got:?}");
    // Nothing was ever written to the (sparse) disk images.
    for img in ["dep3-d0.img", "dep3-n0.img"] {
        let disk = std::fs::metadata(lab.dir.join(img)).unwrap();
        assert_eq!(disk.blocks(), 0, "{img} was written to");
    }

    // (6) An image whose write fails (an operator's upload that is no squashfs): Failed
    // deployment, with the installer's output in the API.
    lab.cli(&["machines", "release", &id, "--wait"]);
    let bad = lab.dir.join("root.squashfs");
    std::fs::write(&bad, vec![0x5au8; 3 << 20]).unwrap();
    lab.cli(&[
        "images",
        "upload",
        "--os",
        "broken",
        "--release",
        "1",
        "--kind",
        "os",
        bad.to_str().unwrap(),
    ]);
    let out = lab.try_cli(&[
        "machines",
        "deploy",
        &id,
        "--os",
        "broken",
        "--wait",
        "--timeout",
        &DEPLOY_TIMEOUT.as_secs().to_string(),
    ]);
    assert!(out.is_err_and(|e| e.contains("Failed deployment")));
    let m = lab.json(&["machines", "show", &id]);
    assert_eq!(m["status"], "failed_deployment", "{m:#}");
    let evs = lab
        .json(&["machines", "events", &id, "--limit", "500"])
        .to_string();
    assert!(evs.contains("Deployment failed at step 'image'"), "{evs}");
    let d: Value = lab.json(&["machines", "deployment", &id]);
    assert!(
        d["installer_output"]
            .as_str()
            .unwrap()
            .contains("unsquashfs"),
        "{d:#}"
    );

    // (7) Released from Failed deployment and deployed with the `lvm` layout: a new
    // instance-id, cloud-init ran (the marker is the machine-id), and root is the logical volume
    // vgroot/lvroot, which the deployed system's initramfs activates.
    let instance = m["deployment"]["instance_id"].as_str().unwrap().to_string();
    lab.cli(&["machines", "release", &id, "--wait"]);
    let ud = user_data(&lab);
    let out = lab.cli(&[
        "machines",
        "deploy",
        &id,
        "--layout",
        "lvm",
        // Commissioning lists nvme0n1 first; the operator picks the virtio disk by serial.
        "--boot-disk",
        "dep3-d0",
        "--user-data",
        ud.to_str().unwrap(),
        "--wait",
        "--timeout",
        &DEPLOY_TIMEOUT.as_secs().to_string(),
    ]);
    assert!(out.contains("root /dev/mapper/vgroot-lvroot ext4"), "{out}");
    let m = lab.json(&["machines", "show", &id]);
    assert_eq!(m["status"], "deployed", "{m:#}");
    assert_eq!(m["deployment"]["storage_layout"], "lvm");
    assert_ne!(
        m["deployment"]["instance_id"].as_str(),
        Some(instance.as_str()),
        "{m:#}"
    );
    let ip = address(&m);
    let got = lab.wait("SSH into the LVM machine", Duration::from_secs(120), || {
        ssh(
            &lab,
            &key,
            &ip,
            "cat /var/tmp/kiln-marker; findmnt -no FSTYPE,SOURCE /",
        )
        .ok()
    });
    let got: Vec<&str> = got.split_whitespace().collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0].len(), 32, "marker (machine-id) missing: {got:?}");
    assert_eq!(got[1..], ["ext4", "/dev/mapper/vgroot-lvroot"], "{got:?}");

    // (8) Data on both drives, then release with secure erase: Ready, one event per disk saying
    // how it was erased, and not one byte of either image is left non-zero.
    ssh(
        &lab,
        &key,
        &ip,
        "sudo sh -c 'yes kiln | head -c 8388608 | dd of=/dev/nvme0n1 bs=1M seek=100 oflag=direct status=none && sync'",
    )
    .unwrap();
    assert!(
        !all_zero(&lab.dir.join("dep3-n0.img")),
        "no data on the NVMe drive"
    );
    let out = lab.cli(&["machines", "release", &id, "--erase", "--secure", "--wait"]);
    assert!(out.contains("disk_erased"), "{out}");
    let m = lab.json(&["machines", "show", &id]);
    assert_eq!(m["status"], "ready", "{m:#}");
    let evs = lab
        .json(&["machines", "events", &id, "--limit", "500"])
        .to_string();
    assert!(
        evs.contains("/dev/nvme0n1 (1 GiB): NVMe format with secure erase"),
        "{evs}"
    );
    assert!(evs.contains("/dev/vda (3 GiB): zeros over all"), "{evs}");
    for img in ["dep3-d0.img", "dep3-n0.img"] {
        assert!(all_zero(&lab.dir.join(img)), "{img} is not all zeros");
    }
}

/// Whether every byte of a (disk image) file is zero.
fn all_zero(path: &Path) -> bool {
    use std::io::Read;
    let mut f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; 4 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            return true;
        }
        if buf[..n].iter().any(|b| *b != 0) {
            return false;
        }
    }
}
