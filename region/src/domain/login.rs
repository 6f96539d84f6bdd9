//! Password logins (`POST /api/v1/login` and the UI's login form): the same steps for both.
//!
//! - **Rate limits**, per source address and per username: each failed login fills a leaky bucket
//!   that drains at a steady rate; while either bucket is full, logins from that address (or for
//!   that user) get 429 with `Retry-After` without a password being checked. Successful logins
//!   drain nothing, so a caller cannot reset its bucket by logging in to an account of its own.
//!   The buckets are in memory, per region (see [`Limits`]).
//! - **argon2 off the pool**: the user is read in one pooled call, the hash checked on the blocking
//!   threads (at most [`VERIFIERS`] at once: each takes 19 MiB), the session written in another
//!   pooled call, so slow hashing never holds a database connection.
//! - **Unknown users take the same time**: their password is checked against a fixed hash.
//! - **Failures are audited** (`login.failed`, with the source address), as are logins.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};

use region_api_types as api;

use super::{auth, users};
use crate::db::{self, now_ms, Pool};
use crate::error::{Error, Result};

/// How many password checks run at once (each holds argon2's 19 MiB).
pub const VERIFIERS: usize = 4;

/// A leaky bucket's shape: `capacity` failures, draining one every `drain_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub capacity: u32,
    pub drain_ms: i64,
}

/// The limits logins are held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Per source address: 10 failures, then one more every 6 s (10 a minute).
    pub per_address: Limit,
    /// Per username: 20 failures, then one more every 15 s (4 a minute), from anywhere.
    pub per_user: Limit,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_address: Limit {
                capacity: 10,
                drain_ms: 6_000,
            },
            per_user: Limit {
                capacity: 20,
                drain_ms: 15_000,
            },
        }
    }
}

/// How many keys each table keeps at most; beyond it, drained buckets are dropped first, then the
/// oldest.
const MAX_KEYS: usize = 50_000;

/// A bucket's level `lvl` (thousandths), last updated at `at`, as it has drained by `now`.
fn drained(limit: Limit, lvl: i64, at: i64, now: i64) -> i64 {
    (lvl - (now - at).max(0) * 1000 / limit.drain_ms.max(1)).max(0)
}

/// One table of leaky buckets: key → (level in thousandths of a failure, when last updated).
#[derive(Debug)]
struct Buckets {
    limit: Limit,
    map: HashMap<String, (i64, i64)>,
}

impl Buckets {
    fn new(limit: Limit) -> Buckets {
        Buckets {
            limit,
            map: HashMap::new(),
        }
    }

    /// The level of `key` at `now`, drained since its last update (thousandths).
    fn level(&self, key: &str, now: i64) -> i64 {
        self.map
            .get(key)
            .map_or(0, |&(lvl, at)| drained(self.limit, lvl, at, now))
    }

    /// Milliseconds until `key` may try again (0: now).
    fn wait_ms(&self, key: &str, now: i64) -> i64 {
        let full = i64::from(self.limit.capacity) * 1000;
        let lvl = self.level(key, now);
        if lvl + 1000 <= full {
            0
        } else {
            (lvl + 1000 - full) * self.limit.drain_ms / 1000
        }
    }

    fn fail(&mut self, key: &str, now: i64) {
        let lvl = self.level(key, now) + 1000;
        if self.map.len() >= MAX_KEYS && !self.map.contains_key(key) {
            let limit = self.limit;
            self.map
                .retain(|_, &mut (lvl, at)| drained(limit, lvl, at, now) > 0);
            if self.map.len() >= MAX_KEYS {
                if let Some(oldest) = self
                    .map
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(k, _)| k.clone())
                {
                    self.map.remove(&oldest);
                }
            }
        }
        self.map.insert(key.to_string(), (lvl, now));
    }
}

/// The login rate limiter (pure: the time is passed in).
#[derive(Debug)]
pub struct Limiter {
    inner: Mutex<(Buckets, Buckets)>,
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter::new(Limits::default())
    }
}

impl Limiter {
    pub fn new(l: Limits) -> Limiter {
        Limiter {
            inner: Mutex::new((Buckets::new(l.per_address), Buckets::new(l.per_user))),
        }
    }

    /// Refuses (429, with the seconds to wait) while the address's or the user's bucket is full.
    pub fn check(&self, addr: &str, user: &str, now: i64) -> Result<()> {
        let g = self
            .inner
            .lock()
            .map_err(|_| Error::Internal("login limiter".into()))?;
        let (a, u) = (g.0.wait_ms(addr, now), g.1.wait_ms(user, now));
        if a == 0 && u == 0 {
            return Ok(());
        }
        let secs = (a.max(u) + 999) / 1000;
        let message = if a >= u {
            format!("Too many failed logins from {addr}; try again in {secs} s.")
        } else {
            format!("Too many failed logins for {user}; try again in {secs} s.")
        };
        Err(Error::RateLimited {
            message,
            retry_after_secs: u64::try_from(secs.max(1)).unwrap_or(1),
        })
    }

    /// Counts a failed login against the address and the user.
    pub fn fail(&self, addr: &str, user: &str, now: i64) {
        if let Ok(mut g) = self.inner.lock() {
            g.0.fail(addr, now);
            g.1.fail(user, now);
        }
    }
}

/// The hash unknown users' passwords are checked against, so they take as long as known ones.
fn decoy_hash() -> &'static str {
    static H: OnceLock<String> = OnceLock::new();
    H.get_or_init(|| {
        auth::hash_password(&auth::new_token()).unwrap_or_else(|_| String::from("$argon2id$"))
    })
}

/// Makes the decoy hash now (at start), so the first unknown user's login is not the slow one.
pub fn warm_up() {
    let _ = decoy_hash();
}

fn verifiers() -> &'static tokio::sync::Semaphore {
    static S: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    S.get_or_init(|| tokio::sync::Semaphore::new(VERIFIERS))
}

/// The username as a limiter key: trimmed, at most 64 characters.
fn user_key(username: &str) -> String {
    username.trim().chars().take(64).collect()
}

/// Logs in with a password: who it is, and a session secret (12 h) for the `kiln_session` cookie.
/// Wrong usernames and wrong passwords get the same answer after the same work.
pub async fn password_login(
    pool: &Pool,
    limiter: &Limiter,
    peer: Option<IpAddr>,
    username: &str,
    password: &str,
) -> Result<(api::WhoAmI, String)> {
    let addr = peer.map_or_else(|| "an unknown address".to_string(), |p| p.to_string());
    let key = user_key(username);
    limiter.check(&addr, &key, now_ms())?;
    let name = username.to_string();
    let user = pool.run(move |c| db::users::by_username(c, &name)).await?;
    let hash = user
        .as_ref()
        .map_or_else(|| decoy_hash().to_string(), |u| u.password_hash.clone());
    let pw = password.to_string();
    let ok = {
        let _permit = verifiers()
            .acquire()
            .await
            .map_err(|_| Error::Internal("password check semaphore closed".into()))?;
        tokio::task::spawn_blocking(move || auth::verify_password(&pw, &hash))
            .await
            .map_err(|e| Error::Internal(format!("password check failed: {e}")))?
    };
    let Some(u) = user.filter(|_| ok) else {
        limiter.fail(&addr, &key, now_ms());
        let (who, why) = (key.clone(), addr.clone());
        pool.run(move |c| {
            db::users::audit(
                c,
                now_ms(),
                &who,
                "login.failed",
                &who,
                &format!("from {why}"),
            )
        })
        .await?;
        return Err(Error::Unauthorized("Wrong username or password.".into()));
    };
    let row = u.clone();
    let s = pool
        .run(move |c| {
            let now = now_ms();
            let s = users::create_session(c, &row, now)?;
            db::users::audit(
                c,
                now,
                &row.username,
                "login",
                &row.username,
                &format!("from {addr}"),
            )?;
            Ok(s)
        })
        .await?;
    Ok((
        api::WhoAmI {
            username: u.username,
            is_admin: u.is_admin,
            scope: api::TokenScope::of_user(u.is_admin),
        },
        s,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Limiter {
        Limiter::new(Limits {
            per_address: Limit {
                capacity: 3,
                drain_ms: 1_000,
            },
            per_user: Limit {
                capacity: 5,
                drain_ms: 10_000,
            },
        })
    }

    fn retry(r: Result<()>) -> u64 {
        match r {
            Err(Error::RateLimited {
                retry_after_secs, ..
            }) => retry_after_secs,
            other => panic!("not limited: {other:?}"),
        }
    }

    #[test]
    fn an_address_is_held_back_after_its_failures_and_drains() {
        let l = small();
        for _ in 0..3 {
            l.check("10.0.0.1", "a", 0).unwrap();
            l.fail("10.0.0.1", "a", 0);
        }
        assert_eq!(retry(l.check("10.0.0.1", "b", 0)), 1);
        // Another address, for another user, is not held back.
        l.check("10.0.0.2", "b", 0).unwrap();
        // One failure drains per second.
        l.check("10.0.0.1", "b", 1_000).unwrap();
        l.fail("10.0.0.1", "b", 1_000);
        assert!(l.check("10.0.0.1", "b", 1_500).is_err());
    }

    #[test]
    fn a_user_is_held_back_from_every_address() {
        let l = small();
        for i in 0..5 {
            l.fail(&format!("10.0.1.{i}"), "admin", 0);
        }
        let secs = retry(l.check("10.9.9.9", "admin", 0));
        assert_eq!(secs, 10);
        let Err(Error::RateLimited { message, .. }) = l.check("10.9.9.9", "admin", 0) else {
            unreachable!()
        };
        assert_eq!(
            message,
            "Too many failed logins for admin; try again in 10 s."
        );
        l.check("10.9.9.9", "someone-else", 0).unwrap();
        l.check("10.9.9.9", "admin", 10_000).unwrap();
    }

    #[test]
    fn the_tables_stay_bounded() {
        let l = Limiter::default();
        for i in 0..(MAX_KEYS + 10) {
            l.fail(&format!("a{i}"), &format!("u{i}"), i as i64);
        }
        let g = l.inner.lock().unwrap();
        assert!(g.0.map.len() <= MAX_KEYS && g.1.map.len() <= MAX_KEYS);
    }
}
