//! The database: one code path for SQLite (embedded, default) and PostgreSQL, through diesel's
//! [`MultiConnection`](diesel::MultiConnection).
//!
//! **Architecture invariant:** only `region::db` imports diesel query builders. Handlers call the
//! query functions in the submodules; these take `&mut DbConn` and return [`crate::Result`].
//!
//! Concurrency: several region processes may share one PostgreSQL, so no shared state is guarded by
//! an in-process lock. Status changes are compare-and-set on `machines.version`; transient lock
//! conflicts (SQLite `database is locked`, PostgreSQL serialization failures) are retried by
//! [`Pool::run`].

use std::path::Path;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{self, ManageConnection};
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::error::{is_busy, Error, Result};

pub mod boot;
pub mod commissioning;
pub mod deploy;
pub mod dns;
pub mod events;
pub mod machines;
pub mod pods;
pub mod power;
pub mod racks;
pub mod schema;
pub mod settings;
pub mod subnets;
pub mod users;
pub mod volumes;

/// SQLite migrations, embedded in the binary.
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
/// PostgreSQL migrations, embedded in the binary. Same names as [`SQLITE_MIGRATIONS`].
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");

/// A connection to either backend.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

/// Which backend a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// `postgres://` and `postgresql://` are PostgreSQL; anything else is a SQLite path
    /// (an optional `sqlite://` prefix is stripped).
    pub fn from_url(url: &str) -> Backend {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }
}

/// Strips `sqlite://` so the rest is a plain path.
fn sqlite_path(url: &str) -> &str {
    url.strip_prefix("sqlite://").unwrap_or(url)
}

/// Connects to the backend the URL names, with SQLite's pragmas set.
fn connect(url: &str) -> std::result::Result<DbConn, diesel::ConnectionError> {
    match Backend::from_url(url) {
        Backend::Postgres => PgConnection::establish(url).map(DbConn::Postgres),
        Backend::Sqlite => {
            let mut c = SqliteConnection::establish(sqlite_path(url))?;
            // WAL for concurrent readers, foreign keys on, wait (not fail) on a writer's lock.
            c.batch_execute(
                "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
                 PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
            )
            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            Ok(DbConn::Sqlite(c))
        }
    }
}

/// r2d2 manager that picks the backend from the URL itself (the derived `establish` would try each
/// backend in turn, and SQLite accepts any string as a file name).
pub struct Manager {
    url: String,
}

impl ManageConnection for Manager {
    type Connection = DbConn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> std::result::Result<DbConn, Self::Error> {
        connect(&self.url).map_err(diesel::r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut DbConn) -> std::result::Result<(), Self::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, _conn: &mut DbConn) -> bool {
        false
    }
}

/// A pool of connections.
#[derive(Clone)]
pub struct Pool {
    inner: r2d2::Pool<Manager>,
    backend: Backend,
    /// Where the machines this pool's callers write are announced ([`crate::changes`]).
    changes: crate::changes::Bus,
}

impl Pool {
    /// Opens the database, creating the SQLite file's directory, and applies pending migrations.
    pub fn open(url: &str) -> Result<Pool> {
        let pool = Pool::connect(url)?;
        pool.migrate()?;
        Ok(pool)
    }

    /// Opens the database without migrating it.
    pub fn connect(url: &str) -> Result<Pool> {
        let backend = Backend::from_url(url);
        if backend == Backend::Sqlite {
            if let Some(dir) = Path::new(sqlite_path(url)).parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir)?;
                }
            }
            // One connection first turns a new file to WAL (which lasts): the pool's connections,
            // opened at once, would otherwise race for that switch, and the losers fail with
            // "database is locked" (r2d2 logs each as an ERROR, and retries).
            connect(url).map_err(|e| Error::Pool(format!("cannot open database: {e}")))?;
        }
        let max = match backend {
            Backend::Sqlite => 8,
            Backend::Postgres => 16,
        };
        let inner = r2d2::Pool::builder()
            .max_size(max)
            .connection_timeout(Duration::from_secs(15))
            .build(Manager {
                url: url.to_string(),
            })
            .map_err(|e| Error::Pool(format!("cannot open database: {e}")))?;
        Ok(Pool {
            inner,
            backend,
            changes: crate::changes::Bus::new(),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The bus announcing the machines written through this pool.
    pub fn changes(&self) -> &crate::changes::Bus {
        &self.changes
    }

    /// Applies pending migrations; returns the names applied.
    pub fn migrate(&self) -> Result<Vec<String>> {
        let mut conn = self.inner.get()?;
        let applied = match &mut *conn {
            DbConn::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS),
            DbConn::Postgres(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS),
        }
        .map_err(|e| Error::Migration(e.to_string()))?;
        Ok(applied.into_iter().map(|v| v.to_string()).collect())
    }

    /// A connection from the pool (blocking; call from `spawn_blocking`).
    pub fn get(&self) -> Result<r2d2::PooledConnection<Manager>> {
        Ok(self.inner.get()?)
    }

    /// Runs `f` on a pooled connection in a blocking thread, retrying transient lock conflicts.
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&mut DbConn) -> Result<T> + Send + 'static,
    {
        let pool = self.clone();
        tokio::task::spawn_blocking(move || pool.run_blocking(f))
            .await
            .map_err(|e| Error::Internal(format!("database task failed: {e}")))?
    }

    /// [`Pool::run`] for callers already on a blocking thread.
    pub fn run_blocking<T, F>(&self, f: F) -> Result<T>
    where
        F: Fn(&mut DbConn) -> Result<T>,
    {
        let mut conn = self.get()?;
        let mut attempt = 0u32;
        let _ = crate::changes::take_pending();
        let out = loop {
            match f(&mut conn) {
                Err(Error::Db(e)) if is_busy(&e) && attempt < 20 => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(5 * u64::from(attempt)));
                }
                other => break other,
            }
        };
        // The closure's transactions are over: announce what it wrote.
        let changed = crate::changes::take_pending();
        if !changed.is_empty() {
            self.changes.publish(&changed);
            if let DbConn::Postgres(c) = &mut *conn {
                for p in self.changes.payloads(&changed) {
                    let q = diesel::sql_query("SELECT pg_notify($1, $2)")
                        .bind::<diesel::sql_types::Text, _>(crate::changes::CHANNEL)
                        .bind::<diesel::sql_types::Text, _>(p);
                    if let Err(e) = diesel::RunQueryDsl::execute(q, c) {
                        tracing::debug!("pg_notify of changes failed: {e}");
                    }
                }
            }
        }
        out
    }
}

/// Milliseconds since the Unix epoch, the unit of every time column.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// RFC 3339 text of a time column.
pub fn fmt_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A random id of `len` characters from lower-case letters and digits (MAAS-style `system_id`s).
pub fn random_id(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Names of the embedded migrations of one tree, for the tree-equality test.
pub fn migration_names(m: &EmbeddedMigrations) -> Vec<String> {
    use diesel::migration::MigrationSource;
    let list: Vec<Box<dyn diesel::migration::Migration<diesel::sqlite::Sqlite>>> =
        MigrationSource::<diesel::sqlite::Sqlite>::migrations(m).unwrap_or_default();
    list.iter().map(|m| m.name().to_string()).collect()
}
