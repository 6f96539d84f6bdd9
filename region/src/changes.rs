//! The change bus: which machines changed, pushed to the web UI's live pages.
//!
//! Fed where the region writes: the `db` functions that write a machine (its row, interfaces,
//! tags, power state, events, script results, deployment) call [`machine_changed`], which notes the
//! id on the current thread. When the [`crate::db::Pool::run`] closure that did the write returns
//! (its transaction committed or rolled back), the pool publishes what was noted: on this region's
//! [`Bus`] (a tokio broadcast), and on PostgreSQL also with `pg_notify('kiln_changes', …)`, which
//! every other region sharing the database hears through [`listen_postgres`] and republishes on its
//! own bus. A subscriber that falls behind, or a listener that reconnects, gets [`Change::All`]:
//! refetch everything.
//!
//! Every change gets a sequence number, and the bus keeps the last [`RECENT`] of them: a page
//! records the bus's [`Bus::mark`] before it reads what it shows, and its stream, subscribing with
//! that mark ([`Bus::subscribe_since`]), learns whether something it shows changed in between (the
//! moments between rendering a page and its stream connecting are not lost).

use std::cell::RefCell;
use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;

/// The PostgreSQL channel regions notify each other on.
pub const CHANNEL: &str = "kiln_changes";

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// One machine (its status, power, owner, events, results, ...).
    Machine(String),
    /// Anything may have changed (a missed stretch, or a write touching many machines).
    All,
}

thread_local! {
    static PENDING: RefCell<Pending> = const { RefCell::new(Pending { ids: BTreeSet::new(), all: false }) };
}

struct Pending {
    ids: BTreeSet<String>,
    all: bool,
}

/// Notes that machine `id` is being written by the current database call.
pub fn machine_changed(id: &str) {
    PENDING.with(|p| {
        let mut p = p.borrow_mut();
        if !p.ids.contains(id) {
            p.ids.insert(id.to_string());
        }
    });
}

/// Notes that the current database call writes many machines at once.
pub fn everything_changed() {
    PENDING.with(|p| p.borrow_mut().all = true);
}

/// Takes (and clears) what the current thread noted.
pub(crate) fn take_pending() -> Vec<Change> {
    PENDING.with(|p| {
        let mut p = p.borrow_mut();
        let mut out: Vec<Change> = std::mem::take(&mut p.ids)
            .into_iter()
            .map(Change::Machine)
            .collect();
        if std::mem::take(&mut p.all) {
            out.push(Change::All);
        }
        out
    })
}

/// How many past changes the bus remembers for [`Bus::subscribe_since`].
pub const RECENT: usize = 1024;

/// One region's bus.
#[derive(Clone)]
pub struct Bus {
    tx: broadcast::Sender<Change>,
    /// This process's mark on its own notifications, so it does not publish them twice.
    origin: Arc<str>,
    /// The last sequence number given and the changes that got the last [`RECENT`] of them;
    /// publishing holds the lock while it sends, so a subscriber sees each change either here or
    /// on its receiver.
    recent: Arc<Mutex<Recent>>,
}

#[derive(Default)]
struct Recent {
    seq: u64,
    changes: VecDeque<(u64, Change)>,
}

impl Default for Bus {
    fn default() -> Self {
        Bus::new()
    }
}

impl Bus {
    pub fn new() -> Bus {
        let (tx, _) = broadcast::channel(4096);
        Bus {
            tx,
            origin: crate::db::random_id(12).into(),
            recent: Arc::default(),
        }
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        // The lock guards plain data that every writer leaves whole: a poisoned lock is usable.
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }

    /// Where the bus is now, as `origin-seq`: taken before a page reads what it shows.
    pub fn mark(&self) -> String {
        format!("{}-{}", self.origin, self.recent().seq)
    }

    /// Subscribes, and says whether a change that `wants` accepts was published after `mark`
    /// (also when the mark is another process's, or older than what the bus remembers).
    pub fn subscribe_since(
        &self,
        mark: &str,
        wants: impl Fn(&Change) -> bool,
    ) -> (broadcast::Receiver<Change>, bool) {
        let recent = self.recent();
        let rx = self.tx.subscribe();
        let since = mark
            .rsplit_once('-')
            .filter(|(origin, _)| *origin == &*self.origin)
            .and_then(|(_, n)| n.parse::<u64>().ok())
            .filter(|n| *n <= recent.seq);
        let missed = match since {
            None => true,
            Some(n) if n == recent.seq => false,
            Some(n) => {
                let oldest = recent.changes.front().map_or(recent.seq + 1, |(s, _)| *s);
                n + 1 < oldest || recent.changes.iter().any(|(s, c)| *s > n && wants(c))
            }
        };
        (rx, missed)
    }

    pub fn publish(&self, changes: &[Change]) {
        if changes.is_empty() {
            return;
        }
        let mut recent = self.recent();
        for c in changes {
            recent.seq += 1;
            let seq = recent.seq;
            if recent.changes.len() == RECENT {
                recent.changes.pop_front();
            }
            recent.changes.push_back((seq, c.clone()));
            // No subscriber is not an error: nobody is looking.
            let _ = self.tx.send(c.clone());
        }
    }

    /// The `pg_notify` payloads announcing `changes` to other regions: `origin|id,id,…` (or
    /// `origin|*` for everything), each under PostgreSQL's 8000-byte payload limit.
    pub fn payloads(&self, changes: &[Change]) -> Vec<String> {
        if changes.contains(&Change::All) {
            return vec![format!("{}|*", self.origin)];
        }
        let mut out = Vec::new();
        let mut cur = String::new();
        for c in changes {
            if let Change::Machine(id) = c {
                if !cur.is_empty() && cur.len() + id.len() + 1 > 7000 {
                    out.push(format!("{}|{cur}", self.origin));
                    cur.clear();
                }
                if !cur.is_empty() {
                    cur.push(',');
                }
                cur.push_str(id);
            }
        }
        if !cur.is_empty() {
            out.push(format!("{}|{cur}", self.origin));
        }
        out
    }

    /// What another region announced (`None` when the payload is this region's own, or not
    /// Kiln's); the listener publishes it.
    pub fn parse_payload(&self, payload: &str) -> Option<Vec<Change>> {
        let (origin, rest) = payload.split_once('|')?;
        if origin == &*self.origin {
            return None;
        }
        if rest == "*" {
            return Some(vec![Change::All]);
        }
        Some(
            rest.split(',')
                .filter(|s| !s.is_empty())
                .map(|s| Change::Machine(s.to_string()))
                .collect(),
        )
    }
}

/// Stops a listener thread when dropped.
pub struct ListenerGuard(Arc<AtomicBool>);

impl Drop for ListenerGuard {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Listens on PostgreSQL for other regions' changes (a thread of its own, one connection,
/// polled every 100 ms; reconnects after a failure and then publishes [`Change::All`]).
pub fn listen_postgres(url: String, bus: Bus) -> ListenerGuard {
    use diesel::connection::SimpleConnection;
    use diesel::{Connection, PgConnection};
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let spawned = std::thread::Builder::new()
        .name("kiln-listen".into())
        .spawn(move || {
            let mut first = true;
            while !flag.load(Ordering::Relaxed) {
                let mut conn = match PgConnection::establish(&url) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!("change listener cannot connect to PostgreSQL: {e}");
                        std::thread::sleep(Duration::from_secs(1));
                        continue;
                    }
                };
                if let Err(e) = conn.batch_execute(&format!("LISTEN {CHANNEL}")) {
                    tracing::warn!("change listener cannot LISTEN: {e}");
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
                if !first {
                    // What was written while we were away is unknown: refetch everything.
                    bus.publish(&[Change::All]);
                }
                first = false;
                'poll: while !flag.load(Ordering::Relaxed) {
                    for n in conn.notifications_iter() {
                        match n {
                            Ok(n) => {
                                if let Some(ch) = bus.parse_payload(&n.payload) {
                                    bus.publish(&ch);
                                }
                            }
                            Err(e) => {
                                tracing::warn!("change listener lost PostgreSQL: {e}");
                                break 'poll;
                            }
                        }
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the change listener: {e}");
    }
    ListenerGuard(stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_changes_are_taken_once_and_deduplicated() {
        let _ = take_pending();
        machine_changed("a");
        machine_changed("b");
        machine_changed("a");
        assert_eq!(
            take_pending(),
            vec![Change::Machine("a".into()), Change::Machine("b".into())]
        );
        assert!(take_pending().is_empty());
        everything_changed();
        assert_eq!(take_pending(), vec![Change::All]);
    }

    #[test]
    fn a_subscriber_learns_what_changed_after_its_mark() {
        let bus = Bus::new();
        let only_a = |c: &Change| matches!(c, Change::Machine(m) if m == "a") || *c == Change::All;
        let m0 = bus.mark();
        assert!(!bus.subscribe_since(&m0, only_a).1, "nothing published");
        bus.publish(&[Change::Machine("b".into())]);
        assert!(!bus.subscribe_since(&m0, only_a).1, "not what it shows");
        assert!(
            bus.subscribe_since(&m0, |_| true).1,
            "a list shows every machine"
        );
        bus.publish(&[Change::Machine("a".into())]);
        assert!(bus.subscribe_since(&m0, only_a).1);
        let m1 = bus.mark();
        assert!(!bus.subscribe_since(&m1, only_a).1);
        // A mark from another process (a region restarted), or garbage: refetch.
        assert!(bus.subscribe_since(&Bus::new().mark(), only_a).1);
        assert!(bus.subscribe_since("nonsense", only_a).1);
        // Older than what the bus remembers: refetch.
        for i in 0..RECENT {
            bus.publish(&[Change::Machine(format!("x{i}"))]);
        }
        assert!(
            !bus.subscribe_since(&m1, only_a).1,
            "m1 is just inside the window"
        );
        bus.publish(&[Change::Machine("y".into())]);
        assert!(
            bus.subscribe_since(&m1, only_a).1,
            "m1 fell out of the window"
        );
    }

    #[test]
    fn payloads_round_trip_between_regions_and_skip_their_own() {
        let (a, b) = (Bus::new(), Bus::new());
        let ids: Vec<Change> = (0..2000)
            .map(|i| Change::Machine(format!("m{i:05}")))
            .collect();
        let p = a.payloads(&ids);
        assert!(p.len() > 1, "split under the payload limit");
        assert!(p.iter().all(|s| s.len() < 8000));
        let back: Vec<Change> = p.iter().flat_map(|s| b.parse_payload(s).unwrap()).collect();
        assert_eq!(back, ids);
        assert!(
            a.parse_payload(&p[0]).is_none(),
            "own notifications ignored"
        );
        assert_eq!(
            b.parse_payload(&a.payloads(&[Change::All])[0]),
            Some(vec![Change::All])
        );
        assert!(b.parse_payload("garbage").is_none());
    }
}
