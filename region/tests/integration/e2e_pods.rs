//! KVM pods end to end: a private libvirtd (TCG) runs inside the lab's namespace, so the VMs it
//! starts sit on the lab bridge. The lab's host is added as a pod through the CLI; what Kiln
//! reads back must match the host; a hand-made VM counts after a refresh; an over-capacity
//! compose is refused in words; a composed UEFI VM PXE boots from Kiln and commissions to Ready
//! with the inventory asked for; deleting it leaves no domain, NVRAM or volume; a pod with
//! machines is deleted only with --force.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::e2e::{repo, Lab};

/// The lab's libvirtd, stopped (by PID, through stop.sh) on drop.
struct Libvirtd {
    dir: PathBuf,
    uri: String,
}

impl Libvirtd {
    fn start(lab: &Lab) -> Libvirtd {
        let dir = lab.dir.join("libvirt");
        let out = lab.ns_cmd(&[
            repo()
                .join("tests/peers/libvirt/start.sh")
                .to_str()
                .unwrap(),
            dir.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "libvirtd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let uri = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap()
            .trim()
            .to_string();
        let l = Libvirtd { dir, uri };
        let pool = l.dir.join("pool");
        l.virsh(&[
            "pool-define-as",
            "kiln",
            "dir",
            "--target",
            pool.to_str().unwrap(),
        ]);
        l.virsh(&["pool-build", "kiln"]);
        l.virsh(&["pool-start", "kiln"]);
        l
    }

    fn virsh(&self, args: &[&str]) -> String {
        let out = Command::new("virsh")
            .args(["-c", &self.uri])
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

    fn domains(&self) -> String {
        self.virsh(&["list", "--all", "--name"])
    }

    fn nvram_dir(&self) -> PathBuf {
        self.dir.join("ov/var/up/lib/libvirt/qemu/nvram")
    }
}

impl Drop for Libvirtd {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("tests/peers/libvirt/stop.sh"))
            .arg(&self.dir)
            .output();
    }
}

fn host_memory_mib() -> i64 {
    let kb = |t: &str| -> i64 {
        t.lines()
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

fn files_in(d: &Path) -> Vec<String> {
    std::fs::read_dir(d)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A logged-in browser session, as curl inside the lab's namespace.
struct Web<'a> {
    lab: &'a Lab,
    jar: String,
}

impl<'a> Web<'a> {
    fn login(lab: &'a Lab) -> Web<'a> {
        let w = Web {
            lab,
            jar: lab.dir.join("cookies").to_str().unwrap().to_string(),
        };
        let csrf = csrf_of(&w.get("/login").1);
        let (code, body) = w.post(
            "/login",
            &[
                ("username", "admin"),
                ("password", "admin-password"),
                ("csrf", &csrf),
                ("next", "/pods"),
            ],
        );
        assert_eq!(
            code,
            303,
            "login: {body}\n{}",
            std::fs::read_to_string(&w.jar).unwrap_or_default()
        );
        w
    }

    fn curl(&self, extra: &[&str]) -> (u16, String) {
        let mut args = vec![
            "curl",
            "-s",
            "-b",
            &self.jar,
            "-c",
            &self.jar,
            "-w",
            "\n%{http_code}",
        ];
        args.extend_from_slice(extra);
        let out = self.lab.ns_cmd(&args);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.trim().parse().unwrap(), body.to_string())
    }

    fn get(&self, path: &str) -> (u16, String) {
        self.curl(&[&format!("http://127.0.0.1:5240{path}")])
    }

    fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let pairs: Vec<String> = form.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut args: Vec<&str> = Vec::new();
        for p in &pairs {
            args.extend(["--data-urlencode", p.as_str()]);
        }
        let url = format!("http://127.0.0.1:5240{path}");
        args.push(&url);
        self.curl(&args)
    }
}

fn csrf_of(html: &str) -> String {
    let needle = "name=\"csrf\" value=\"";
    let i = html.find(needle).expect(html) + needle.len();
    html[i..i + html[i..].find('"').unwrap()].to_string()
}

#[test]
fn e2e_pod_composes_a_uefi_vm_that_commissions_and_decomposes_cleanly() {
    let lab = Lab::new("pods");
    let lv = Libvirtd::start(&lab);

    // A wrong address: refused in words, nothing kept.
    let e = lab
        .try_cli(&[
            "pods",
            "add",
            "nowhere",
            "--power-address",
            "qemu:///system?socket=/nonexistent/sock",
        ])
        .unwrap_err();
    assert!(e.contains("cannot connect to libvirt"), "{e}");
    assert_eq!(lab.json(&["pods", "list"]).as_array().unwrap().len(), 0);

    // (1) The host as Kiln reads it.
    let p = lab.json(&[
        "pods",
        "add",
        "lab",
        "--power-address",
        &lv.uri,
        "--default-network",
        "br0",
        "--tags",
        "kvm",
        "--cpu-over-commit-ratio",
        "4",
    ]);
    let id = p["id"].as_str().unwrap().to_string();
    let cpus = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    assert_eq!(p["state"], "ok", "{p:#}");
    assert_eq!(p["cores"]["total"], cpus, "{p:#}");
    assert_eq!(p["cores"]["limit"], cpus * 4, "{p:#}");
    assert_eq!(p["memory_mib"]["total"], host_memory_mib(), "{p:#}");
    assert_eq!(p["virt_type"], "qemu");
    let st = Command::new("stat")
        .args(["-f", "-c", "%b %S"])
        .arg(lv.dir.join("pool"))
        .output()
        .unwrap();
    let st: Vec<i64> = String::from_utf8_lossy(&st.stdout)
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    let pool = &p["storage_pools"][0];
    assert_eq!(pool["name"], "kiln");
    assert_eq!(
        pool["capacity_bytes"].as_i64().unwrap(),
        st[0] * st[1],
        "{pool:#}"
    );
    assert_eq!(pool["default"], true);

    // (5) A VM defined by hand shows up after a refresh and counts.
    let hand = lab.dir.join("hand.xml");
    std::fs::write(
        &hand,
        "<domain type='qemu'><name>hand-made</name><memory unit='MiB'>512</memory><vcpu>1</vcpu>\
        <os><type arch='x86_64' machine='pc'>hvm</type></os><devices></devices></domain>",
    )
    .unwrap();
    lv.virsh(&["define", hand.to_str().unwrap()]);
    let p = lab.json(&["pods", "refresh", &id]);
    let vms = p["vms"].as_array().unwrap();
    assert!(
        vms.iter()
            .any(|v| v["name"] == "hand-made" && v["system_id"].is_null()),
        "{p:#}"
    );
    assert_eq!(p["cores"]["used"], 1);
    assert_eq!(p["memory_mib"]["used"], 512);

    // (3) More than the host has × overcommit: 409 in words, nothing made.
    let e = lab
        .try_cli(&["pods", "compose", &id, "--cores", "64", "--memory", "1024"])
        .unwrap_err();
    assert!(
        e.contains("cannot hold this VM") && e.contains("64 cores were asked for"),
        "{e}"
    );
    let e = lab
        .try_cli(&["pods", "compose", &id, "--disk", "60000"])
        .unwrap_err();
    assert!(e.contains("of disk in pool 'kiln'"), "{e}");
    assert_eq!(
        lab.json(&["machines", "list"])["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    // (2) A UEFI VM on the lab bridge: PXE boots from Kiln, commissions to Ready.
    let m = lab.json(&[
        "pods",
        "compose",
        &id,
        "--cores",
        "2",
        "--memory",
        "1536",
        "--disk",
        "6",
        "--hostname",
        "vm-pod1",
    ]);
    let sid = m["system_id"].as_str().unwrap().to_string();
    assert_eq!(m["power_type"], "virsh");
    assert_eq!(m["pod"]["name"], "lab");
    assert_eq!(m["tags"][0], "kvm");
    let xml = lv.virsh(&["dumpxml", "--inactive", "vm-pod1"]);
    assert!(!xml.contains("<boot dev="), "{xml}");
    assert!(xml.contains("firmware='efi'"), "{xml}");
    let m = lab.settled(&sid);
    assert_eq!(
        m["status"],
        "ready",
        "{m:#}\n{}",
        lab.cli(&["machines", "events", &sid, "--limit", "200"])
    );
    let hw = &m["hardware"];
    assert_eq!(hw["cpu_count"], 2, "{hw:#}");
    assert_eq!(hw["memory_mib"], 1536, "{hw:#}");
    assert_eq!(hw["firmware"], "uefi", "{hw:#}");
    assert_eq!(hw["disks"][0]["size_bytes"], 6_i64 << 30, "{hw:#}");
    assert_eq!(hw["disks"][0]["serial"], format!("{sid}-d0"), "{hw:#}");
    assert_eq!(hw["nics"][0]["mac"], m["boot_mac"], "{hw:#}");
    // Kiln powered it off at the end, through libvirt.
    lab.wait("the VM to be off", Duration::from_secs(120), || {
        lv.virsh(&["domstate", "vm-pod1"])
            .contains("shut off")
            .then_some(())
    });
    let p = lab.json(&["pods", "show", &id]);
    assert_eq!(p["cores"]["used"], 3, "{p:#}");
    assert_eq!(p["storage_pools"][0]["committed_bytes"], 6_i64 << 30);
    assert!(p["vms"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["system_id"] == sid.as_str()));
    // The pod's page: capacity bars, the VMs (the hand-made one too), the composed machine; the
    // compose form refuses what does not fit, in words, beside the form.
    let web = Web::login(&lab);
    let (code, html) = web.get(&format!("/pods/{id}"));
    assert_eq!(code, 200, "{html}");
    assert!(
        html.contains("<meter id=\"m-cores\" min=\"0\" max=\"8\" value=\"3\">"),
        "{html}"
    );
    assert!(
        html.contains("hand-made") && html.contains("not Kiln's"),
        "{html}"
    );
    assert!(
        html.contains(&format!("<a href=\"/machines/{sid}\">vm-pod1</a>")),
        "{html}"
    );
    let (code, html) = web.post(
        &format!("/pods/{id}/compose"),
        &[
            ("csrf", &csrf_of(&html)),
            ("cores", "64"),
            ("disk_gib", "2"),
        ],
    );
    assert_eq!(code, 409, "{html}");
    assert!(html.contains("64 cores were asked for"), "{html}");
    let (_, list) = web.get("/pods");
    assert!(
        list.contains(&format!("<a href=\"/pods/{id}\">lab</a>")),
        "{list}"
    );
    let nvram_before = files_in(&lv.nvram_dir());
    assert!(
        nvram_before.iter().any(|f| f.contains("vm-pod1")),
        "{nvram_before:?}"
    );

    // (6) It deploys like bare metal: the installer writes its disk, it boots the disk (UEFI,
    // per-device boot order kept), and SSH with the owner's key reaches it.
    lab.cli(&["machines", "allocate", &sid]);
    crate::e2e_deploy::ssh_key(&lab);
    let ud = crate::e2e_deploy::user_data(&lab);
    let out = lab.cli(&[
        "machines",
        "deploy",
        &sid,
        "--user-data",
        ud.to_str().unwrap(),
        "--wait",
        "--timeout",
        "1500",
    ]);
    assert!(
        out.contains("os_installed") && out.contains("deployed"),
        "{out}"
    );
    // Its disk, UEFI, SSH with the owner's key (its console is libvirt's, not the lab's file).
    crate::e2e_deploy::check_deployed_over_ssh(&lab, &sid, "vm-pod1", "uefi");
    let xml = lv.virsh(&["dumpxml", "--inactive", "vm-pod1"]);
    assert!(!xml.contains("<boot dev="), "{xml}");

    // (4) Deleting the machine destroys its VM, NVRAM and volume; capacity comes back.
    lab.cli(&["machines", "delete", &sid]);
    assert!(!lv.domains().contains("vm-pod1"));
    assert!(!files_in(&lv.nvram_dir())
        .iter()
        .any(|f| f.contains("vm-pod1")));
    assert!(!files_in(&lv.dir.join("pool"))
        .iter()
        .any(|f| f.contains("vm-pod1")));
    let e = lab.try_cli(&["machines", "show", &sid]).unwrap_err();
    assert!(e.contains("not found"), "{e}");
    let p = lab.json(&["pods", "show", &id]);
    assert_eq!(p["cores"]["used"], 1, "{p:#}");
    assert_eq!(p["storage_pools"][0]["committed_bytes"], 0);

    // A pod with a composed machine goes only with --force, which decomposes it.
    let m = lab.json(&[
        "pods",
        "compose",
        &id,
        "--firmware",
        "bios",
        "--memory",
        "512",
        "--disk",
        "2",
        "--hostname",
        "vm-pod2",
    ]);
    let sid2 = m["system_id"].as_str().unwrap().to_string();
    let e = lab.try_cli(&["pods", "delete", &id]).unwrap_err();
    assert!(e.contains("has 1 composed machine(s) (vm-pod2)"), "{e}");
    let out = lab.json(&["pods", "delete", &id, "--force"]);
    assert_eq!(out["decomposed"][0], sid2.as_str(), "{out:#}");
    assert!(!lv.domains().contains("vm-pod2"));
    assert!(
        lv.domains().contains("hand-made"),
        "VMs Kiln did not make are left alone"
    );
    assert_eq!(lab.json(&["pods", "list"]).as_array().unwrap().len(), 0);
    assert!(lab.try_cli(&["machines", "show", &sid2]).is_err());
}
