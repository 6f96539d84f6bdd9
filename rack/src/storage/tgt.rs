//! The tgt driver: `tgtadm` against the tgtd on this host (its control port), argument vectors
//! only (a CHAP secret is one element, never part of a shell string, and never logged).

use std::collections::BTreeMap;
use std::sync::Mutex;

use futures_util::future::BoxFuture;
use rack_proto::iscsi::{self, ShownTarget, Step, WantedTarget};

use super::TargetDriver;
use crate::{Error, Result};

/// tgtd's address ACL for Kiln's targets: any address, as tgt admits nobody without one; the
/// initiator-name ACL and CHAP are what admit only the machine.
const ADDRESS_ACL: &str = "ALL";

pub struct Tgt {
    control_port: u16,
    /// The secret last given to tgtd per CHAP user (tgtadm never shows secrets).
    applied: Mutex<BTreeMap<String, String>>,
    /// One reconciliation at a time.
    lock: tokio::sync::Mutex<()>,
}

impl Tgt {
    pub fn new(control_port: u16) -> Tgt {
        Tgt {
            control_port,
            applied: Mutex::new(BTreeMap::new()),
            lock: tokio::sync::Mutex::new(()),
        }
    }

    async fn tgtadm(&self, args: Vec<String>, what: &str) -> Result<String> {
        // A wedged tgtd must not stall the volume service (it would stop re-applying targets).
        let child = tokio::process::Command::new("tgtadm")
            .args(&args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(std::time::Duration::from_secs(30), child)
            .await
            .map_err(|_| Error::Storage(format!("tgtadm ({what}) did not answer within 30 s")))?
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Error::Storage("tgtadm is not installed (apt-get install tgt)".into())
                } else {
                    Error::Storage(format!("tgtadm ({what}): {e}"))
                }
            })?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            if stderr.contains("tgt daemon") || out.status.code() == Some(107) {
                return Err(Error::Storage(format!(
                    "tgtd is not running on control port {}: start it (systemctl start tgt, or tgtd -f -C {})",
                    self.control_port, self.control_port
                )));
            }
            return Err(Error::Storage(format!(
                "tgtadm could not {what}: {}",
                stderr.trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn base(&self) -> Vec<String> {
        vec!["-C".into(), self.control_port.to_string()]
    }
}

impl TargetDriver for Tgt {
    fn name(&self) -> &'static str {
        "tgt"
    }

    fn check(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let mut a = self.base();
            a.extend(["--op", "show", "--mode", "system"].map(String::from));
            let out = self.tgtadm(a, "show the system").await?;
            if out.lines().any(|l| l.trim() == "iscsi: ready") {
                Ok(())
            } else {
                Err(Error::Storage(format!(
                    "tgtd on control port {} has no iSCSI driver ready",
                    self.control_port
                )))
            }
        })
    }

    fn remember(&self, wanted: &[WantedTarget]) {
        let mut ap = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        for w in wanted {
            ap.insert(w.chap_user.clone(), w.chap_secret.clone());
        }
    }

    fn show(&self) -> BoxFuture<'_, Result<Vec<ShownTarget>>> {
        Box::pin(async move {
            let mut a = self.base();
            a.extend(["--lld", "iscsi", "--op", "show", "--mode", "target"].map(String::from));
            Ok(iscsi::parse_show_targets(
                &self.tgtadm(a, "show the targets").await?,
            ))
        })
    }

    fn apply<'a>(&'a self, wanted: &'a [WantedTarget]) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(async move {
            let _one = self.lock.lock().await;
            let shown = self.show().await?;
            let mut a = self.base();
            a.extend(["--lld", "iscsi", "--op", "show", "--mode", "account"].map(String::from));
            let accounts = iscsi::parse_show_accounts(&self.tgtadm(a, "show the accounts").await?);
            let applied = self
                .applied
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let steps = iscsi::reconcile(wanted, &shown, &accounts, &applied, ADDRESS_ACL);
            let mut done = Vec::with_capacity(steps.len());
            for s in steps {
                let what = s.describe();
                match self.tgtadm(s.argv(self.control_port), &what).await {
                    Ok(_) => {}
                    // A session that ended meanwhile is no reason to stop.
                    Err(_) if matches!(s, Step::CloseConnection { .. }) => {}
                    Err(e) => return Err(e),
                }
                let mut ap = self.applied.lock().unwrap_or_else(|p| p.into_inner());
                match &s {
                    Step::NewAccount { user, secret } => {
                        ap.insert(user.clone(), secret.clone());
                    }
                    Step::DeleteAccount { user } => {
                        ap.remove(user);
                    }
                    _ => {}
                }
                done.push(what);
            }
            Ok(done)
        })
    }
}
