//! Root on iSCSI, without IO: names (IQNs, CHAP users), the SAN URI iPXE's `sanhook` takes, the
//! `tgtadm` argument vectors of the tgt target driver, a parser for `tgtadm --op show`, and the
//! reconciliation of the targets Kiln wants against what tgtd has (tgtd keeps nothing across a
//! restart, and it may also serve targets that are not Kiln's: those are never touched).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Every Kiln target's IQN starts with this (then `:vol-<volume id>`); initiators are
/// `iqn.2026-12.org.kiln.initiator:<system id>`, one per machine, never per image.
pub const TARGET_PREFIX: &str = "iqn.2026-12.org.kiln";
pub const INITIATOR_PREFIX: &str = "iqn.2026-12.org.kiln.initiator";
/// CHAP users Kiln creates start with this, so reconciliation leaves other accounts alone.
pub const CHAP_USER_PREFIX: &str = "kiln-";
/// The data LUN (tgt's LUN 0 is its controller).
pub const LUN: u32 = 1;

/// The target IQN of a volume.
pub fn target_iqn(volume_id: &str) -> String {
    format!("{TARGET_PREFIX}:vol-{volume_id}")
}

/// The initiator IQN of a machine: one per machine, so two machines deployed from one image
/// never share a name (and so never each other's sessions).
pub fn initiator_iqn(system_id: &str) -> String {
    format!("{INITIATOR_PREFIX}:{system_id}")
}

/// The CHAP user of a volume's target.
pub fn chap_user(volume_id: &str) -> String {
    format!("{CHAP_USER_PREFIX}{volume_id}")
}

/// Whether `s` is an IQN as RFC 3720 spells them: `iqn.YYYY-MM.reversed.domain[:anything]`, in
/// lowercase letters, digits, `.`, `-` and `:`, at most 223 bytes.
pub fn valid_iqn(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("iqn.") else {
        return false;
    };
    let date = rest.get(..7).unwrap_or("");
    let date_ok = date.len() == 7
        && date.as_bytes()[4] == b'-'
        && date
            .bytes()
            .enumerate()
            .all(|(i, b)| i == 4 || b.is_ascii_digit());
    let authority = rest.get(7..).unwrap_or("");
    s.len() <= 223
        && date_ok
        && authority.starts_with('.')
        && authority.len() > 1
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b':')
        })
}

/// A CHAP secret is sent in iPXE scripts and stored in the iBFT: letters and digits only, 12 to
/// 16 characters (what every initiator, Windows's included, accepts).
pub fn valid_chap_secret(s: &str) -> bool {
    (12..=16).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Where initiators log in: `IP[:PORT]` (port 3260 by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Portal {
    pub ip: IpAddr,
    pub port: u16,
}

impl Portal {
    pub const DEFAULT_PORT: u16 = 3260;

    /// `10.20.0.2`, `10.20.0.2:3260`, `[fd00::2]:3260`.
    pub fn parse(s: &str) -> Result<Portal, String> {
        let bad =
            || format!("'{s}' is not an iSCSI portal: give IP or IP:PORT, e.g. 10.20.0.2:3260");
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Portal {
                ip,
                port: Self::DEFAULT_PORT,
            });
        }
        let sa: std::net::SocketAddr = s.parse().map_err(|_| bad())?;
        if sa.port() == 0 {
            return Err(bad());
        }
        Ok(Portal {
            ip: sa.ip(),
            port: sa.port(),
        })
    }
}

impl std::fmt::Display for Portal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ip {
            IpAddr::V4(ip) => write!(f, "{ip}:{}", self.port),
            IpAddr::V6(ip) => write!(f, "[{ip}]:{}", self.port),
        }
    }
}

/// iPXE's SAN URI: `iscsi:<server>:<protocol>:<port>:<LUN>:<target IQN>`, the LUN in hex, the
/// protocol empty (TCP).
pub fn san_uri(portal: &Portal, lun: u32, target: &str) -> String {
    let server = match portal.ip {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    };
    format!("iscsi:{server}::{}:{lun:x}:{target}", portal.port)
}

/// The cloud-init settings written into a machine's volume: its seed comes from its rack
/// (`base`, e.g. `http://10.20.0.2:5248`) with the deployment's credential.
pub fn seed_config(base: &str, token: &str) -> String {
    format!(
        "# Written by Kiln's rack: this machine's metadata comes from its rack.\ndatasource_list: [ NoCloud, None ]\ndatasource:\n  NoCloud:\n    seedfrom: {base}/metadata/v1/nocloud/{token}/\n"
    )
}

/// A target Kiln wants tgtd to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedTarget {
    pub iqn: String,
    /// The volume file (absolute path).
    pub path: String,
    pub chap_user: String,
    pub chap_secret: String,
    /// The only initiator admitted.
    pub initiator: String,
}

/// A target as `tgtadm --op show --mode target` prints it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShownTarget {
    pub tid: u32,
    pub iqn: String,
    /// (session id, initiator IQN, connections: (connection id, address)).
    pub sessions: Vec<Session>,
    /// (LUN, backing store path) for the data LUNs.
    pub luns: Vec<(u32, String)>,
    pub accounts: Vec<String>,
    /// Address ACLs (`ALL`, `10.0.0.0/24`) and initiator-name ACLs (`iqn.…`).
    pub acls: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    pub sid: u64,
    pub initiator: String,
    pub connections: Vec<(u64, String)>,
}

/// Parses `tgtadm --op show --mode target`. Lines it does not know are skipped, so a newer tgt
/// that prints more still parses.
pub fn parse_show_targets(out: &str) -> Vec<ShownTarget> {
    #[derive(PartialEq)]
    enum Sec {
        None,
        Nexus,
        Lun,
        Account,
        Acl,
    }
    let mut targets: Vec<ShownTarget> = Vec::new();
    let mut sec = Sec::None;
    let mut lun: Option<u32> = None;
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("Target ") {
            if let Some((tid, iqn)) = rest.split_once(": ") {
                if let Ok(tid) = tid.trim().parse() {
                    targets.push(ShownTarget {
                        tid,
                        iqn: iqn.trim().to_string(),
                        ..Default::default()
                    });
                    sec = Sec::None;
                    continue;
                }
            }
        }
        let Some(t) = targets.last_mut() else {
            continue;
        };
        let l = line.trim();
        match l {
            "I_T nexus information:" => sec = Sec::Nexus,
            "LUN information:" => sec = Sec::Lun,
            "Account information:" => sec = Sec::Account,
            "ACL information:" => sec = Sec::Acl,
            "System information:" => sec = Sec::None,
            _ => match sec {
                Sec::Nexus => {
                    if let Some(n) = l.strip_prefix("I_T nexus: ") {
                        if let Ok(sid) = n.trim().parse() {
                            t.sessions.push(Session {
                                sid,
                                ..Default::default()
                            });
                        }
                    } else if let Some(s) = t.sessions.last_mut() {
                        if let Some(i) = l.strip_prefix("Initiator: ") {
                            s.initiator = i.split_whitespace().next().unwrap_or("").to_string();
                        } else if let Some(c) = l.strip_prefix("Connection: ") {
                            if let Ok(cid) = c.trim().parse() {
                                s.connections.push((cid, String::new()));
                            }
                        } else if let Some(a) = l.strip_prefix("IP Address: ") {
                            if let Some(c) = s.connections.last_mut() {
                                c.1 = a.trim().to_string();
                            }
                        }
                    }
                }
                Sec::Lun => {
                    if let Some(n) = l.strip_prefix("LUN: ") {
                        lun = n.trim().parse().ok();
                    } else if let Some(p) = l.strip_prefix("Backing store path: ") {
                        if let Some(n) = lun.filter(|n| *n != 0) {
                            t.luns.push((n, p.trim().to_string()));
                        }
                    }
                }
                Sec::Account if !l.is_empty() => {
                    t.accounts
                        .push(l.split_whitespace().next().unwrap_or("").to_string());
                }
                Sec::Acl if !l.is_empty() => t.acls.push(l.to_string()),
                _ => {}
            },
        }
    }
    targets
}

/// Parses `tgtadm --op show --mode account`: the users after `Account list:`.
pub fn parse_show_accounts(out: &str) -> Vec<String> {
    out.lines()
        .skip_while(|l| l.trim() != "Account list:")
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// One change to tgtd's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Close a session's connection (the initiator is logged out).
    CloseConnection {
        tid: u32,
        sid: u64,
        cid: u64,
    },
    DeleteTarget {
        tid: u32,
    },
    DeleteAccount {
        user: String,
    },
    NewAccount {
        user: String,
        secret: String,
    },
    NewTarget {
        tid: u32,
        iqn: String,
    },
    NewLun {
        tid: u32,
        lun: u32,
        path: String,
    },
    BindAccount {
        tid: u32,
        user: String,
    },
    /// An initiator-name ACL; tgt also needs an address ACL to let anyone in (`BindAddress`).
    BindInitiator {
        tid: u32,
        initiator: String,
    },
    BindAddress {
        tid: u32,
        address: String,
    },
}

impl Step {
    /// The `tgtadm` arguments (after `tgtadm`), for tgtd on `control_port`. The secret is an
    /// argument vector element, never a shell string; callers must not log the vector.
    pub fn argv(&self, control_port: u16) -> Vec<String> {
        let mut v: Vec<String> = ["-C", &control_port.to_string(), "--lld", "iscsi"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut push = |a: &[&str]| v.extend(a.iter().map(|s| s.to_string()));
        match self {
            Step::CloseConnection { tid, sid, cid } => push(&[
                "--op",
                "delete",
                "--mode",
                "conn",
                "--tid",
                &tid.to_string(),
                "--sid",
                &sid.to_string(),
                "--cid",
                &cid.to_string(),
            ]),
            Step::DeleteTarget { tid } => push(&[
                "--op",
                "delete",
                "--force",
                "--mode",
                "target",
                "--tid",
                &tid.to_string(),
            ]),
            Step::DeleteAccount { user } => {
                push(&["--op", "delete", "--mode", "account", "--user", user])
            }
            Step::NewAccount { user, secret } => push(&[
                "--op",
                "new",
                "--mode",
                "account",
                "--user",
                user,
                "--password",
                secret,
            ]),
            Step::NewTarget { tid, iqn } => push(&[
                "--op",
                "new",
                "--mode",
                "target",
                "--tid",
                &tid.to_string(),
                "-T",
                iqn,
            ]),
            Step::NewLun { tid, lun, path } => push(&[
                "--op",
                "new",
                "--mode",
                "logicalunit",
                "--tid",
                &tid.to_string(),
                "--lun",
                &lun.to_string(),
                "-b",
                path,
            ]),
            Step::BindAccount { tid, user } => push(&[
                "--op",
                "bind",
                "--mode",
                "account",
                "--tid",
                &tid.to_string(),
                "--user",
                user,
            ]),
            Step::BindInitiator { tid, initiator } => push(&[
                "--op",
                "bind",
                "--mode",
                "target",
                "--tid",
                &tid.to_string(),
                "--initiator-name",
                initiator,
            ]),
            Step::BindAddress { tid, address } => push(&[
                "--op",
                "bind",
                "--mode",
                "target",
                "--tid",
                &tid.to_string(),
                "-I",
                address,
            ]),
        }
        v
    }

    /// For logs and events: the step without its secret.
    pub fn describe(&self) -> String {
        match self {
            Step::CloseConnection { tid, sid, cid } => {
                format!("close connection {cid} of session {sid} on target {tid}")
            }
            Step::DeleteTarget { tid } => format!("delete target {tid}"),
            Step::DeleteAccount { user } => format!("delete account {user}"),
            Step::NewAccount { user, .. } => format!("new account {user}"),
            Step::NewTarget { tid, iqn } => format!("new target {tid} {iqn}"),
            Step::NewLun { tid, lun, path } => format!("target {tid}: LUN {lun} on {path}"),
            Step::BindAccount { tid, user } => format!("target {tid}: CHAP user {user}"),
            Step::BindInitiator { tid, initiator } => {
                format!("target {tid}: admit initiator {initiator}")
            }
            Step::BindAddress { tid, address } => format!("target {tid}: admit address {address}"),
        }
    }
}

/// The steps that make tgtd serve exactly `wanted` among Kiln's targets and accounts (those under
/// [`TARGET_PREFIX`] / [`CHAP_USER_PREFIX`]); others are left alone. `known_accounts` is what
/// `--op show --mode account` lists; `applied` maps a CHAP user to the secret last given to tgtd
/// (tgt never shows secrets): a user whose secret changed is re-created. A Kiln target that
/// differs from what is wanted (another LUN path, a missing binding) is deleted and re-created,
/// closing its sessions first; the initiator logs in again (its replacement timeout covers it).
pub fn reconcile(
    wanted: &[WantedTarget],
    shown: &[ShownTarget],
    known_accounts: &[String],
    applied: &BTreeMap<String, String>,
    address_acl: &str,
) -> Vec<Step> {
    let mut steps = Vec::new();
    let want: BTreeMap<&str, &WantedTarget> = wanted.iter().map(|w| (w.iqn.as_str(), w)).collect();
    let mut used_tids: BTreeSet<u32> = shown.iter().map(|t| t.tid).collect();
    let ours = |iqn: &str| {
        iqn.strip_prefix(TARGET_PREFIX)
            .is_some_and(|r| r.starts_with(":vol-"))
    };
    let matches = |t: &ShownTarget, w: &WantedTarget| {
        t.luns == [(LUN, w.path.clone())]
            && t.accounts == [w.chap_user.clone()]
            && t.acls.contains(&w.initiator)
            && t.acls.iter().any(|a| a == address_acl)
    };
    let mut keep: BTreeSet<&str> = BTreeSet::new();
    for t in shown.iter().filter(|t| ours(&t.iqn)) {
        match want.get(t.iqn.as_str()) {
            Some(w) if matches(t, w) && applied.get(&w.chap_user) == Some(&w.chap_secret) => {
                keep.insert(w.iqn.as_str());
            }
            _ => {
                for s in &t.sessions {
                    for (cid, _) in &s.connections {
                        steps.push(Step::CloseConnection {
                            tid: t.tid,
                            sid: s.sid,
                            cid: *cid,
                        });
                    }
                }
                steps.push(Step::DeleteTarget { tid: t.tid });
                used_tids.remove(&t.tid);
            }
        }
    }
    // Accounts: Kiln's that are unwanted or whose secret is not the wanted one go; wanted ones
    // missing (or just deleted) are made.
    let wanted_users: BTreeMap<&str, &str> = wanted
        .iter()
        .map(|w| (w.chap_user.as_str(), w.chap_secret.as_str()))
        .collect();
    let mut present: BTreeSet<&str> = BTreeSet::new();
    for u in known_accounts
        .iter()
        .filter(|u| u.starts_with(CHAP_USER_PREFIX))
    {
        match wanted_users.get(u.as_str()) {
            Some(secret) if applied.get(u.as_str()).map(String::as_str) == Some(*secret) => {
                present.insert(u.as_str());
            }
            _ => steps.push(Step::DeleteAccount { user: u.clone() }),
        }
    }
    for w in wanted {
        if !present.contains(w.chap_user.as_str()) {
            steps.push(Step::NewAccount {
                user: w.chap_user.clone(),
                secret: w.chap_secret.clone(),
            });
        }
    }
    let mut next_tid = 1;
    for w in wanted.iter().filter(|w| !keep.contains(w.iqn.as_str())) {
        while used_tids.contains(&next_tid) {
            next_tid += 1;
        }
        let tid = next_tid;
        used_tids.insert(tid);
        steps.extend([
            Step::NewTarget {
                tid,
                iqn: w.iqn.clone(),
            },
            Step::NewLun {
                tid,
                lun: LUN,
                path: w.path.clone(),
            },
            Step::BindAccount {
                tid,
                user: w.chap_user.clone(),
            },
            Step::BindInitiator {
                tid,
                initiator: w.initiator.clone(),
            },
            Step::BindAddress {
                tid,
                address: address_acl.to_string(),
            },
        ]);
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_config_points_cloud_init_at_the_rack() {
        let c = seed_config("http://10.20.0.2:5248", "boot_abc");
        assert!(c.contains("datasource_list: [ NoCloud, None ]"), "{c}");
        assert!(
            c.contains("seedfrom: http://10.20.0.2:5248/metadata/v1/nocloud/boot_abc/\n"),
            "{c}"
        );
    }

    /// What tgt 1.0.85 printed for a Kiln target with a logged-in initiator (trimmed LUN details).
    const SHOW: &str = "Target 1: iqn.2026-12.org.kiln:vol-abc
    System information:
        Driver: iscsi
        State: ready
    I_T nexus information:
        I_T nexus: 3
            Initiator: iqn.2026-12.org.kiln.initiator:m1 alias: none
            Connection: 0
                IP Address: 10.20.0.100
    LUN information:
        LUN: 0
            Type: controller
            Backing store type: null
            Backing store path: None
            Backing store flags: 
        LUN: 1
            Type: disk
            Size: 67 MB, Block size: 512
            Backing store type: rdwr
            Backing store path: /srv/kiln/vol/abc.img
            Backing store flags: 
    Account information:
        kiln-abc
    ACL information:
        10.20.0.0/24
        iqn.2026-12.org.kiln.initiator:m1
Target 2: iqn.2001-04.com.example:other
    System information:
        Driver: iscsi
        State: ready
    I_T nexus information:
    LUN information:
        LUN: 0
            Type: controller
            Backing store path: None
    Account information:
    ACL information:
        ALL
";

    fn wanted() -> WantedTarget {
        WantedTarget {
            iqn: target_iqn("abc"),
            path: "/srv/kiln/vol/abc.img".into(),
            chap_user: chap_user("abc"),
            chap_secret: "S3cretS3cret".into(),
            initiator: initiator_iqn("m1"),
        }
    }

    /// Target 1 of `SHOW` logged out and deleted, with its account.
    fn removal_of_abc() -> [Step; 3] {
        [
            Step::CloseConnection {
                tid: 1,
                sid: 3,
                cid: 0,
            },
            Step::DeleteTarget { tid: 1 },
            Step::DeleteAccount {
                user: "kiln-abc".into(),
            },
        ]
    }

    fn applied() -> BTreeMap<String, String> {
        [("kiln-abc".to_string(), "S3cretS3cret".to_string())].into()
    }

    #[test]
    fn show_output_parses() {
        let t = parse_show_targets(SHOW);
        assert_eq!(t.len(), 2);
        assert_eq!(
            (t[0].tid, t[0].iqn.as_str()),
            (1, "iqn.2026-12.org.kiln:vol-abc")
        );
        assert_eq!(
            t[0].sessions,
            [Session {
                sid: 3,
                initiator: "iqn.2026-12.org.kiln.initiator:m1".into(),
                connections: vec![(0, "10.20.0.100".into())],
            }]
        );
        assert_eq!(t[0].luns, [(1, "/srv/kiln/vol/abc.img".to_string())]);
        assert_eq!(t[0].accounts, ["kiln-abc"]);
        assert_eq!(
            t[0].acls,
            ["10.20.0.0/24", "iqn.2026-12.org.kiln.initiator:m1"]
        );
        assert!(t[1].luns.is_empty() && t[1].accounts.is_empty());
        assert_eq!(
            parse_show_accounts("Account list:\n    kiln-abc\n    other\n"),
            ["kiln-abc", "other"]
        );
        assert!(parse_show_accounts("Account list:\n").is_empty());
    }

    #[test]
    fn a_served_target_needs_nothing_and_foreign_ones_are_left_alone() {
        let shown = parse_show_targets(SHOW);
        let accts = vec!["kiln-abc".to_string(), "other".to_string()];
        assert_eq!(
            reconcile(&[wanted()], &shown, &accts, &applied(), "10.20.0.0/24"),
            []
        );
        // Nothing wanted: Kiln's target is logged out and deleted, and its account; target 2
        // and the account "other" stay.
        assert_eq!(
            reconcile(&[], &shown, &accts, &applied(), "10.20.0.0/24"),
            removal_of_abc()
        );
    }

    #[test]
    fn after_a_tgtd_restart_everything_is_made_again_with_free_tids() {
        let foreign: Vec<ShownTarget> = parse_show_targets(SHOW)
            .into_iter()
            .filter(|t| t.tid == 2)
            .collect();
        let steps = reconcile(&[wanted()], &foreign, &[], &BTreeMap::new(), "ALL");
        assert_eq!(
            steps,
            [
                Step::NewAccount {
                    user: "kiln-abc".into(),
                    secret: "S3cretS3cret".into()
                },
                Step::NewTarget {
                    tid: 1,
                    iqn: target_iqn("abc")
                },
                Step::NewLun {
                    tid: 1,
                    lun: 1,
                    path: "/srv/kiln/vol/abc.img".into()
                },
                Step::BindAccount {
                    tid: 1,
                    user: "kiln-abc".into()
                },
                Step::BindInitiator {
                    tid: 1,
                    initiator: initiator_iqn("m1")
                },
                Step::BindAddress {
                    tid: 1,
                    address: "ALL".into()
                },
            ]
        );
        // tid 1 taken by a foreign target: Kiln's gets 3 (2 is taken too).
        let mut both = foreign.clone();
        both.push(ShownTarget {
            tid: 1,
            iqn: "iqn.2001-04.com.example:x".into(),
            ..Default::default()
        });
        let steps = reconcile(&[wanted()], &both, &[], &BTreeMap::new(), "ALL");
        assert_eq!(
            steps[1],
            Step::NewTarget {
                tid: 3,
                iqn: target_iqn("abc")
            }
        );
    }

    #[test]
    fn a_changed_secret_or_path_remakes_the_target() {
        let shown = parse_show_targets(SHOW);
        let accts = vec!["kiln-abc".to_string()];
        let mut w = wanted();
        w.chap_secret = "AnotherSecret1".into();
        let steps = reconcile(&[w.clone()], &shown, &accts, &applied(), "10.20.0.0/24");
        assert_eq!(steps[..3], removal_of_abc());
        assert_eq!(
            steps[3],
            Step::NewAccount {
                user: "kiln-abc".into(),
                secret: "AnotherSecret1".into()
            }
        );
        assert_eq!(
            steps[4],
            Step::NewTarget {
                tid: 1,
                iqn: target_iqn("abc")
            }
        );
        let mut w = wanted();
        w.path = "/srv/kiln/vol/abc2.img".into();
        let steps = reconcile(&[w], &shown, &accts, &applied(), "10.20.0.0/24");
        assert!(steps.contains(&Step::DeleteTarget { tid: 1 }), "{steps:?}");
        assert!(
            !steps
                .iter()
                .any(|s| matches!(s, Step::DeleteAccount { .. })),
            "{steps:?}"
        );
    }

    #[test]
    fn argv_is_a_vector_and_describe_hides_the_secret() {
        let s = Step::NewAccount {
            user: "kiln-abc".into(),
            secret: "S3cretS3cret".into(),
        };
        assert_eq!(
            s.argv(23),
            [
                "-C",
                "23",
                "--lld",
                "iscsi",
                "--op",
                "new",
                "--mode",
                "account",
                "--user",
                "kiln-abc",
                "--password",
                "S3cretS3cret"
            ]
        );
        assert!(!s.describe().contains("S3cret"));
        assert_eq!(
            Step::BindInitiator {
                tid: 4,
                initiator: initiator_iqn("m1")
            }
            .argv(1)[4..],
            [
                "--op",
                "bind",
                "--mode",
                "target",
                "--tid",
                "4",
                "--initiator-name",
                "iqn.2026-12.org.kiln.initiator:m1"
            ]
        );
    }

    #[test]
    fn names_uris_and_portals() {
        assert!(valid_iqn(&target_iqn("abc")));
        assert!(valid_iqn(&initiator_iqn("x7k2pq")));
        assert_ne!(initiator_iqn("m1"), initiator_iqn("m2"));
        for bad in [
            "iqn.2026-12",
            "iqn.26-12.org.x",
            "iqn.2026-12.Org.x",
            "eui.02004567A425678D",
            "iqn.2026-12.org.x y",
        ] {
            assert!(!valid_iqn(bad), "{bad}");
        }
        assert!(valid_chap_secret("abcdefGHIJ12"));
        assert!(!valid_chap_secret("short"));
        assert!(!valid_chap_secret("has space in it!"));
        let p = Portal::parse("10.20.0.2").unwrap();
        assert_eq!(p.to_string(), "10.20.0.2:3260");
        assert_eq!(
            san_uri(&p, 1, "iqn.2026-12.org.kiln:vol-a"),
            "iscsi:10.20.0.2::3260:1:iqn.2026-12.org.kiln:vol-a"
        );
        assert_eq!(san_uri(&p, 26, "t"), "iscsi:10.20.0.2::3260:1a:t");
        let p6 = Portal::parse("[fd00::2]:3261").unwrap();
        assert_eq!(san_uri(&p6, 1, "t"), "iscsi:[fd00::2]::3261:1:t");
        assert!(Portal::parse("san.example")
            .unwrap_err()
            .contains("IP:PORT"));
        assert!(Portal::parse("10.0.0.1:0").is_err());
    }
}
