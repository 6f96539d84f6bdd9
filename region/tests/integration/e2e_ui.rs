//! The web UI against the lab's all-in-one with a real VM: in headless Chromium, an operator opens
//! a new machine's page, clicks Commission, and watches it go Commissioning → Ready (its boot steps
//! in the timeline, then its hardware and script results) with no reload; Kiln powered the VM over
//! IPMI and the VM really booted the ephemeral environment. The Images page shows the rack synced.
//! Then Deploy on the same page: the installer's steps stream in and the status reaches Deployed,
//! still with no reload. Screenshots in `$CARGO_TARGET_TMPDIR/ui-screenshots/lab/`.

use crate::e2e::Lab;
use crate::e2e_deploy::ipmi_vm;
use crate::ui_browser::{browser_py, shots, ui_python};

#[test]
fn e2e_ui_commission_watched_live_in_a_browser() {
    let lab = Lab::new("ui");
    let id = ipmi_vm(&lab, "uivm", "52:54:00:e6:00:01", "9693", &[]);
    let dir = shots("lab");
    let out = lab.ns_cmd(&[
        ui_python().to_str().unwrap(),
        browser_py().to_str().unwrap(),
        "lab",
        "--url",
        "http://127.0.0.1:5240",
        "--machine",
        &id,
        "--hostname",
        "uivm",
        "--timeout",
        "1200",
        "--shots",
        dir.to_str().unwrap(),
    ]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert!(out.status.success(), "the browser test failed:\n{text}");
    // What the page showed is what happened.
    let m = lab.json(&["machines", "show", &id]);
    assert_eq!(m["status"], "deployed", "{m:#}");
    let serial = lab.serial("uivm");
    assert!(
        serial.contains("kiln-commission: 8 scripts to run"),
        "{serial}"
    );
    for p in [
        "lab-machine-commissioning",
        "lab-machine",
        "lab-machines",
        "lab-images",
        "lab-machine-deploying",
        "lab-machine-deployed",
    ] {
        assert!(dir.join(format!("{p}.png")).exists(), "no screenshot {p}");
    }
}
