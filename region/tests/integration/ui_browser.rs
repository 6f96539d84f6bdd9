//! The web UI in a real browser (Debian's headless Chromium driven by Playwright,
//! `tests/ui/browser.py fast`) against a real region: log in, filter, live updates without a
//! reload, bulk tag, power settings with a write-only secret, errors beside their fields, every
//! page, a phone's viewport, log out, and a user who cannot see another's machine. Screenshots of
//! every page are kept in `$CARGO_TARGET_TMPDIR/ui-screenshots/`.

use std::path::{Path, PathBuf};

use crate::util::{Backend, TestApp};
use crate::web_ui::own;

/// The Python with Playwright (`tests/ui/setup.sh` makes it).
pub(crate) fn ui_python() -> PathBuf {
    let p = std::env::var("KILN_UI_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/var/cache/kiln/ui-venv"))
        .join("bin/python");
    assert!(
        p.exists(),
        "{} is missing: run tests/ui/setup.sh (tests/run.sh does)",
        p.display()
    );
    p
}

pub(crate) fn browser_py() -> PathBuf {
    crate::e2e::repo().join("tests/ui/browser.py")
}

pub(crate) fn shots(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("ui-screenshots")
        .join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test(flavor = "multi_thread")]
async fn ui_in_a_real_browser() {
    let app = TestApp::start(Backend::Sqlite).await;
    for (h, mac) in [
        ("node-a", "52:54:00:dd:00:01"),
        ("node-b", "52:54:00:dd:00:02"),
        ("other", "52:54:00:dd:00:03"),
    ] {
        app.machine(h, mac).await;
    }
    let theirs = app.machine("admins-box", "52:54:00:dd:00:04").await;
    own(&app, &theirs, "admin").await;
    let dir = shots("fast");
    let out = tokio::process::Command::new(ui_python())
        .arg(browser_py())
        .args([
            "fast",
            "--url",
            &app.base,
            "--token",
            &app.admin_token,
            "--shots",
        ])
        .arg(&dir)
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert!(out.status.success(), "the browser test failed:\n{text}");
    for page in [
        "login",
        "machines",
        "machine",
        "bulk-results",
        "images",
        "subnets",
        "racks",
        "events",
        "users",
        "keys",
        "settings",
        "machines-phone",
    ] {
        assert!(
            dir.join(format!("{page}.png")).exists(),
            "no screenshot of {page}"
        );
    }
}
