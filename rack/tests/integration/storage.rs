//! Root-on-iSCSI storage against real parts: the tgt driver configures a real `tgtd` (a plain
//! process on loopback, its own control port) and the volume store clones on a real XFS (reflink)
//! and a real ext4 (copy), each made by the test on a loop device.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rack::storage;
use rack::storage::volumes::{self, CloneMethod, Store};
use rack_proto::iscsi::{self, WantedTarget};

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `tgtadm -C control ARGS…` (a spawn failure reads as a failed run).
fn tgtadm(control: u16, args: &[&str]) -> std::process::Output {
    Command::new("tgtadm")
        .arg("-C")
        .arg(control.to_string())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("tgtadm: {e} (apt-get install tgt)"))
}

/// tgtd on 127.0.0.1:`portal`, control port `control`, stopped by PID at drop.
struct Tgtd {
    child: Child,
    control: u16,
}

impl Tgtd {
    fn start(control: u16, portal: u16, dir: &Path) -> Tgtd {
        let log = std::fs::File::create(dir.join(format!("tgtd-{control}.log"))).unwrap();
        let child = Command::new("tgtd")
            .args(["-f", "-C", &control.to_string(), "--iscsi"])
            .arg(format!("portal=127.0.0.1:{portal}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("tgtd (apt-get install tgt)");
        let t = Tgtd { child, control };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !tgtadm(control, &["--op", "show", "--mode", "system"])
            .status
            .success()
        {
            assert!(Instant::now() < deadline, "tgtd did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        t
    }

    /// Killed hard (tgtd ignores SIGTERM while it has targets): its state is gone, as after a
    /// crash.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Tgtd {
    fn drop(&mut self) {
        tgtadm(self.control, &["--op", "delete", "--mode", "system"]);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.kill();
    }
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wanted(id: &str, path: &Path, machine: &str, secret: &str) -> WantedTarget {
    WantedTarget {
        iqn: iscsi::target_iqn(id),
        path: path.display().to_string(),
        chap_user: iscsi::chap_user(id),
        chap_secret: secret.into(),
        initiator: iscsi::initiator_iqn(machine),
    }
}

#[tokio::test]
async fn tgt_driver_serves_what_is_wanted_and_rebuilds_it_after_tgtd_dies() {
    if !have("tgtd") {
        panic!("tgtd is missing: apt-get install tgt (tests/deps.sh installs it)");
    }
    let dir = tempfile::tempdir().unwrap();
    let control = 20000 + (std::process::id() % 10000) as u16;
    let drv = storage::build("tgt", control).unwrap();
    // No tgtd yet: a clear error, and the rack never starts one itself.
    let e = drv.check().await.unwrap_err().to_string();
    assert!(e.contains("tgtd is not running on control port"), "{e}");

    let mut tgtd = Tgtd::start(control, free_tcp_port(), dir.path());
    drv.check().await.unwrap();
    // A target that is not Kiln's, made by someone else: never touched.
    let st = tgtadm(
        control,
        &[
            "--lld",
            "iscsi",
            "--op",
            "new",
            "--mode",
            "target",
            "--tid",
            "7",
            "-T",
            "iqn.2001-04.com.example:other",
        ],
    );
    assert!(st.status.success());
    let (a, b) = (dir.path().join("a.img"), dir.path().join("b.img"));
    for p in [&a, &b] {
        std::fs::File::create(p).unwrap().set_len(16 << 20).unwrap();
    }
    let want = vec![
        wanted("va", &a, "m1", "Secret0000001"),
        wanted("vb", &b, "m2", "Secret0000002"),
    ];
    let done = drv.apply(&want).await.unwrap();
    assert!(!done.iter().any(|d| d.contains("Secret")), "{done:?}");
    let shown = drv.show().await.unwrap();
    let ours: Vec<_> = shown
        .iter()
        .filter(|t| t.iqn.starts_with(iscsi::TARGET_PREFIX))
        .collect();
    assert_eq!(ours.len(), 2, "{shown:?}");
    for (t, w) in ours.iter().zip(&want) {
        assert_eq!(t.iqn, w.iqn);
        assert_eq!(t.luns, [(1, w.path.clone())]);
        assert_eq!(t.accounts, std::slice::from_ref(&w.chap_user));
        assert!(
            t.acls.contains(&w.initiator) && t.acls.contains(&"ALL".to_string()),
            "{t:?}"
        );
    }
    assert!(
        shown.iter().any(|t| t.tid == 7),
        "the foreign target is gone: {shown:?}"
    );
    // Applied again: nothing to do.
    assert_eq!(drv.apply(&want).await.unwrap(), Vec::<String>::new());
    // The rack restarts (a new driver) with tgtd still serving: told what it applied before,
    // it leaves the targets alone, so no machine is logged out.
    let again = storage::build("tgt", control).unwrap();
    again.remember(&want);
    assert_eq!(again.apply(&want).await.unwrap(), Vec::<String>::new());

    // tgtd dies and comes back empty: the next reconciliation makes both targets again.
    tgtd.kill();
    let _tgtd = Tgtd::start(control, free_tcp_port(), dir.path());
    let done = drv.apply(&want).await.unwrap();
    assert!(
        done.iter().filter(|d| d.starts_with("new target")).count() == 2,
        "{done:?}"
    );
    // One volume released: its target and account go, the other stays.
    drv.apply(&want[1..]).await.unwrap();
    let shown = drv.show().await.unwrap();
    assert_eq!(
        shown.iter().map(|t| t.iqn.as_str()).collect::<Vec<_>>(),
        [iscsi::target_iqn("vb").as_str()]
    );
    let accts = tgtadm(
        control,
        &["--lld", "iscsi", "--op", "show", "--mode", "account"],
    );
    assert_eq!(
        iscsi::parse_show_accounts(&String::from_utf8_lossy(&accts.stdout)),
        ["kiln-vb"]
    );
}

/// A filesystem of `fstype` on a loop device over a file in `dir`, mounted at `dir/mnt`;
/// unmounted and detached at drop.
struct LoopFs {
    mnt: PathBuf,
    dev: String,
}

impl LoopFs {
    fn new(dir: &Path, fstype: &str) -> LoopFs {
        let img = dir.join(format!("{fstype}.img"));
        std::fs::File::create(&img)
            .unwrap()
            .set_len(1 << 30)
            .unwrap();
        let mkfs = Command::new(format!("mkfs.{fstype}"))
            .arg(if fstype == "xfs" { "-q" } else { "-qF" })
            .arg(&img)
            .status()
            .unwrap();
        assert!(mkfs.success(), "mkfs.{fstype}");
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&img)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let mnt = dir.join(format!("mnt-{fstype}"));
        std::fs::create_dir_all(&mnt).unwrap();
        let fs = LoopFs { mnt, dev };
        let st = Command::new("mount")
            .arg(&fs.dev)
            .arg(&fs.mnt)
            .status()
            .unwrap();
        assert!(st.success(), "mount {}", fs.dev);
        fs
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mnt).status();
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

/// A tiny "OS image": a squashfs with an etc/ and some data.
fn squashfs(dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("etc/cloud")).unwrap();
    std::fs::write(tree.join("etc/hostname"), "debian\n").unwrap();
    let data: Vec<u8> = (0..(8u32 << 20))
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(tree.join("data.bin"), data).unwrap();
    let out = dir.join("root.squashfs");
    let st = Command::new("mksquashfs")
        .arg(&tree)
        .arg(&out)
        .args(["-quiet", "-noappend"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    out
}

fn debugfs_cat(img: &Path, path: &str) -> String {
    let out = Command::new("debugfs")
        .args(["-R", &format!("cat {path}")])
        .arg(img)
        .stderr(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn volumes_clone_by_reflink_on_xfs_and_by_copy_on_ext4() {
    let dir = tempfile::tempdir().unwrap();
    let sq = squashfs(dir.path());
    let xfs = LoopFs::new(dir.path(), "xfs");
    let ext4 = LoopFs::new(dir.path(), "ext4");
    for (fs, method) in [(&xfs, CloneMethod::Reflink), (&ext4, CloneMethod::Copy)] {
        let store = Store::open(&fs.mnt.join("store")).unwrap();
        let free0 = store.free_bytes().unwrap();
        let golden = store.ensure_golden(&sq, "abc123").await.unwrap();
        assert_eq!(debugfs_cat(&golden, "/etc/hostname"), "debian\n");
        assert!(debugfs_cat(&golden, "/etc/fstab").contains("LABEL=kiln-iscsi / ext4"));
        assert!(
            debugfs_cat(&golden, "/etc/cloud/cloud.cfg.d/91_kiln_iscsi.cfg")
                .contains("config: disabled")
        );
        let glen = std::fs::metadata(&golden).unwrap().len();
        // Made once: a second call finds it.
        let t = Instant::now();
        store.ensure_golden(&sq, "abc123").await.unwrap();
        assert!(t.elapsed() < Duration::from_secs(1));

        let v1 = store.clone_volume(&golden, "v1", None).await.unwrap();
        assert_eq!(v1.method, method, "{}", fs.mnt.display());
        assert_eq!(v1.size_bytes, glen);
        let v2 = store
            .clone_volume(&golden, "v2", Some(glen + (64 << 20)))
            .await
            .unwrap();
        assert_eq!(v2.size_bytes, glen + (64 << 20));
        match method {
            // Shared with the golden volume: (almost) nothing of its own.
            CloneMethod::Reflink => assert!(v1.used_bytes < 1 << 20, "{v1:?}"),
            // Its own copy of every used block, holes kept: about what the golden uses.
            CloneMethod::Copy => {
                assert!(v1.used_bytes > 8 << 20 && v1.used_bytes < glen, "{v1:?}")
            }
        }
        // A machine's own files go into its clone only.
        volumes::write_into(
            &v1.path,
            "/etc/cloud/cloud.cfg.d",
            "90_kiln.cfg",
            b"seedfrom: x\n",
        )
        .await
        .unwrap();
        assert_eq!(
            debugfs_cat(&v1.path, "/etc/cloud/cloud.cfg.d/90_kiln.cfg"),
            "seedfrom: x\n"
        );
        assert_eq!(
            debugfs_cat(&v2.path, "/etc/cloud/cloud.cfg.d/90_kiln.cfg"),
            ""
        );
        assert_eq!(
            debugfs_cat(&golden, "/etc/cloud/cloud.cfg.d/90_kiln.cfg"),
            ""
        );
        let fsck = Command::new("e2fsck")
            .args(["-fn"])
            .arg(&v1.path)
            .output()
            .unwrap();
        assert!(
            fsck.status.success(),
            "{}",
            String::from_utf8_lossy(&fsck.stdout)
        );
        let v1b = store.volume("v1", method).await.unwrap();
        assert!(v1b.used_bytes >= v1.used_bytes, "{v1b:?}");
        assert!(store.free_bytes().unwrap() < free0);

        assert!(store
            .clone_volume(&golden, "v1", None)
            .await
            .unwrap_err()
            .to_string()
            .contains("exists"));
        assert!(store.volume_path("../x").is_err());
        assert!(store.delete("v1").unwrap());
        assert!(!store.delete("v1").unwrap());
        assert!(!v1.path.exists());
    }
}
