//! Network namespaces for tests that send packets. Everything here happens inside namespaces the
//! test creates (never on the host's interfaces), and `Drop` kills what it started (by PID) and
//! deletes the namespaces, even when the test fails.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Netns {
    pub names: Vec<String>,
    children: Vec<Child>,
}

fn run(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Root is needed for network namespaces; CI runs as root.
pub fn require_root() {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("1").to_string())
        })
        .unwrap_or_default();
    assert_eq!(
        uid, "0",
        "this test creates network namespaces: run it as root (CI does)"
    );
}

impl Netns {
    /// Creates namespaces `<prefix>-<name>-<random>` with loopback up.
    pub fn new(prefix: &str, names: &[&str]) -> Netns {
        require_root();
        let tag = region::db::random_id(5);
        let names: Vec<String> = names.iter().map(|n| format!("{prefix}{n}{tag}")).collect();
        let me = Netns {
            names: names.clone(),
            children: Vec::new(),
        };
        for n in &names {
            run(&["ip", "netns", "add", n]);
            run(&["ip", "-n", n, "link", "set", "lo", "up"]);
        }
        me
    }

    pub fn ns(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// Runs a command inside namespace `ns` and waits for it.
    pub fn exec(&self, ns: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs a command inside `ns`, asserting success.
    pub fn ok(&self, ns: &str, args: &[&str]) -> String {
        let out = self.exec(ns, args);
        assert!(
            out.status.success(),
            "{args:?} in {ns} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts a long-running command inside `ns`; killed on drop. Returns its index.
    pub fn spawn(&mut self, ns: &str, args: &[&str], log: &std::path::Path) -> usize {
        let f = std::fs::File::create(log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap();
        self.children.push(child);
        self.children.len() - 1
    }

    /// Kills a spawned process (SIGKILL, by PID) and waits for it.
    pub fn kill(&mut self, idx: usize) {
        let c = &mut self.children[idx];
        let _ = c.kill();
        let _ = c.wait();
    }

    /// A veth pair between two namespaces, both ends up.
    pub fn veth(&self, a: &str, a_if: &str, b: &str, b_if: &str) {
        run(&[
            "ip", "link", "add", a_if, "netns", a, "type", "veth", "peer", "name", b_if, "netns", b,
        ]);
        run(&["ip", "-n", a, "link", "set", a_if, "up"]);
        run(&["ip", "-n", b, "link", "set", b_if, "up"]);
    }

    /// Polls `f` until it returns Some, or panics after `timeout`.
    pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for n in &self.names {
            // Anything else left running inside (a dhclient daemon, ...): kill by PID.
            if let Ok(out) = Command::new("ip").args(["netns", "pids", n]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}
