//! End to end root on iSCSI in the virtual lab: a real tgtd (a plain process in the lab's
//! namespace), the rack's volume store on an XFS loop device the test makes, and two diskless
//! QEMU machines (SeaBIOS and OVMF) powered by real BMCs. Both deploy one image with `--target
//! iscsi` and are checked over SSH; then tgtd is restarted under a running machine, a CHAP
//! secret is changed under another, and release removes the targets and volumes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::e2e::Lab;
use crate::e2e_deploy::{address, commissioned_vm, ssh, ssh_key, user_data, DEPLOY_TIMEOUT};

/// XFS on a loop device, mounted for the rack's volume store; removed at drop.
struct XfsStore {
    mnt: PathBuf,
    dev: String,
}

impl XfsStore {
    fn new(dir: &Path) -> XfsStore {
        let img = dir.join("store-xfs.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(12 << 30)
            .unwrap();
        let st = Command::new("mkfs.xfs")
            .arg("-q")
            .arg(&img)
            .status()
            .unwrap();
        assert!(st.success(), "mkfs.xfs");
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&img)
            .output()
            .unwrap();
        assert!(out.status.success(), "losetup");
        let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let mnt = dir.join("store");
        std::fs::create_dir_all(&mnt).unwrap();
        let s = XfsStore { mnt, dev };
        let st = Command::new("mount")
            .arg(&s.dev)
            .arg(&s.mnt)
            .status()
            .unwrap();
        assert!(st.success(), "mount {}", s.dev);
        s
    }
}

impl Drop for XfsStore {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mnt).status();
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
        if let Some(dir) = self.mnt.parent() {
            let _ = std::fs::remove_file(dir.join("store-xfs.img"));
        }
    }
}

/// tgtd in the lab's namespace (portal 10.20.0.2:3260), on its own control port.
struct Tgtd {
    child: Child,
}

impl Tgtd {
    fn start(lab: &Lab, control: u16) -> Tgtd {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(lab.dir.join("tgtd.log"))
            .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &lab.ns, "tgtd", "-f", "-C"])
            .arg(control.to_string())
            .args(["--iscsi", "portal=10.20.0.2:3260"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("tgtd (apt-get install tgt)");
        let t = Tgtd { child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !tgtadm(control, &["--op", "show", "--mode", "system"]).contains("iscsi: ready") {
            assert!(Instant::now() < deadline, "tgtd did not come up");
            std::thread::sleep(Duration::from_millis(200));
        }
        t
    }

    /// Killed hard (tgtd ignores SIGTERM while it has targets): its state is gone.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Tgtd {
    fn drop(&mut self) {
        self.kill();
    }
}

fn tgtadm(control: u16, args: &[&str]) -> String {
    let out = Command::new("tgtadm")
        .args(["-C", &control.to_string(), "--lld", "iscsi"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn targets(control: u16) -> String {
    tgtadm(control, &["--op", "show", "--mode", "target"])
}

/// Deploys `id` with root on iSCSI and user-data that writes a marker; waits for Deployed.
fn deploy_iscsi(lab: &Lab, id: &str) -> String {
    let ud = user_data(lab);
    lab.cli(&[
        "machines",
        "deploy",
        id,
        "--target",
        "iscsi",
        "--user-data",
        ud.to_str().unwrap(),
        "--wait",
        "--timeout",
        &DEPLOY_TIMEOUT.as_secs().to_string(),
    ])
}

/// The machine runs from its volume: root is the iSCSI disk, the initiator name is the same in
/// the iBFT, in open-iscsi's file and in Kiln, and cloud-init ran the user-data.
fn check_on_iscsi(lab: &Lab, key: &Path, m: &Value, vm: &str) -> String {
    let ip = address(m);
    let got = lab.wait("SSH into the diskless machine", Duration::from_secs(180), || {
        ssh(
            lab,
            key,
            &ip,
            "hostname; findmnt -no SOURCE,FSTYPE /; sudo cat /sys/firmware/ibft/initiator/initiator-name; \
             sudo cat /etc/iscsi/initiatorname.iscsi; cat /var/tmp/kiln-marker; \
             lsblk -dno TRAN \"$(findmnt -no SOURCE /)\"",
        )
        .ok()
    });
    let lines: Vec<&str> = got.lines().map(str::trim).collect();
    let iqn = m["boot_volume"]["initiator_iqn"].as_str().unwrap();
    assert_eq!(lines.first().copied(), Some(vm), "{got}");
    let root: Vec<&str> = lines.get(1).unwrap().split_whitespace().collect();
    assert_eq!(root, ["/dev/sda", "ext4"], "{got}");
    assert_eq!(lines.get(2).copied(), Some(iqn), "{got}");
    assert_eq!(
        lines.get(3).copied(),
        Some(format!("InitiatorName={iqn}").as_str()),
        "{got}"
    );
    assert_eq!(
        lines.get(4).map(|l| l.len()),
        Some(32),
        "marker missing: {got}"
    );
    assert_eq!(lines.get(5).copied(), Some("iscsi"), "{got}");
    ip
}

/// (1) BIOS and (2) UEFI diskless machines deploy one image with root on iSCSI; (3) their IQNs
/// and volumes differ, and a file written on one is absent on the other; (4) the clones are
/// reflinks on the XFS store; (6) tgtd killed and restarted under a running machine: Kiln serves
/// the target again and the machine's root I/O goes on; (5) a CHAP secret changed under a
/// target: the machine's next boot gives a failure event; (7) release removes the targets, and
/// the volume unless it is kept.
#[test]
fn e2e_diskless_machines_run_with_root_on_iscsi() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("iscsi-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = XfsStore::new(&dir);
    let control = 20_000 + (std::process::id() % 10_000) as u16;
    let lab = Lab::with_args(
        "iscsi",
        &[
            "--iscsi-store".into(),
            store.mnt.display().to_string(),
            "--iscsi-portal".into(),
            "10.20.0.2:3260".into(),
            "--tgt-control-port".into(),
            control.to_string(),
        ],
    );
    let mut tgtd = Tgtd::start(&lab, control);
    let key = ssh_key(&lab);
    // Commissioned at once: one BIOS, one UEFI, neither with a disk.
    let (a, b) = std::thread::scope(|s| {
        let a =
            s.spawn(|| commissioned_vm(&lab, "isc1", "52:54:00:e5:00:01", "9673", &["--no-disk"]));
        let b = s.spawn(|| {
            commissioned_vm(
                &lab,
                "isc2",
                "52:54:00:e5:00:02",
                "9683",
                &["--no-disk", "--uefi"],
            )
        });
        (a.join().unwrap(), b.join().unwrap())
    });
    let (outa, outb) = std::thread::scope(|s| {
        let x = s.spawn(|| deploy_iscsi(&lab, &a));
        let y = s.spawn(|| deploy_iscsi(&lab, &b));
        (x.join().unwrap(), y.join().unwrap())
    });
    for out in [&outa, &outb] {
        // The phases, for BENCHMARKS.md (seconds since the deploy request).
        eprintln!("{out}");
        assert!(out.contains("volume_ready"), "{out}");
        assert!(out.contains("deployed"), "{out}");
    }
    let ma = lab.json(&["machines", "show", &a]);
    let mb = lab.json(&["machines", "show", &b]);
    for m in [&ma, &mb] {
        assert_eq!(m["status"], "deployed", "{m:#}");
        assert_eq!(m["deployment"]["target"], "iscsi");
        let v = &m["boot_volume"];
        assert_eq!(v["state"], "ready", "{v:#}");
        assert_eq!(v["clone_method"], "reflink", "{v:#}");
        assert_eq!(v["portal"], "10.20.0.2:3260");
        assert_eq!(v["lun"], 1);
        assert!(
            v["used_bytes"].as_i64().unwrap() < v["size_bytes"].as_i64().unwrap() / 4,
            "{v:#}"
        );
        assert!(
            !m.to_string().contains("chap"),
            "a CHAP secret in the API: {m:#}"
        );
    }
    let va = ma["boot_volume"].clone();
    let vb = mb["boot_volume"].clone();
    assert_ne!(va["initiator_iqn"], vb["initiator_iqn"]);
    assert_ne!(va["target_iqn"], vb["target_iqn"]);
    let ipa = check_on_iscsi(&lab, &key, &ma, "isc1");
    let ipb = check_on_iscsi(&lab, &key, &mb, "isc2");
    let shown = lab.cli(&["machines", "show", &a]);
    assert!(
        shown.contains(va["target_iqn"].as_str().unwrap()),
        "{shown}"
    );
    let listed = lab.json(&["volumes", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed:#}");

    // (3) One machine's writes are its own.
    ssh(
        &lab,
        &key,
        &ipa,
        "echo isc1 | sudo tee /var/tmp/only-on-isc1 >/dev/null && sync",
    )
    .unwrap();
    let other = ssh(
        &lab,
        &key,
        &ipb,
        "test -e /var/tmp/only-on-isc1 && echo present || echo absent",
    )
    .unwrap();
    assert_eq!(other, "absent");

    // (6) tgtd dies under isc1 and comes back empty: Kiln makes its targets again, and the
    // machine's root I/O resumes (the initiator's replacement timeout covers the gap). Logging
    // in again is iscsid's work: on both machines it must be running and know the boot session
    // (iscsistart made it in the initramfs) before the target goes away.
    for (ip, vm) in [(&ipa, "isc1"), (&ipb, "isc2")] {
        let state = lab.wait(
            &format!("iscsid on {vm} managing its boot session"),
            Duration::from_secs(120),
            || {
                let o = ssh(
                    &lab,
                    &key,
                    ip,
                    "systemctl is-active iscsid && sudo iscsiadm -m session -P 1 | grep 'iSCSI Session State'",
                )
                .ok()?;
                o.contains("LOGGED_IN").then_some(o)
            },
        );
        eprintln!(
            "{vm} before the tgtd restart: {}",
            state.replace('\n', "; ")
        );
    }
    tgtd.kill();
    let _tgtd = Tgtd::start(&lab, control);
    let tiqn = va["target_iqn"].as_str().unwrap().to_string();
    lab.wait(
        "Kiln to serve the targets again",
        Duration::from_secs(30),
        || targets(control).contains(&tiqn).then_some(()),
    );
    let after = lab.wait("root I/O on isc1 after the restart", Duration::from_secs(180), || {
        ssh(&lab, &key, &ipa, "echo after | sudo tee /var/tmp/after-restart >/dev/null && sync && cat /var/tmp/after-restart && cat /var/tmp/only-on-isc1").ok()
    });
    assert_eq!(after.lines().collect::<Vec<_>>(), ["after", "isc1"]);
    // isc2 was logged in to the same tgtd: its initiator logs in again too (its CHAP secret is
    // still right). Only once it has may the next step change that secret, or isc2's recovery
    // fails, its root goes read-only and it cannot be rebooted.
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    while ssh(&lab, &key, &ipb, "echo after | sudo tee /var/tmp/after-restart >/dev/null && sync && cat /var/tmp/after-restart").is_err() {
        if std::time::Instant::now() > deadline {
            // What tgtd has (targets, accounts, sessions) says whether isc2 ever logged in again.
            panic!(
                "timed out waiting for root I/O on isc2 after the restart; tgtd has:\n{}",
                targets(control)
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }

    // (5) isc2's CHAP account changed under its target, then isc2 reboots: iPXE's login is
    // refused and the machine's events say so.
    let user = format!("kiln-{}", vb["id"].as_str().unwrap());
    let tid = targets(control)
        .lines()
        .find(|l| l.starts_with("Target ") && l.ends_with(vb["target_iqn"].as_str().unwrap()))
        .and_then(|l| {
            l.trim_start_matches("Target ")
                .split(':')
                .next()
                .map(str::to_string)
        })
        .unwrap();
    tgtadm(
        control,
        &[
            "--op", "unbind", "--mode", "account", "--tid", &tid, "--user", &user,
        ],
    );
    tgtadm(
        control,
        &["--op", "delete", "--mode", "account", "--user", &user],
    );
    tgtadm(
        control,
        &[
            "--op",
            "new",
            "--mode",
            "account",
            "--user",
            &user,
            "--password",
            "NotTheSecret1",
        ],
    );
    tgtadm(
        control,
        &[
            "--op", "bind", "--mode", "account", "--tid", &tid, "--user", &user,
        ],
    );
    let _ = ssh(&lab, &key, &ipb, "sudo systemctl reboot");
    lab.wait(
        "a login failure event for isc2",
        Duration::from_secs(300),
        || {
            let evs = lab
                .json(&["machines", "events", &b, "--limit", "100"])
                .to_string();
            evs.contains("iscsi_login_failed").then_some(())
        },
    );
    let evs = lab.json(&["machines", "events", &b, "--limit", "100"]);
    let ev = evs
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_type"] == "iscsi_login_failed")
        .unwrap();
    assert_eq!(ev["level"], "error", "{ev:#}");
    assert!(
        ev["description"]
            .as_str()
            .unwrap()
            .contains("wrong CHAP secret"),
        "{ev:#}"
    );

    // (7) Release: powered off, target and account gone; isc1's volume deleted, isc2's kept.
    lab.cli(&["machines", "release", &a, "--wait"]);
    lab.cli(&["machines", "release", &b, "--keep-volume", "--wait"]);
    let vol = |v: &Value| {
        store
            .mnt
            .join("vol")
            .join(format!("{}.img", v["id"].as_str().unwrap()))
    };
    lab.wait(
        "the volumes to be removed",
        Duration::from_secs(180),
        || {
            let la = lab.json(&["machines", "show", &a]);
            let lb = lab.json(&["machines", "show", &b]);
            (la["boot_volume"]["state"] == "removed" && lb["boot_volume"]["state"] == "kept")
                .then_some(())
        },
    );
    let shown = targets(control);
    assert!(
        !shown.contains(&tiqn) && !shown.contains(vb["target_iqn"].as_str().unwrap()),
        "{shown}"
    );
    assert!(!tgtadm(control, &["--op", "show", "--mode", "account"]).contains("kiln-"));
    assert!(!vol(&va).exists(), "isc1's volume is still there");
    assert!(vol(&vb).exists(), "isc2's kept volume is gone");
    let evs = lab
        .json(&["machines", "events", &a, "--limit", "200"])
        .to_string();
    assert!(evs.contains("volume_removed"), "{evs}");
    drop(lab);
}
