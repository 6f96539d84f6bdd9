//! Removing what has expired or aged out, on a schedule (`lifecycle.prune_secs`, hourly): UI
//! sessions, API tokens and rack enrolment tokens past their expiry, boot tokens past theirs, machine events older than
//! `lifecycle.event_retention_days` and audit entries older than `lifecycle.audit_retention_days`
//! (0: kept forever; both are run-time settings).

use crate::config::Lifecycle;
use crate::db::{self, DbConn};
use crate::error::Result;

const DAY_MS: i64 = 86_400_000;

/// How many rows each kind lost.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub tokens: usize,
    pub boot_tokens: usize,
    pub events: usize,
    pub audit: usize,
}

impl Pruned {
    pub fn total(&self) -> usize {
        self.tokens + self.boot_tokens + self.events + self.audit
    }
}

/// The oldest time kept for a retention of `days` at `now` (None: keep everything).
pub fn cutoff(days: u64, now: i64) -> Option<i64> {
    let days = i64::try_from(days).ok().filter(|d| *d > 0)?;
    Some(now - days.saturating_mul(DAY_MS))
}

/// Removes what `l` says is no longer kept, as of `now`.
pub fn prune(conn: &mut DbConn, l: &Lifecycle, now: i64) -> Result<Pruned> {
    let mut p = Pruned {
        tokens: db::users::prune_expired_tokens(conn, now)?
            + db::racks::prune_enrolments(conn, now)?,
        boot_tokens: db::commissioning::prune_boot_tokens(conn, now)?,
        ..Pruned::default()
    };
    if let Some(before) = cutoff(l.event_retention_days, now) {
        p.events = db::events::prune(conn, before)?;
    }
    if let Some(before) = cutoff(l.audit_retention_days, now) {
        p.audit = db::users::prune_audit(conn, before)?;
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::cutoff;

    #[test]
    fn zero_days_keeps_everything() {
        assert_eq!(cutoff(0, 1_000), None);
        assert_eq!(cutoff(1, 100 * 86_400_000), Some(99 * 86_400_000));
        assert_eq!(cutoff(u64::MAX, 0), None, "more days than time has");
    }
}
