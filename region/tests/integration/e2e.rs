//! End to end in the virtual lab (`tests/lab/lab.sh`): QEMU machines (TCG) PXE boot from
//! `kiln all-in-one` inside a network namespace, are enlisted, boot the ephemeral environment built
//! by `kiln images build`, run the commissioning scripts and end Ready (or Failed commissioning)
//! with their inventory in the API. What is checked is what the machines really did: the region's
//! state, the events of their boot and their serial consoles.
//!
//! On failure the lab's directory (serial consoles, Kiln's log, a packet capture of the bridge) is
//! kept under `$CARGO_TARGET_TMPDIR/e2e-failed/<test>` and its tails are printed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

pub(crate) const KILN: &str = env!("CARGO_BIN_EXE_kiln");
/// Per-VM deadline: a commissioning takes ~30-60 s alone under TCG; several run at once on 2 cores.
pub(crate) const VM_TIMEOUT: Duration = Duration::from_secs(600);

pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub(crate) fn lab_sh() -> PathBuf {
    repo().join("tests/lab/lab.sh")
}

/// The boot-resource bundle, built once per test run (`kiln images build` caches across runs).
pub(crate) fn bundle() -> &'static Path {
    static B: OnceLock<PathBuf> = OnceLock::new();
    B.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kiln-images");
        let st = Command::new(KILN)
            .args(["images", "build", "--output"])
            .arg(&out)
            .status()
            .unwrap();
        assert!(st.success(), "kiln images build failed");
        out
    })
}

pub(crate) struct Lab {
    pub(crate) ns: String,
    pub(crate) name: String,
    pub(crate) dir: PathBuf,
    pub(crate) token: String,
    pub(crate) kiln: Option<std::process::Child>,
    /// More arguments of `kiln all-in-one` (kept for restarts).
    pub(crate) extra: Vec<String>,
}

impl Lab {
    /// A namespace with the lab bridge, `kiln all-in-one` on it (SQLite), an admin token, the
    /// subnet, and the image bundle imported and synced to the rack.
    pub(crate) fn new(name: &str) -> Lab {
        Lab::with_args(name, &[])
    }

    /// As [`Lab::new`], with more `kiln all-in-one` arguments.
    pub(crate) fn with_args(name: &str, extra: &[String]) -> Lab {
        let ns = format!(
            "ke2e-{}-{}",
            &name[..name.len().min(6)],
            std::process::id() % 100_000
        );
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("e2e")
            .join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let _ = Command::new(lab_sh()).args(["down", &ns]).status();
        let st = Command::new(lab_sh()).args(["up", &ns]).status().unwrap();
        assert!(st.success(), "lab.sh up failed");
        let st = Command::new(lab_sh())
            .args(["capture", &ns, dir.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(st.success());
        let data = dir.join("data");
        crate::rack_dhcp::create_admin(&data);
        let out = Command::new(KILN)
            .args(["admin", "create-token", "admin", "--data-dir"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(out.status.success());
        let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let kiln = start_kiln(&ns, &dir, extra);
        let lab = Lab {
            ns,
            name: name.to_string(),
            dir,
            token,
            kiln: Some(kiln),
            extra: extra.to_vec(),
        };
        lab.wait("the region", Duration::from_secs(60), || {
            lab.try_cli(&["racks", "list"]).ok()
        });
        lab.cli(&[
            "subnets",
            "create",
            "10.20.0.0/24",
            "--gateway",
            "10.20.0.2",
            "--dynamic-range",
            "10.20.0.100-10.20.0.199",
        ]);
        lab.cli(&["images", "import", bundle().to_str().unwrap()]);
        // The rack has every file of the bundle once its HTTP service serves them.
        let manifest: Value =
            serde_json::from_str(&std::fs::read_to_string(bundle().join("manifest.json")).unwrap())
                .unwrap();
        for r in manifest["resources"].as_array().unwrap() {
            if r["kind"] == "bootloader" {
                continue;
            }
            for f in r["files"].as_array().unwrap() {
                let url = format!(
                    "http://10.20.0.2:5248/images/{}/{}",
                    f["sha256"].as_str().unwrap(),
                    f["name"].as_str().unwrap()
                );
                lab.wait(
                    "the rack to sync the images",
                    Duration::from_secs(120),
                    || {
                        let out =
                            lab.ns_cmd(&["curl", "-sf", "-o", "/dev/null", "-r", "0-0", &url]);
                        out.status.success().then_some(())
                    },
                );
            }
        }
        lab
    }

    /// `kill -9` of `kiln all-in-one` (region and rack), then a start on the same data.
    pub(crate) fn crash_and_restart(&mut self) {
        if let Some(mut k) = self.kiln.take() {
            let _ = k.kill();
            let _ = k.wait();
        }
        self.kiln = Some(start_kiln(&self.ns, &self.dir, &self.extra));
        self.wait(
            "the region after its crash",
            Duration::from_secs(60),
            || self.try_cli(&["racks", "list"]).ok(),
        );
    }

    pub(crate) fn ns_cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .args(args)
            .output()
            .unwrap()
    }

    pub(crate) fn try_cli(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, KILN])
            .args(args)
            .env("KILN_URL", "http://127.0.0.1:5240")
            .env("KILN_TOKEN", &self.token)
            .output()
            .unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).to_string())
        }
    }

    pub(crate) fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|e| panic!("kiln {args:?} failed: {e}"))
    }

    pub(crate) fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_str(&self.cli(&a)).unwrap()
    }

    pub(crate) fn wait<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Powers on a VM (`lab.sh vm` options).
    pub(crate) fn vm(&self, name: &str, opts: &[&str]) {
        let out = Command::new(lab_sh())
            .args(["vm", &self.ns, name, self.dir.to_str().unwrap()])
            .args(opts)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "lab.sh vm: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub(crate) fn serial(&self, vm: &str) -> String {
        String::from_utf8_lossy(
            &std::fs::read(self.dir.join(format!("{vm}.serial"))).unwrap_or_default(),
        )
        .to_string()
    }

    /// The machine with `mac`, once the region has it.
    pub(crate) fn machine_with_mac(&self, mac: &str) -> Value {
        self.wait(&format!("machine {mac} to be enlisted"), VM_TIMEOUT, || {
            let page = self.json(&["machines", "list", "--mac", mac]);
            page["items"].as_array().and_then(|i| i.first().cloned())
        })
    }

    /// Waits until the machine leaves Commissioning (or New); returns it.
    pub(crate) fn settled(&self, system_id: &str) -> Value {
        self.wait(
            &format!("machine {system_id} to finish commissioning"),
            VM_TIMEOUT,
            || {
                let m = self.json(&["machines", "show", system_id]);
                match m["status"].as_str() {
                    Some("commissioning") | Some("new") => None,
                    _ => Some(m),
                }
            },
        )
    }

    /// Waits for the VM's QEMU to exit (the machine powered itself off).
    pub(crate) fn powered_off(&self, vm: &str) {
        let pid: u32 = std::fs::read_to_string(self.dir.join(format!("{vm}.pid")))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        self.wait(
            &format!("{vm} to power off"),
            Duration::from_secs(120),
            || {
                (!Path::new(&format!("/proc/{pid}")).exists()
                    || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                        .map(|s| s.contains(") Z "))
                        .unwrap_or(true))
                .then_some(())
            },
        );
    }

    pub(crate) fn event_types(&self, system_id: &str) -> Vec<String> {
        let evs = self.json(&["machines", "events", system_id, "--limit", "500"]);
        let mut evs: Vec<Value> = evs.as_array().unwrap().clone();
        // By when it happened: rack events reach the region a moment after they happen.
        evs.sort_by(|a, b| {
            (a["created_at"].as_str(), a["id"].as_i64())
                .cmp(&(b["created_at"].as_str(), b["id"].as_i64()))
        });
        evs.iter()
            .map(|e| e["event_type"].as_str().unwrap().to_string())
            .collect()
    }
}

/// `kiln all-in-one` in the lab's namespace on its data directory, logging to `kiln.log`.
fn start_kiln(ns: &str, dir: &Path, extra: &[String]) -> std::process::Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("kiln.log"))
        .unwrap();
    Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            KILN,
            "all-in-one",
            "--listen",
            "127.0.0.1:5240",
        ])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(extra)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut k) = self.kiln.take() {
            let _ = k.kill();
            let _ = k.wait();
        }
        let _ = Command::new(lab_sh()).args(["down", &self.ns]).status();
        if std::thread::panicking() {
            let kept = Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join("e2e-failed")
                .join(&self.name);
            let _ = std::fs::remove_dir_all(&kept);
            let _ = std::fs::create_dir_all(kept.parent().unwrap());
            let _ = std::fs::remove_dir_all(self.dir.join("data"));
            let _ = std::fs::rename(&self.dir, &kept);
            eprintln!("=== e2e {}: lab kept in {}", self.name, kept.display());
            if let Ok(rd) = std::fs::read_dir(&kept) {
                for e in rd.flatten() {
                    let p = e.path();
                    let ext = p.extension().and_then(|x| x.to_str()).unwrap_or("");
                    if ext == "serial" || ext == "log" {
                        let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap_or_default())
                            .to_string();
                        let lines = collapse_repeats(&text);
                        eprintln!("=== tail of {}:", p.display());
                        for l in &lines[lines.len().saturating_sub(60)..] {
                            eprintln!("{l}");
                        }
                    }
                }
            }
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// (1) A BIOS machine with two disks and two NICs (e1000) PXE boots unknown, is enlisted,
/// commissioned, and ends Ready with the inventory QEMU was given; its boot trace is in the events.
#[test]
fn e2e_bios_machine_enlists_and_commissions_to_ready_with_its_inventory() {
    let lab = Lab::new("bios");
    lab.vm(
        "vm1",
        &[
            "--mac",
            "52:54:00:e2:00:01",
            "--mac2",
            "52:54:00:e2:01:01",
            "--nic",
            "e1000",
            "--disk",
            "4",
            "--disk",
            "2",
            "--mem",
            "1024",
            "--cpus",
            "2",
        ],
    );
    let m = lab.machine_with_mac("52:54:00:e2:00:01");
    let id = m["system_id"].as_str().unwrap().to_string();
    let m = lab.settled(&id);
    assert_eq!(
        m["status"],
        "ready",
        "{m:#}\n{}",
        lab.cli(&["machines", "results", &id])
    );
    let hw = &m["hardware"];
    assert_eq!(hw["cpu_count"], 2);
    assert_eq!(hw["memory_mib"], 1024);
    assert_eq!(hw["firmware"], "bios");
    let disks = hw["disks"].as_array().unwrap();
    let sizes: Vec<(i64, &str)> = disks
        .iter()
        .map(|d| {
            (
                d["size_bytes"].as_i64().unwrap(),
                d["serial"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        sizes,
        vec![(4 << 30, "vm1-d0"), (2 << 30, "vm1-d1")],
        "{hw:#}"
    );
    let macs: Vec<&str> = hw["nics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["mac"].as_str().unwrap())
        .collect();
    assert_eq!(macs, vec!["52:54:00:e2:00:01", "52:54:00:e2:01:01"]);
    assert!(
        hw["nics"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["driver"] == "e1000"),
        "{hw:#}"
    );
    assert_eq!(hw["nics"][0]["speed_mbps"], 1000, "{hw:#}");
    // The summary columns and the interfaces follow the inventory.
    assert_eq!(m["cpu_count"], 2);
    assert_eq!(m["memory_mib"], 1024);
    assert_eq!(m["storage_bytes"], 6_i64 << 30);
    let ifaces: Vec<&str> = m["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["mac"].as_str().unwrap())
        .collect();
    assert!(ifaces.contains(&"52:54:00:e2:01:01"), "{m:#}");
    // The machine really ran it and powered itself off.
    lab.powered_off("vm1");
    let serial = lab.serial("vm1");
    assert!(serial.contains("KILN-COMMISSIONING-DONE"), "{serial}");
    assert!(serial.contains("reboot: Power down"), "{serial}");
    // Every step of the boot is an event, in order.
    let types = lab.event_types(&id);
    let pos = |t: &str| {
        types
            .iter()
            .position(|x| x == t)
            .unwrap_or_else(|| panic!("no {t} event in {types:?}"))
    };
    assert!(pos("unknown_pxe") < pos("enlisted"));
    assert!(pos("enlisted") < pos("ipxe_script"));
    assert!(pos("ipxe_script") < pos("boot_claimed"));
    assert!(pos("boot_claimed") < pos("booted"));
    assert!(pos("ipxe_script") < pos("http_sent"));
    assert!(pos("http_sent") < pos("booted"));
    assert!(pos("booted") < pos("script_started"));
    assert!(pos("script_finished") < pos("commissioning_passed"));
    assert!(pos("commissioning_passed") < pos("powering_off"));
    let sent: Vec<String> = lab
        .json(&["machines", "events", &id, "--limit", "500"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event_type"] == "http_sent")
        .map(|e| e["description"].as_str().unwrap().to_string())
        .collect();
    for f in ["vmlinuz", "initrd.gz", "root.squashfs"] {
        assert!(sent.iter().any(|d| d.contains(f)), "{f} not in {sent:?}");
    }
    assert_eq!(
        types.iter().filter(|t| *t == "script_finished").count(),
        8,
        "{types:?}"
    );
    // The kernel command line (which the console shows) carried a one-time claim code, which the
    // initramfs traded for the credential: no credential on the console, none in events.
    assert!(serial.contains("kiln.claim=claim_"), "{serial}");
    assert!(serial.contains("boot credential claimed"), "{serial}");
    assert!(
        !serial.contains("kiln.token") && !shows_a_boot_token(&serial),
        "the boot credential shows on the console:\n{serial}"
    );
    let events = lab.cli(&["machines", "events", &id, "--limit", "500"]);
    assert!(!shows_a_boot_token(&events), "{events}");
}

/// Whether `text` holds something like a boot token (`boot_` and 43 letters and digits; the
/// kernel's own words and event types have `boot_` too).
fn shows_a_boot_token(text: &str) -> bool {
    text.match_indices("boot_").any(|(i, _)| {
        text[i + 5..]
            .bytes()
            .take_while(u8::is_ascii_alphanumeric)
            .count()
            >= 40
    })
}

/// (3) An operator script that exits non-zero fails commissioning, with its output in the API and
/// in `kiln machines show`; (4) fixed, commissioning again ends Ready.
#[test]
fn e2e_failing_operator_script_then_commission_again() {
    let lab = Lab::new("fail");
    let script = lab.dir.join("50-check.sh");
    std::fs::write(
        &script,
        "#!/bin/bash\necho checking the widgets\necho 'widget 3 is missing' >&2\nexit 3\n",
    )
    .unwrap();
    lab.cli(&[
        "scripts",
        "add",
        "50-check",
        "--file",
        script.to_str().unwrap(),
        "--timeout",
        "60",
    ]);
    lab.vm(
        "vm1",
        &["--mac", "52:54:00:e2:00:03", "--disk", "2", "--mem", "1024"],
    );
    let m = lab.machine_with_mac("52:54:00:e2:00:03");
    let id = m["system_id"].as_str().unwrap().to_string();
    let m = lab.settled(&id);
    assert_eq!(m["status"], "failed_commissioning", "{m:#}");
    let results = lab.json(&["machines", "results", &id]);
    let failed: Vec<&Value> = results
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] != "passed")
        .collect();
    assert_eq!(failed.len(), 1, "{results:#}");
    assert_eq!(failed[0]["name"], "50-check");
    assert_eq!(failed[0]["exit_code"], 3);
    assert!(failed[0]["output"]
        .as_str()
        .unwrap()
        .contains("widget 3 is missing"));
    let shown = lab.cli(&["machines", "show", &id]);
    assert!(
        shown.contains("Failed commissioning") && shown.contains("widget 3 is missing"),
        "{shown}"
    );
    let evs = lab.cli(&["machines", "events", &id, "--limit", "500"]);
    assert!(evs.contains("50-check exited 3"), "{evs}");
    lab.powered_off("vm1");

    // Fixed: commission again (manual power: the operator powers the machine on).
    std::fs::write(
        &script,
        "#!/bin/bash\necho all widgets present\npgrep -f 'udhcpc -i' >/dev/null && echo 'DHCP lease kept by a running client'\n",
    )
    .unwrap();
    lab.cli(&[
        "scripts",
        "update",
        "50-check",
        "--file",
        script.to_str().unwrap(),
    ]);
    lab.cli(&["machines", "commission", &id]);
    lab.vm(
        "vm2",
        &["--mac", "52:54:00:e2:00:03", "--disk", "2", "--mem", "1024"],
    );
    let m = lab.settled(&id);
    assert_eq!(
        m["status"],
        "ready",
        "{m:#}\n{}",
        lab.cli(&["machines", "results", &id])
    );
    let results = lab.json(&["machines", "results", &id]);
    assert!(
        results
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "passed"),
        "{results:#}"
    );
    assert!(results
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "50-check"
            && r["output"]
                .as_str()
                .unwrap()
                .contains("all widgets present")));
    // The ephemeral environment keeps renewing its lease while scripts run.
    let check = results
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "50-check")
        .unwrap();
    assert!(
        check["output"]
            .as_str()
            .unwrap()
            .contains("DHCP lease kept by a running client"),
        "{check:#}"
    );
    // Still one machine: the second boot was recognised, not enlisted again.
    assert_eq!(lab.json(&["machines", "list"])["total"], 1);
}

/// (5) MAAS's commissioning loop with nothing started by hand: a machine created with IPMI power
/// (`ipmi_sim` as its BMC, wired to the QEMU VM: power on starts QEMU, power off stops it, and the
/// guest sees the same BMC in-band) is commissioned; Kiln sets PXE, powers it on over RMCP+, the
/// environment configures a Kiln user on the BMC, and Kiln powers the machine off with that user.
#[test]
fn e2e_ipmi_powered_machine_commissions_and_is_powered_off_by_kiln() {
    let lab = Lab::new("ipmi");
    let bmc = lab.dir.join("bmc");
    let cmd = lab.dir.join("vm1.cmd");
    let port = "9623";
    lab.vm(
        "vm1",
        &[
            "--mac",
            "52:54:00:e2:00:05",
            "--disk",
            "2",
            "--bmc-port",
            port,
            "--cmd-file",
            cmd.to_str().unwrap(),
        ],
    );
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
        "ipmi1",
        "--mac",
        "52:54:00:e2:00:05",
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
    ]);
    let id = m["system_id"].as_str().unwrap().to_string();
    assert_eq!(lab.json(&["machines", "power", &id])["power_state"], "off");
    lab.cli(&["machines", "commission", &id]);

    let m = lab.settled(&id);
    assert_eq!(
        m["status"],
        "ready",
        "{m:#}\n{}",
        lab.cli(&["machines", "results", &id])
    );
    assert_eq!(m["hardware"]["bmc_present"], true, "{m:#}");
    // BMC auto-configuration replaced the credentials with a Kiln user (address kept: ipmi_sim
    // reports 0.0.0.0 as its LAN address).
    assert_eq!(m["power_parameters"]["power_user"], "kiln", "{m:#}");
    assert_eq!(m["power_parameters"]["power_address"], "127.0.0.1");
    assert!(m.get("power_pass").is_none() && !m.to_string().contains("secret"));

    // Kiln powers it off, through the BMC, as the new user.
    let chassis = bmc.join("chassis.log");
    lab.wait(
        "Kiln to power the machine off",
        Duration::from_secs(120),
        || {
            let m = lab.json(&["machines", "show", &id]);
            (m["power_state"] == "off").then_some(())
        },
    );
    let log = std::fs::read_to_string(&chassis).unwrap();
    let (pxe, on, off) = (
        log.find("set boot pxe"),
        log.find("set power 1"),
        log.rfind("set power 0"),
    );
    assert!(
        pxe.is_some() && on.is_some() && off.is_some() && pxe < on && on < off,
        "{log}"
    );
    let evs = lab.json(&["machines", "events", &id]);
    let text = evs.to_string();
    assert!(
        text.contains("BMC configured: user kiln at 127.0.0.1"),
        "{text}"
    );
    assert!(text.contains("Power off: power on"), "{text}");
    // (Kiln powers it off about a second after `done`: the console may not show the runner's
    // last lines, so check an earlier one.)
    assert!(
        lab.serial("vm1").contains("running kiln-bmc-config"),
        "{}",
        lab.serial("vm1")
    );
    // The environment waited for Kiln rather than powering itself off.
    assert!(!lab
        .serial("vm1")
        .contains("Kiln did not power the machine off"));
    // The Kiln user works: a query with the stored credentials succeeds.
    assert_eq!(lab.json(&["machines", "power", &id])["power_state"], "off");
}

/// A log's lines with runs that differ only in their kernel timestamp (`[  282.18] ...`) folded
/// into one line and a count, so that a flood (journald retrying a dead disk) does not push what
/// came before it out of a failed test's tail.
pub fn collapse_repeats(text: &str) -> Vec<String> {
    let body = |l: &str| -> String {
        match l
            .trim_start()
            .strip_prefix('[')
            .and_then(|r| r.split_once(']'))
        {
            Some((t, rest)) if t.trim().parse::<f64>().is_ok() => rest.to_string(),
            _ => l.to_string(),
        }
    };
    let mut out: Vec<String> = Vec::new();
    let mut last = String::new();
    let mut n = 0usize;
    for l in text.lines() {
        let b = body(l);
        if !out.is_empty() && b == last {
            n += 1;
            continue;
        }
        if n > 0 {
            if let Some(prev) = out.last_mut() {
                prev.push_str(&format!("   (and {n} more like it)"));
            }
        }
        n = 0;
        last = b;
        out.push(l.to_string());
    }
    if n > 0 {
        if let Some(prev) = out.last_mut() {
            prev.push_str(&format!("   (and {n} more like it)"));
        }
    }
    out
}

#[test]
fn log_floods_fold_into_one_line() {
    let t = "[  1.0] a\n[  2.0] flood\n[  2.5] flood\n[  3.0] flood\nplain\nplain\n[ 4.0] b\n";
    assert_eq!(
        collapse_repeats(t),
        [
            "[  1.0] a",
            "[  2.0] flood   (and 2 more like it)",
            "plain   (and 1 more like it)",
            "[ 4.0] b"
        ]
    );
}
