//! Every power driver against its real peer: IPMI against `ipmi_sim` (OpenIPMI), Redfish against
//! sushy-emulator (fake driver), virsh against a private libvirtd (TCG), webhook against a small
//! HTTP server in this file. Peers are started by `tests/peers/*/start.sh` as plain processes on
//! 127.0.0.1 and stopped by PID.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rack::power::{self, DriverError, Policy};
use region_api_types::{BootDevice, PowerAction, PowerState};
use serde_json::{json, Map, Value};

pub(crate) fn peers() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/peers")
}

/// A peer started by `tests/peers/<kind>/start.sh DIR ARGS`, stopped on drop.
pub(crate) struct Peer {
    kind: &'static str,
    dir: tempfile::TempDir,
    pub(crate) stdout: String,
}

impl Peer {
    pub(crate) fn start(kind: &'static str, args: &[&str]) -> Peer {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(peers().join(kind).join("start.sh"))
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{kind} start.sh: {e}"));
        assert!(
            out.status.success(),
            "{kind} peer did not start (install its package: see .ci/run):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Peer {
            kind,
            dir,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        }
    }

    pub(crate) fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = Command::new(peers().join(self.kind).join("stop.sh"))
            .arg(self.dir.path())
            .output();
    }
}

fn free_port(udp: bool) -> u16 {
    // A port free for both UDP (the BMC) and TCP (ipmi_sim's VM port is the next one).
    loop {
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = u.local_addr().unwrap().port();
        if p < 65000
            && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok()
            && (!udp || std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        {
            return p;
        }
    }
}

pub(crate) fn params(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

pub(crate) fn fast(settle: u64) -> Policy {
    Policy {
        attempts: 3,
        backoff: Duration::from_millis(300),
        settle: Duration::from_secs(settle),
        poll: Duration::from_millis(300),
    }
}

pub(crate) async fn run(
    ty: &str,
    p: &Map<String, Value>,
    a: PowerAction,
    boot: Option<BootDevice>,
    pol: &Policy,
) -> region_api_types::RackPowerResult {
    let d: Arc<dyn power::PowerDriver> = Arc::from(power::build(ty, p).unwrap());
    power::execute(d, a, boot, pol).await
}

#[tokio::test(flavor = "multi_thread")]
async fn ipmi_against_ipmi_sim() {
    let port = free_port(true);
    let bmc = Peer::start("ipmi", &[&port.to_string()]);
    let p = params(
        json!({"power_address": "127.0.0.1", "power_port": port, "power_user": "admin",
        "power_pass": "secret", "power_boot_type": "efi"}),
    );
    let pol = fast(20);

    let r = run("ipmi", &p, PowerAction::Query, None, &pol).await;
    assert!(r.ok && r.power_state == PowerState::Off, "{r:?}");
    let r = run("ipmi", &p, PowerAction::On, Some(BootDevice::Pxe), &pol).await;
    assert!(r.ok && r.power_state == PowerState::On, "{r:?}");
    let log = std::fs::read_to_string(bmc.path("chassis.log")).unwrap();
    let (boot, on) = (
        log.find("set boot pxe").expect(&log),
        log.find("set power 1").expect(&log),
    );
    assert!(boot < on, "boot device set before power on:\n{log}");

    let r = run("ipmi", &p, PowerAction::Cycle, None, &pol).await;
    assert!(r.ok && r.power_state == PowerState::On, "{r:?}");
    let log = std::fs::read_to_string(bmc.path("chassis.log")).unwrap();
    assert!(
        log[on..].contains("set power 0"),
        "cycle went through off:\n{log}"
    );
    let r = run("ipmi", &p, PowerAction::Off, Some(BootDevice::Disk), &pol).await;
    assert!(r.ok && r.power_state == PowerState::Off, "{r:?}");
    assert!(std::fs::read_to_string(bmc.path("chassis.log"))
        .unwrap()
        .contains("set boot default"));

    // Sessions are closed: after 100 queries only the session asking is open.
    for _ in 0..100 {
        let r = run("ipmi", &p, PowerAction::Query, None, &pol).await;
        assert!(r.ok, "{r:?}");
    }
    let pp = region_api_types::power_params::Params::new("ipmi", &p);
    let ipmi = power::ipmi::Ipmi::new(&pp).unwrap();
    let (slots, active) = power::ipmi::session_counts(&ipmi).await.unwrap();
    assert!(slots > 0);
    assert_eq!(
        active, 1,
        "sessions leaked: {active} of {slots} slots in use"
    );

    // Wrong password: retryable, and said in words.
    let mut bad = p.clone();
    bad.insert("power_pass".into(), json!("nope"));
    let r = run("ipmi", &bad, PowerAction::Query, None, &fast(5)).await;
    assert!(!r.ok && !r.fatal, "{r:?}");
    assert_eq!(
        r.message,
        format!("wrong password for user admin at 127.0.0.1:{port}")
    );

    // A user the BMC does not know.
    let mut who = p.clone();
    who.insert("power_user".into(), json!("bob"));
    let r = run("ipmi", &who, PowerAction::Query, None, &fast(5)).await;
    assert!(
        !r.ok
            && (r.message.contains("refused user bob")
                || r.message.contains("wrong password for user bob")),
        "{r:?}"
    );

    // Nobody there.
    let dead = free_port(true);
    let mut gone = p.clone();
    gone.insert("power_port".into(), json!(dead));
    let one = Policy {
        attempts: 1,
        ..fast(5)
    };
    let r = run("ipmi", &gone, PowerAction::Query, None, &one).await;
    assert!(!r.ok, "{r:?}");
    assert!(
        r.message == format!("no answer from 127.0.0.1:{dead} in 3 s")
            || r.message
                .starts_with(&format!("cannot reach the BMC at 127.0.0.1:{dead}")),
        "{}",
        r.message
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn redfish_against_sushy_emulator() {
    let port = free_port(false);
    let _bmc = Peer::start("redfish", &[&port.to_string()]);
    let base = format!("http://127.0.0.1:{port}");
    let p = params(
        json!({"power_address": base, "power_user": "admin", "power_pass": "secret",
        "power_boot_type": "efi"}),
    );
    // The fake driver applies power changes after a random 1-11 s.
    let pol = fast(30);
    let r = run("redfish", &p, PowerAction::Query, None, &pol).await;
    assert!(r.ok && r.power_state == PowerState::Off, "{r:?}");
    let r = run("redfish", &p, PowerAction::On, Some(BootDevice::Pxe), &pol).await;
    assert!(r.ok && r.power_state == PowerState::On, "{r:?}");
    let sys: Value = reqwest::Client::new()
        .get(format!("{base}/redfish/v1/Systems/kiln-fake-1"))
        .basic_auth("admin", Some("secret"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sys["Boot"]["BootSourceOverrideTarget"], "Pxe", "{sys}");
    assert_eq!(sys["Boot"]["BootSourceOverrideMode"], "UEFI", "{sys}");
    let r = run("redfish", &p, PowerAction::Off, None, &pol).await;
    assert!(r.ok && r.power_state == PowerState::Off, "{r:?}");

    let mut bad = p.clone();
    bad.insert("power_pass".into(), json!("nope"));
    let r = run("redfish", &bad, PowerAction::Query, None, &fast(5)).await;
    assert!(!r.ok && !r.fatal, "{r:?}");
    assert_eq!(
        r.message,
        format!("wrong user or password for user admin at {base}")
    );

    let mut none = p.clone();
    none.insert("node_id".into(), json!("no-such"));
    let r = run("redfish", &none, PowerAction::Query, None, &fast(5)).await;
    assert!(
        !r.ok && r.fatal && r.message.contains("kiln-fake-1"),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn virsh_against_libvirtd() {
    let d = Peer::start("libvirt", &[]);
    let uri = d.stdout.lines().last().unwrap().trim().to_string();
    assert!(uri.starts_with("qemu:///system?socket="), "{}", d.stdout);
    let xml = d.path("dom.xml");
    std::fs::write(
        &xml,
        "<domain type='qemu'><name>kiln-virsh-test</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os><devices></devices></domain>",
    )
    .unwrap();
    let out = Command::new("virsh")
        .args(["-c", &uri, "define"])
        .arg(&xml)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let p = params(json!({"power_address": uri, "power_id": "kiln-virsh-test"}));
    let pol = fast(20);
    let r = run("virsh", &p, PowerAction::Query, None, &pol).await;
    assert!(r.ok && r.power_state == PowerState::Off, "{r:?}");
    let r = run("virsh", &p, PowerAction::On, Some(BootDevice::Pxe), &pol).await;
    assert!(r.ok && r.power_state == PowerState::On, "{r:?}");
    let dump = Command::new("virsh")
        .args(["-c", &uri, "dumpxml", "--inactive", "kiln-virsh-test"])
        .output()
        .unwrap();
    let dump = String::from_utf8_lossy(&dump.stdout);
    let (net, hd) = (
        dump.find("<boot dev='network'/>").expect(&dump),
        dump.find("<boot dev='hd'/>").expect(&dump),
    );
    assert!(net < hd, "network first:\n{dump}");
    let r = run("virsh", &p, PowerAction::Cycle, None, &pol).await;
    assert!(r.ok && r.power_state == PowerState::On, "{r:?}");
    let r = run("virsh", &p, PowerAction::Off, None, &pol).await;
    assert!(r.ok && r.power_state == PowerState::Off, "{r:?}");

    let mut other = p.clone();
    other.insert("power_id".into(), json!("no-such-domain"));
    let r = run("virsh", &other, PowerAction::Query, None, &pol).await;
    assert!(
        !r.ok && r.fatal && r.message.contains("no domain 'no-such-domain'"),
        "{r:?}"
    );
}

#[test]
fn virsh_without_its_hypervisor_driver_is_fatal_at_once() {
    // The transport's tool does not exist: a missing tool, not worth retrying.
    let p = params(
        json!({"power_address": "qemu+ext:///system?command=/nonexistent/kiln-tool", "power_id": "x"}),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = rt.block_on(run("virsh", &p, PowerAction::Query, None, &fast(5)));
    assert!(!r.ok && r.fatal, "{r:?}");
}

/// A webhook power endpoint: POST /on, POST /off, GET /status (`{"status": "running"|"stopped"}`),
/// all needing `Bearer t0ken`.
async fn webhook_server() -> (String, Arc<std::sync::Mutex<(bool, Vec<String>)>>) {
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
    let state = Arc::new(std::sync::Mutex::new((false, Vec::new())));
    let s2 = state.clone();
    let srv = HttpServer::new(move || {
        let s = s2.clone();
        App::new().default_service(web::to(move |req: HttpRequest| {
            let s = s.clone();
            async move {
                let auth = req
                    .headers()
                    .get("authorization")
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("");
                if auth != "Bearer t0ken" {
                    return HttpResponse::Unauthorized().body("bad token");
                }
                let mut st = s.lock().unwrap();
                st.1.push(format!("{} {}", req.method(), req.path()));
                match (req.method().as_str(), req.path()) {
                    ("POST", "/on") => st.0 = true,
                    ("POST", "/off") => st.0 = false,
                    ("GET", "/status") => {
                        let v = if st.0 { "running" } else { "stopped" };
                        return HttpResponse::Ok().body(format!("{{\"status\": \"{v}\"}}"));
                    }
                    _ => return HttpResponse::NotFound().finish(),
                }
                HttpResponse::Ok().finish()
            }
        }))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let addr = srv.addrs()[0];
    tokio::spawn(srv.run());
    (format!("http://{addr}"), state)
}

#[actix_web::test]
async fn webhook_against_a_local_server() {
    let (base, state) = webhook_server().await;
    let p = params(
        json!({"power_on_uri": format!("{base}/on"), "power_off_uri": format!("{base}/off"),
        "power_query_uri": format!("{base}/status"), "power_token": "t0ken"}),
    );
    let pol = fast(5);
    let r = run("webhook", &p, PowerAction::On, Some(BootDevice::Pxe), &pol).await;
    assert!(r.ok && r.power_state == PowerState::On, "{r:?}");
    let r = run("webhook", &p, PowerAction::Cycle, None, &pol).await;
    assert!(r.ok && r.power_state == PowerState::On, "{r:?}");
    let calls = state.lock().unwrap().1.clone();
    assert_eq!(
        calls,
        [
            "GET /status",
            "POST /on",
            "GET /status",
            "GET /status",
            "POST /off",
            "GET /status",
            "POST /on",
            "GET /status"
        ]
    );
    let mut bad = p.clone();
    bad.insert("power_token".into(), json!("wrong"));
    let r = run("webhook", &bad, PowerAction::Query, None, &fast(5)).await;
    assert!(!r.ok && r.message.contains("refused the token"), "{r:?}");
    // An answer neither regex matches is an error, not a guess.
    let mut odd = p.clone();
    odd.insert("power_on_regex".into(), json!("^nope$"));
    odd.insert("power_off_regex".into(), json!("^nope$"));
    let r = run(
        "webhook",
        &odd,
        PowerAction::Query,
        None,
        &Policy {
            attempts: 1,
            ..fast(5)
        },
    )
    .await;
    assert!(!r.ok && r.message.contains("matches neither"), "{r:?}");
    assert!(matches!(
        power::build("webhook", &params(json!({"power_on_uri": "x"}))),
        Err(DriverError::Fatal(_))
    ));
}
