//! Settings an operator changes at run time (API, CLI, UI), over the configuration file's values:
//! the lifecycle's deadlines and enlistment, and power polling. Stored in the database, so every
//! region sharing it uses the same values; read where they are used, so a change takes effect at
//! the next action, with no restart.

use region_api_types as api;

use super::Caller;
use crate::config::{Config, Lifecycle, Power};
use crate::db::{self, DbConn};
use crate::error::{Error, Result};

/// What a setting holds.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Seconds in `min..=max` (`zero_ok`: 0 also, meaning "never").
    Secs {
        min: u64,
        max: u64,
        zero_ok: bool,
    },
    /// Days in `min..=max` (`zero_ok`: 0 also, meaning "forever").
    Days {
        min: u64,
        max: u64,
        zero_ok: bool,
    },
    Bool,
}

#[derive(Debug)]
struct Spec {
    name: &'static str,
    kind: Kind,
    help: &'static str,
}

const SPECS: [Spec; 8] = [
    Spec {
        name: "lifecycle.node_timeout_secs",
        kind: Kind::Secs { min: 60, max: 86_400, zero_ok: false },
        help: "How long commissioning, deploying or erasing may take before the machine is marked failed.",
    },
    Spec {
        name: "lifecycle.release_timeout_secs",
        kind: Kind::Secs { min: 60, max: 86_400, zero_ok: false },
        help: "How long releasing and exiting rescue mode may take.",
    },
    Spec {
        name: "lifecycle.enlist_commission",
        kind: Kind::Bool,
        help: "Whether a machine that enlists by PXE booting is commissioned at once.",
    },
    Spec {
        name: "power.poll_secs",
        kind: Kind::Secs { min: 10, max: 86_400, zero_ok: true },
        help: "How often each machine's power state is read from its BMC (0: never).",
    },
    Spec {
        name: "power.job_timeout_secs",
        kind: Kind::Secs { min: 10, max: 3_600, zero_ok: false },
        help: "How long a power job may wait for a rack before it fails.",
    },
    Spec {
        name: "power.pod_refresh_secs",
        kind: Kind::Secs { min: 10, max: 86_400, zero_ok: true },
        help: "How often each KVM pod's host is discovered again, to reconcile its capacity with VMs made outside Kiln (0: never).",
    },
    Spec {
        name: "lifecycle.event_retention_days",
        kind: Kind::Days { min: 1, max: 36_500, zero_ok: true },
        help: "Machine events older than this many days are removed (0: kept forever).",
    },
    Spec {
        name: "lifecycle.audit_retention_days",
        kind: Kind::Days { min: 1, max: 36_500, zero_ok: true },
        help: "Audit-log entries older than this many days are removed (0: kept forever).",
    },
];

fn spec(name: &str) -> Result<&'static Spec> {
    SPECS.iter().find(|s| s.name == name).ok_or_else(|| {
        Error::validation(
            "name",
            format!(
                "'{name}' is not a setting that can be changed; they are {}.",
                SPECS.map(|s| s.name).join(", ")
            ),
        )
    })
}

/// The value in canonical form, or why it is refused.
fn parse(s: &Spec, v: &str) -> Result<String> {
    let v = v.trim();
    match s.kind {
        Kind::Bool => match v.to_ascii_lowercase().as_str() {
            "true" | "on" | "yes" | "1" => Ok("true".into()),
            "false" | "off" | "no" | "0" => Ok("false".into()),
            _ => Err(Error::validation(
                s.name,
                format!("{} is true or false, not '{v}'.", s.name),
            )),
        },
        Kind::Secs { min, max, zero_ok } => whole(s.name, v, min, max, zero_ok, "seconds"),
        Kind::Days { min, max, zero_ok } => whole(s.name, v, min, max, zero_ok, "days"),
    }
}

/// A whole number of `unit` in `min..=max` (or 0 when `zero_ok`), canonical, or why not.
fn whole(name: &str, v: &str, min: u64, max: u64, zero_ok: bool, unit: &str) -> Result<String> {
    match v.parse::<u64>() {
        Ok(0) if zero_ok => Ok("0".into()),
        Ok(n) if (min..=max).contains(&n) => Ok(n.to_string()),
        _ => Err(Error::validation(
            name,
            format!(
                "{name} is a whole number of {unit} from {min} to {max}{}, not '{v}'.",
                if zero_ok { " (or 0)" } else { "" }
            ),
        )),
    }
}

fn file_value(cfg: &Config, name: &str) -> String {
    match name {
        "lifecycle.node_timeout_secs" => cfg.lifecycle.node_timeout_secs.to_string(),
        "lifecycle.release_timeout_secs" => cfg.lifecycle.release_timeout_secs.to_string(),
        "lifecycle.enlist_commission" => cfg.lifecycle.enlist_commission.to_string(),
        "power.poll_secs" => cfg.power.poll_secs.to_string(),
        "power.job_timeout_secs" => cfg.power.job_timeout_secs.to_string(),
        "power.pod_refresh_secs" => cfg.power.pod_refresh_secs.to_string(),
        "lifecycle.event_retention_days" => cfg.lifecycle.event_retention_days.to_string(),
        "lifecycle.audit_retention_days" => cfg.lifecycle.audit_retention_days.to_string(),
        _ => String::new(),
    }
}

/// The lifecycle and power settings in effect: the file's, with what operators changed over them.
/// A stored value that no longer parses (an older region's) is ignored.
pub fn effective(conn: &mut DbConn, cfg: &Config) -> Result<(Lifecycle, Power)> {
    let (mut l, mut p) = (cfg.lifecycle.clone(), cfg.power.clone());
    for (name, v) in db::settings::changed(conn)? {
        let Ok(s) = spec(&name) else { continue };
        let Ok(v) = parse(s, &v) else { continue };
        let n = v.parse::<u64>().unwrap_or(0);
        match name.as_str() {
            "lifecycle.node_timeout_secs" => l.node_timeout_secs = n,
            "lifecycle.release_timeout_secs" => l.release_timeout_secs = n,
            "lifecycle.enlist_commission" => l.enlist_commission = v == "true",
            "power.poll_secs" => p.poll_secs = n,
            "power.job_timeout_secs" => p.job_timeout_secs = n,
            "power.pod_refresh_secs" => p.pod_refresh_secs = n,
            "lifecycle.event_retention_days" => l.event_retention_days = n,
            "lifecycle.audit_retention_days" => l.audit_retention_days = n,
            _ => {}
        }
    }
    Ok((l, p))
}

/// The lifecycle settings in effect.
pub fn lifecycle(conn: &mut DbConn, cfg: &Config) -> Result<Lifecycle> {
    Ok(effective(conn, cfg)?.0)
}

/// Every changeable setting, its value in effect and the file's.
pub fn list(conn: &mut DbConn, cfg: &Config) -> Result<Vec<api::Setting>> {
    let changed = db::settings::changed(conn)?;
    Ok(SPECS
        .iter()
        .map(|s| {
            let file = file_value(cfg, s.name);
            let over = changed
                .iter()
                .find(|(n, _)| n == s.name)
                .and_then(|(_, v)| parse(s, v).ok());
            api::Setting {
                name: s.name.to_string(),
                value: over.clone().unwrap_or_else(|| file.clone()),
                file_value: file,
                changed: over.is_some(),
                help: s.help.to_string(),
            }
        })
        .collect())
}

/// Changes a setting (admins); `None` puts the file's value back. Audited.
pub fn set(
    conn: &mut DbConn,
    caller: &Caller,
    cfg: &Config,
    name: &str,
    value: Option<&str>,
    now: i64,
) -> Result<api::Setting> {
    if !caller.is_admin {
        return Err(Error::Forbidden(
            "Only administrators may change settings.".into(),
        ));
    }
    let s = spec(name)?;
    match value {
        Some(v) => {
            let v = parse(s, v)?;
            db::settings::put(conn, s.name, &v)?;
            db::users::audit(conn, now, &caller.username, "setting.set", s.name, &v)?;
        }
        None => {
            db::settings::reset(conn, s.name)?;
            db::users::audit(conn, now, &caller.username, "setting.reset", s.name, "")?;
        }
    }
    list(conn, cfg)?
        .into_iter()
        .find(|x| x.name == s.name)
        .ok_or_else(|| Error::Internal("setting vanished".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_and_made_canonical() {
        let t = spec("lifecycle.node_timeout_secs").unwrap();
        assert_eq!(parse(t, " 600 ").unwrap(), "600");
        assert!(parse(t, "5")
            .unwrap_err()
            .to_string()
            .contains("from 60 to 86400"));
        assert!(parse(t, "0").is_err());
        let p = spec("power.poll_secs").unwrap();
        assert_eq!(parse(p, "0").unwrap(), "0");
        let b = spec("lifecycle.enlist_commission").unwrap();
        assert_eq!(parse(b, "Off").unwrap(), "false");
        assert!(parse(b, "maybe").is_err());
        assert!(spec("api.max_page_size")
            .unwrap_err()
            .to_string()
            .contains("not a setting"));
    }
}
