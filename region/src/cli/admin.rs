//! Commands that open the database directly: for the first admin and token, and migrations.

use std::io::BufRead;

use anyhow::{bail, Context};

use super::DbArgs;
use crate::config::{Config, Overrides};
use crate::db::{now_ms, Pool};
use crate::domain::users;

pub fn load_config(db: &DbArgs, extra: Overrides) -> anyhow::Result<Config> {
    let o = Overrides {
        data_dir: db.data_dir.clone(),
        database_url: db.database_url.clone(),
        ..extra
    };
    Ok(Config::load(db.config.as_deref(), o)?)
}

fn open(db: &DbArgs) -> anyhow::Result<Pool> {
    let cfg = load_config(db, Overrides::default())?;
    Pool::open(&cfg.database_url()).with_context(|| {
        format!(
            "cannot open the database at {}",
            crate::config::redact_url(&cfg.database_url())
        )
    })
}

pub fn create_user(
    name: &str,
    admin: bool,
    password_stdin: bool,
    db: &DbArgs,
) -> anyhow::Result<()> {
    if !password_stdin {
        bail!("pass --password-stdin and give the password on standard input (passwords never go on the command line)");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']);
    let pool = open(db)?;
    let u = pool.run_blocking(|c| users::create_user(c, None, name, password, admin, now_ms()))?;
    eprintln!(
        "created {} {}",
        if u.is_admin { "administrator" } else { "user" },
        u.username
    );
    Ok(())
}

pub fn create_token(
    user: &str,
    token_name: &str,
    scope: Option<region_api_types::TokenScope>,
    expires: Option<&str>,
    db: &DbArgs,
) -> anyhow::Result<()> {
    let expires_at = expires
        .map(|e| super::users::expiry(e, chrono::Utc::now()))
        .transpose()?;
    let now = now_ms();
    let spec = users::TokenSpec::from_api(scope, expires_at.as_deref(), now)?;
    let pool = open(db)?;
    let t = pool.run_blocking(|c| {
        let u = crate::db::users::by_username(c, user)?.ok_or_else(|| {
            crate::Error::not_found(format!(
                "user {user} (create it with `kiln admin create-user {user} --password-stdin`)"
            ))
        })?;
        // The admin CLI has the database itself: the cap is the user's own role.
        users::create_token(
            c,
            &u,
            token_name,
            &spec,
            region_api_types::TokenScope::Admin,
            now,
        )
    })?;
    println!("{}", t.secret);
    Ok(())
}

pub fn migrate(db: &DbArgs) -> anyhow::Result<()> {
    let cfg = load_config(db, Overrides::default())?;
    let pool = Pool::connect(&cfg.database_url())?;
    let applied = pool.migrate()?;
    eprintln!(
        "database {} is up to date{}",
        crate::config::redact_url(&cfg.database_url()),
        if applied.is_empty() {
            String::new()
        } else {
            format!(" (applied {})", applied.join(", "))
        }
    );
    Ok(())
}

pub fn rack_secret(db: &DbArgs) -> anyhow::Result<()> {
    eprintln!("warning: the shared rack secret is deprecated and goes away in the next release: enrol racks with `kiln admin rack-token` (one-time, pins the region's certificate, racks wait for approval)");
    let pool = open(db)?;
    let secret = pool.run_blocking(crate::api::rack_api::rack_secret)?;
    println!("{secret}");
    Ok(())
}

pub fn rack_token(
    ttl: &str,
    auto_approve: bool,
    power_networks: &[String],
    db: &DbArgs,
) -> anyhow::Result<()> {
    let secs = super::racks::ttl_secs(ttl)?;
    let cfg = load_config(db, Overrides::default())?;
    let pin = crate::tls::enrolment_pin(&cfg)?;
    let pool = open(db)?;
    let nets = power_networks.to_vec();
    let t = pool.run_blocking(move |c| {
        crate::domain::racks::create_token(
            c,
            "admin-cli",
            secs,
            auto_approve,
            &nets,
            pin.clone(),
            now_ms(),
        )
    })?;
    eprintln!(
        "one rack may enrol with this token until {}{}",
        t.expires_at,
        if auto_approve {
            " (approved at once)"
        } else {
            "; approve it then with `kiln racks approve ID`"
        }
    );
    println!("{}", t.token);
    Ok(())
}
