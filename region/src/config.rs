//! Region configuration: a TOML file, then `KILN_*` environment variables, then flags — loaded,
//! merged and validated once at start, then shared as `Arc<Config>`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Everything the region needs to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the SQLite database, the image store and other state live.
    pub data_dir: PathBuf,
    /// Address of the REST API and UI (MAAS's port, 5240).
    pub listen: SocketAddr,
    /// `postgres://…` for PostgreSQL; a path (or `sqlite://path`) for SQLite.
    /// Unset: SQLite at `<data_dir>/kiln.db`.
    pub database_url: Option<String>,
    pub lifecycle: Lifecycle,
    pub api: Api,
    pub power: Power,
    /// `text` or `json` logs.
    pub log_format: String,
    /// The key that seals BMC passwords and tokens at rest. Unset: `<data_dir>/secret.key`, created
    /// on first start. Regions sharing a PostgreSQL database need the same key file.
    pub secret_key_file: Option<PathBuf>,
    pub tls: Tls,
}

/// HTTPS on the API port (`region::tls`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    /// `auto`: HTTPS unless the API listens on loopback only; `on`: HTTPS always; `off`: plain
    /// HTTP (`--plain-http`; racks' and operators' credentials then cross the network in clear).
    pub mode: String,
    /// The operator's certificate chain (PEM, leaf first); unset: one signed by the region's own
    /// CA (`<data_dir>/tls/ca.pem`, made at first start).
    pub cert_file: Option<PathBuf>,
    /// The key of `cert_file` (PEM).
    pub key_file: Option<PathBuf>,
    /// More DNS names or addresses for the generated certificate (what clients reach the region
    /// by, beyond this host's name and interface addresses).
    pub names: Vec<String>,
}

impl Default for Tls {
    fn default() -> Self {
        Tls {
            mode: "auto".into(),
            cert_file: None,
            key_file: None,
            names: Vec::new(),
        }
    }
}

/// Power control.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Power {
    /// How often each machine's power state is read from its BMC (0: never).
    pub poll_secs: u64,
    /// A job no rack finished in this time fails ("no rack answered").
    pub job_timeout_secs: u64,
    /// How often each KVM pod's host is discovered again (0: never).
    pub pod_refresh_secs: u64,
}

impl Default for Power {
    fn default() -> Self {
        Power {
            poll_secs: 300,
            job_timeout_secs: 300,
            pod_refresh_secs: 300,
        }
    }
}

/// Deadlines of in-progress statuses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Lifecycle {
    /// Commissioning, deploying, testing, disk erasing, entering rescue (MAAS `node_timeout`, 30 min).
    pub node_timeout_secs: u64,
    /// Releasing and exiting rescue mode (MAAS: 5 min).
    pub release_timeout_secs: u64,
    /// How often the region looks for expired deadlines.
    pub deadline_check_secs: u64,
    /// Whether a machine enlisted by PXE booting starts commissioning at once (MAAS
    /// `enlist_commissioning`, default on); off, it stays New until an operator commissions it.
    pub enlist_commission: bool,
    /// Machine events older than this many days are removed (0: kept forever).
    pub event_retention_days: u64,
    /// Audit-log entries older than this many days are removed (0: kept forever).
    pub audit_retention_days: u64,
    /// How often expired sessions, tokens and boot tokens, and old events, are removed.
    pub prune_secs: u64,
}

/// API limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Api {
    /// Largest JSON body accepted.
    pub max_json_bytes: usize,
    /// Largest boot-resource file accepted.
    pub max_upload_bytes: u64,
    pub default_page_size: i64,
    pub max_page_size: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("/var/lib/kiln"),
            listen: SocketAddr::from(([0, 0, 0, 0], 5240)),
            database_url: None,
            lifecycle: Lifecycle::default(),
            api: Api::default(),
            power: Power::default(),
            log_format: "text".into(),
            secret_key_file: None,
            tls: Tls::default(),
        }
    }
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            node_timeout_secs: 30 * 60,
            release_timeout_secs: 5 * 60,
            deadline_check_secs: 10,
            enlist_commission: true,
            event_retention_days: 90,
            audit_retention_days: 365,
            prune_secs: 3600,
        }
    }
}

impl Default for Api {
    fn default() -> Self {
        Api {
            max_json_bytes: 1 << 20,
            max_upload_bytes: 16 << 30,
            default_page_size: 100,
            max_page_size: 10_000,
        }
    }
}

/// Values from the environment and flags (clap fills both; a flag wins over its variable).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub database_url: Option<String>,
    pub node_timeout_secs: Option<u64>,
    pub enlist_commission: Option<bool>,
    pub log_format: Option<String>,
    /// `--tls auto|on|off` (`--plain-http` is `off`).
    pub tls_mode: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_names: Vec<String>,
}

impl Config {
    /// Reads `file` (if given), applies `o`, validates.
    pub fn load(file: Option<&Path>, o: Overrides) -> Result<Config> {
        let mut cfg = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    Error::Config(format!("cannot read config file {}: {e}", p.display()))
                })?;
                toml::from_str(&text)
                    .map_err(|e| Error::Config(format!("config file {}: {e}", p.display())))?
            }
            None => Config::default(),
        };
        if let Some(v) = o.data_dir {
            cfg.data_dir = v;
        }
        if let Some(v) = o.listen {
            cfg.listen = v;
        }
        if let Some(v) = o.database_url {
            cfg.database_url = Some(v);
        }
        if let Some(v) = o.node_timeout_secs {
            cfg.lifecycle.node_timeout_secs = v;
        }
        if let Some(v) = o.enlist_commission {
            cfg.lifecycle.enlist_commission = v;
        }
        if let Some(v) = o.log_format {
            cfg.log_format = v;
        }
        if let Some(v) = o.tls_mode {
            cfg.tls.mode = v;
        }
        if let Some(v) = o.tls_cert {
            cfg.tls.cert_file = Some(v);
        }
        if let Some(v) = o.tls_key {
            cfg.tls.key_file = Some(v);
        }
        cfg.tls.names.extend(o.tls_names);
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(Error::Config("data_dir must not be empty".into()));
        }
        if self.lifecycle.node_timeout_secs == 0 || self.lifecycle.release_timeout_secs == 0 {
            return Err(Error::Config(
                "lifecycle timeouts must be at least 1 second".into(),
            ));
        }
        if self.lifecycle.deadline_check_secs == 0 {
            return Err(Error::Config(
                "lifecycle.deadline_check_secs must be at least 1".into(),
            ));
        }
        crate::tls::decide(self.listen, &self.tls)?;
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return Err(Error::Config(format!(
                "log_format is '{}'; use 'text' or 'json'",
                self.log_format
            )));
        }
        if self.api.default_page_size < 1 || self.api.max_page_size < self.api.default_page_size {
            return Err(Error::Config(
                "api.default_page_size must be at least 1 and at most api.max_page_size".into(),
            ));
        }
        if let Some(u) = &self.database_url {
            if u.trim().is_empty() {
                return Err(Error::Config("database_url is empty".into()));
            }
            if u.contains("://")
                && !(u.starts_with("postgres://")
                    || u.starts_with("postgresql://")
                    || u.starts_with("sqlite://"))
            {
                return Err(Error::Config(format!(
                    "database_url scheme not supported: use postgres://…, sqlite://PATH or a plain path (got {})",
                    redact_url(u)
                )));
            }
        }
        Ok(())
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.clone(),
            None => self.data_dir.join("kiln.db").to_string_lossy().into_owned(),
        }
    }

    /// Where uploaded boot-resource files are kept.
    pub fn secret_key_path(&self) -> PathBuf {
        self.secret_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("secret.key"))
    }

    pub fn image_dir(&self) -> PathBuf {
        self.data_dir.join("images")
    }

    /// The effective configuration as TOML, with the database password hidden.
    pub fn to_toml_redacted(&self) -> String {
        let mut c = self.clone();
        c.database_url = Some(redact_url(&self.database_url()));
        toml::to_string_pretty(&c).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((auth, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("region.toml");
        std::fs::write(
            &p,
            "data_dir = \"/tmp/a\"\nlisten = \"127.0.0.1:1\"\n[lifecycle]\nnode_timeout_secs = 60\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&p),
            Overrides {
                listen: Some("127.0.0.1:2".parse().unwrap()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/tmp/a"));
        assert_eq!(c.listen.port(), 2);
        assert_eq!(c.lifecycle.node_timeout_secs, 60);
        assert_eq!(c.lifecycle.release_timeout_secs, 300);
        assert_eq!(c.database_url(), "/tmp/a/kiln.db");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("region.toml");
        std::fs::write(&p, "data_dirr = \"/tmp/a\"\n").unwrap();
        let e = Config::load(Some(&p), Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        let e = Config::load(
            None,
            Overrides {
                database_url: Some("mysql://x".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("scheme"), "{e}");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://kiln:hunter2@db/kiln"),
            "postgres://kiln:***@db/kiln"
        );
        let c = Config {
            database_url: Some("postgres://kiln:hunter2@db/kiln".into()),
            ..Default::default()
        };
        assert!(!c.to_toml_redacted().contains("hunter2"));
    }
}
