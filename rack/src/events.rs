//! Events waiting for the region: in memory, bounded, and mirrored in `events.jsonl` by a thread
//! of their own so a restart loses none and no packet path waits for a disk.
//!
//! The queue holds at most `max` events; beyond that the oldest are dropped and counted
//! (`rack_events_dropped` in `/metrics`). The file is appended to as soon as the writer thread runs
//! after a push (a burst in one write), and
//! rewritten from the queue when it has grown to twice the queue's bound or events were delivered,
//! so it stays bounded too. A write that fails (a full disk) is logged once a minute and counted
//! (`rack_events_persist_errors`); the events stay queued in memory and the next write retries.

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use region_api_types as api;

use crate::error::Result;
use crate::metrics::Metrics;

/// Most events kept while the region is away.
pub const QUEUE_MAX: usize = 100_000;
/// How long the writer sleeps with nothing to do, and waits after a failed write.
const PERSIST_EVERY: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct EventQueue {
    inner: Arc<(Mutex<Inner>, Condvar)>,
    pub(crate) notify: Arc<tokio::sync::Notify>,
    metrics: Arc<Metrics>,
}

struct Inner {
    items: VecDeque<api::RackEvent>,
    max: usize,
    /// Events not yet in the file.
    pending: Vec<api::RackEvent>,
    /// The file no longer matches the queue's head (events delivered or dropped): rewrite it.
    rewrite: bool,
    /// Bumped by every write the thread finishes (for [`EventQueue::flush`]).
    written: u64,
    wanted: u64,
    dropped: u64,
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|p| {
        m.clear_poison();
        p.into_inner()
    })
}

impl EventQueue {
    pub fn open(dir: &Path, metrics: Arc<Metrics>) -> Result<EventQueue> {
        EventQueue::open_bounded(dir, metrics, QUEUE_MAX)
    }

    /// A queue of at most `max` events.
    pub fn open_bounded(dir: &Path, metrics: Arc<Metrics>, max: usize) -> Result<EventQueue> {
        let path = dir.join("events.jsonl");
        let mut items = VecDeque::new();
        if let Ok(bytes) = std::fs::read(&path) {
            for line in bytes.split(|b| *b == b'\n') {
                if let Ok(e) = serde_json::from_slice(line) {
                    items.push_back(e);
                }
            }
        }
        let mut dropped = 0;
        while items.len() > max {
            items.pop_front();
            dropped += 1;
        }
        // Fails now, not later, if the directory cannot take the file.
        OpenOptions::new().create(true).append(true).open(&path)?;
        let inner = Arc::new((
            Mutex::new(Inner {
                items,
                max,
                pending: Vec::new(),
                rewrite: true,
                written: 0,
                wanted: 0,
                dropped,
            }),
            Condvar::new(),
        ));
        metrics.add("rack_events_dropped", dropped);
        let (i, m) = (inner.clone(), metrics.clone());
        std::thread::Builder::new()
            .name("event-queue".into())
            .spawn(move || persist(&i, &path, &m))?;
        Ok(EventQueue {
            inner,
            notify: Arc::new(tokio::sync::Notify::new()),
            metrics,
        })
    }

    /// Queues `e` in memory and wakes the writer (the file follows at once, off this thread).
    pub fn push(&self, e: api::RackEvent) {
        {
            let mut q = lock(&self.inner.0);
            q.pending.push(e.clone());
            q.items.push_back(e);
            while q.items.len() > q.max {
                q.items.pop_front();
                q.dropped += 1;
                q.rewrite = true;
                self.metrics.inc("rack_events_dropped");
            }
        }
        // The writer takes whatever has queued by the time it runs: one write for a burst.
        self.inner.1.notify_all();
        self.notify.notify_one();
    }

    pub fn len(&self) -> usize {
        lock(&self.inner.0).items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        lock(&self.inner.0).dropped
    }

    pub(crate) fn peek(&self, n: usize) -> Vec<api::RackEvent> {
        lock(&self.inner.0).items.iter().take(n).cloned().collect()
    }

    /// Drops the first `n` (delivered); the file is rewritten without them shortly.
    pub(crate) fn ack(&self, n: usize) {
        let mut q = lock(&self.inner.0);
        let n = n.min(q.items.len());
        q.items.drain(..n);
        q.rewrite = true;
        self.inner.1.notify_all();
    }

    /// Blocks until everything queued so far is in the file (or a write of it failed).
    pub fn flush(&self) {
        let (m, cv) = &*self.inner;
        let mut q = lock(m);
        q.wanted += 1;
        let target = q.wanted;
        cv.notify_all();
        while q.written < target {
            q = cv.wait(q).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// The writer thread: appends what was queued, or rewrites the file from the queue.
fn persist(inner: &Arc<(Mutex<Inner>, Condvar)>, path: &Path, metrics: &Metrics) {
    let (m, cv) = &**inner;
    let mut lines_in_file = 0usize;
    let mut last_error_log: Option<Instant> = None;
    loop {
        let (work, wanted) = {
            let mut q = lock(m);
            if q.pending.is_empty() && !q.rewrite && q.wanted == q.written {
                q = cv
                    .wait_timeout(q, PERSIST_EVERY)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
            let pending = std::mem::take(&mut q.pending);
            let rewrite = q.rewrite || lines_in_file + pending.len() > 2 * q.max;
            q.rewrite = false;
            let work = if rewrite {
                Err(q.items.iter().cloned().collect::<Vec<_>>())
            } else {
                Ok(pending)
            };
            (work, q.wanted)
        };
        let r = match &work {
            Ok(pending) if pending.is_empty() => Ok(()),
            Ok(pending) => append(path, pending).map(|_| lines_in_file += pending.len()),
            Err(all) => rewrite(path, all).map(|_| lines_in_file = all.len()),
        };
        if let Err(e) = r {
            metrics.inc("rack_events_persist_errors");
            if last_error_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                last_error_log = Some(Instant::now());
                tracing::error!(
                    "cannot write the event queue to {}: {e}; events stay queued in memory",
                    path.display()
                );
            }
            // Try again with the whole queue once the disk takes it.
            lock(m).rewrite = true;
            std::thread::sleep(PERSIST_EVERY);
        } else {
            last_error_log = None;
        }
        let mut q = lock(m);
        q.written = q.written.max(wanted);
        cv.notify_all();
        // Every queue handle is gone and what they queued is written: done.
        if Arc::strong_count(inner) == 1 && q.pending.is_empty() {
            return;
        }
    }
}

fn lines(events: &[api::RackEvent]) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    for e in events {
        serde_json::to_writer(&mut buf, e)?;
        buf.push(b'\n');
    }
    Ok(buf)
}

fn append(path: &Path, events: &[api::RackEvent]) -> std::io::Result<()> {
    let buf = lines(events)?;
    let mut f = OpenOptions::new().create(true).append(true).open(path)?;
    let len = f.metadata()?.len();
    if let Err(e) = f.write_all(&buf) {
        // Leave no torn line behind for the next append to glue onto.
        let _ = f.set_len(len);
        return Err(e);
    }
    Ok(())
}

fn rewrite(path: &Path, events: &[api::RackEvent]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(&lines(events)?)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(i: usize) -> api::RackEvent {
        api::RackEvent {
            mac: "52:54:00:00:00:01".into(),
            event_type: "dhcp_lease".into(),
            description: format!("event {i}"),
            at: "2026-12-08T00:00:00Z".into(),
            ip: None,
        }
    }

    #[test]
    fn bounded_in_memory_and_on_disk_with_the_region_away() {
        let dir = tempfile::tempdir().unwrap();
        let m = Arc::new(Metrics::default());
        let q = EventQueue::open_bounded(dir.path(), m.clone(), 10).unwrap();
        for i in 0..25 {
            q.push(ev(i));
            if i % 3 == 0 {
                q.flush();
            }
        }
        q.flush();
        assert_eq!(q.len(), 10);
        assert_eq!(q.dropped(), 15);
        assert_eq!(m.get("rack_events_dropped"), 15);
        let file = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
        assert!(
            file.lines().count() <= 20,
            "the file grew past twice the bound: {} lines",
            file.lines().count()
        );
        // A restart keeps the newest ten, oldest first.
        drop(q);
        let q2 = EventQueue::open_bounded(dir.path(), m, 10).unwrap();
        let kept = q2.peek(100);
        assert_eq!(kept.len(), 10);
        assert_eq!(kept[0].description, "event 15");
        // Delivered events leave the file.
        q2.ack(4);
        q2.flush();
        let file = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
        assert_eq!(file.lines().count(), 6);
    }
}
