//! `kiln users ...` and `kiln tokens ...` (through the API).

use anyhow::Context;
use clap::Subcommand;
use region_api_types as api;

use super::client::{seg, ClientArgs};
use super::commands::client;
use super::output::{self, opt};

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// List users.
    List,
    /// Add a user; the password is read from standard input.
    Create {
        username: String,
        #[arg(long)]
        admin: bool,
    },
    /// Delete a user.
    Delete { username: String },
}

pub async fn users(a: ClientArgs<UsersCommand>) -> anyhow::Result<()> {
    let c = client(&a)?;
    match a.command {
        UsersCommand::List => {
            let us: Vec<api::User> = c.get("/api/v1/users").await?;
            if a.json {
                return output::json(&us);
            }
            output::table(
                &["USERNAME", "ADMIN", "CREATED"],
                us.iter()
                    .map(|u| {
                        vec![
                            u.username.clone(),
                            u.is_admin.to_string(),
                            u.created_at.clone(),
                        ]
                    })
                    .collect(),
            );
            Ok(())
        }
        UsersCommand::Create { username, admin } => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("cannot read the password from standard input")?;
            let body = api::UserCreate {
                username,
                password: line.trim_end_matches(['\n', '\r']).to_string(),
                is_admin: admin,
            };
            let u: api::User = c.post("/api/v1/users", &body).await?;
            if a.json {
                output::json(&u)
            } else {
                eprintln!("created user {}", u.username);
                Ok(())
            }
        }
        UsersCommand::Delete { username } => {
            c.delete(&format!("/api/v1/users/{}", seg(&username)))
                .await?;
            eprintln!("deleted user {username}");
            Ok(())
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// List your tokens.
    List,
    /// Create a token for yourself; prints only the token.
    Create {
        name: String,
        /// What the token may do: read, operator or admin (default: all you may).
        #[arg(long, value_parser = parse_scope)]
        scope: Option<api::TokenScope>,
        /// When it stops working: after a time (`30d`, `12h`, `90m`, `2w`) or at one (RFC 3339).
        #[arg(long)]
        expires: Option<String>,
    },
    /// Revoke a token.
    Delete { id: String },
}

pub async fn tokens(a: ClientArgs<TokensCommand>) -> anyhow::Result<()> {
    let c = client(&a)?;
    match a.command {
        TokensCommand::List => {
            let ts: Vec<api::Token> = c.get("/api/v1/tokens").await?;
            if a.json {
                return output::json(&ts);
            }
            output::table(
                &[
                    "ID",
                    "NAME",
                    "USER",
                    "PREFIX",
                    "SCOPE",
                    "CREATED",
                    "LAST USED",
                    "EXPIRES",
                ],
                ts.iter()
                    .map(|t| {
                        vec![
                            t.id.clone(),
                            t.name.clone(),
                            t.username.clone(),
                            t.prefix.clone(),
                            t.scope.as_str().to_string(),
                            t.created_at.clone(),
                            opt(&t.last_used_at),
                            t.expires_at.clone().unwrap_or_else(|| "never".into()),
                        ]
                    })
                    .collect(),
            );
            Ok(())
        }
        TokensCommand::Create {
            name,
            scope,
            expires,
        } => {
            let expires_at = expires
                .as_deref()
                .map(|e| expiry(e, chrono::Utc::now()))
                .transpose()?;
            let body = api::TokenCreate {
                name,
                scope,
                expires_at,
            };
            let t: api::TokenCreated = c.post("/api/v1/tokens", &body).await?;
            if a.json {
                output::json(&t)
            } else {
                println!("{}", t.secret);
                Ok(())
            }
        }
        TokensCommand::Delete { id } => {
            c.delete(&format!("/api/v1/tokens/{}", seg(&id))).await?;
            eprintln!("revoked token {id}");
            Ok(())
        }
    }
}

/// `--scope`: read, operator or admin.
pub fn parse_scope(s: &str) -> Result<api::TokenScope, String> {
    api::TokenScope::parse(s.trim())
        .ok_or_else(|| format!("'{s}' is not a scope: read, operator or admin"))
}

/// `--expires`: a time from now (`30d`, `12h`, `90m`, `2w`, `45s`) or a moment (RFC 3339), as the
/// RFC 3339 time the API takes.
pub fn expiry(text: &str, now: chrono::DateTime<chrono::Utc>) -> anyhow::Result<String> {
    let t = text.trim();
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(t) {
        return Ok(at.with_timezone(&chrono::Utc).to_rfc3339());
    }
    let bad = || {
        anyhow::anyhow!(
            "--expires takes a time from now like 30d, 12h, 90m or 2w, or a moment like 2027-01-31T00:00:00Z, not '{text}'"
        )
    };
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let n: i64 = t[..split].parse().map_err(|_| bad())?;
    let unit = match &t[split..] {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    let secs = n
        .checked_mul(unit)
        .filter(|s| *s > 0 && *s <= 10 * 366 * 86_400)
        .ok_or_else(|| {
            anyhow::anyhow!("--expires {text}: give a time from 1 second to 10 years")
        })?;
    Ok((now + chrono::Duration::seconds(secs)).to_rfc3339())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_takes_durations_and_moments() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-03T00:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(expiry("30d", now).unwrap(), "2027-01-02T00:00:00+00:00");
        assert_eq!(expiry("12h", now).unwrap(), "2026-12-03T12:00:00+00:00");
        assert_eq!(expiry("2w", now).unwrap(), "2026-12-17T00:00:00+00:00");
        assert_eq!(
            expiry("2027-01-31T00:00:00Z", now).unwrap(),
            "2027-01-31T00:00:00+00:00"
        );
        for bad in ["", "30", "d", "30x", "-1d", "0d", "99999999999d"] {
            assert!(expiry(bad, now).is_err(), "{bad}");
        }
        assert_eq!(parse_scope("read"), Ok(api::TokenScope::Read));
        assert!(parse_scope("root").is_err());
    }
}
