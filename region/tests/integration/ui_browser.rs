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
    let _ = std::fs::remove_file(dir.join("restart-region"));
    let mut app = app;
    let child = tokio::process::Command::new(ui_python())
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
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let waiting = child.wait_with_output();
    tokio::pin!(waiting);
    let out = loop {
        tokio::select! {
            out = &mut waiting => break out.unwrap(),
            _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
        }
        // The script asks for a region restart: stop it, change a machine while it is down, start
        // it again on the same address.
        if dir.join("restart-region").exists() {
            restart_with_node_b_fixed(&mut app).await;
            std::fs::remove_file(dir.join("restart-region")).unwrap();
        }
    };
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

/// Stops the region, marks node-b fixed in the database while it is down (so no live page hears of
/// it), and starts it again on the same address.
async fn restart_with_node_b_fixed(app: &mut TestApp) {
    let old = app.region.take().unwrap();
    let addr = old.addr;
    old.stop().await.unwrap();
    let mut cfg = app.db.config();
    cfg.listen = addr;
    let pool = region::db::Pool::open(&cfg.database_url()).unwrap();
    pool.run(|c| {
        let admin = region::db::users::by_username(c, "admin")?.unwrap();
        let caller = region::domain::Caller {
            user_id: admin.id,
            username: admin.username,
            is_admin: true,
            scope: region_api_types::TokenScope::Admin,
        };
        let b = region::db::machines::machine_with_hostname(c, "node-b")?.unwrap();
        region::domain::machines::act(
            c,
            &caller,
            &b,
            region_api_types::MachineAction::MarkFixed,
            Some("while the region was down"),
            &region::config::Lifecycle::default(),
            region::db::now_ms(),
        )
    })
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    app.region = Some(region::Region::start(cfg).await.unwrap());
}
