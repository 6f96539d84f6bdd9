//! The lease journal: `leases.jsonl`, one [`LeaseChange`] a line, appended and **fsynced before
//! the reply that promises it leaves**, on a thread of its own (no file IO on the async executor).
//!
//! Group commit: the thread takes every change queued while the previous `fdatasync` ran and makes
//! them durable with one write and one sync, so the cost of a sync is shared by all the packets
//! that arrived meanwhile. Each caller awaits its own acknowledgement.
//!
//! A write that fails (a full disk) is cut back to the last whole record, so a torn line never
//! glues itself to the next one; if even that fails, the next write starts on a new line. The
//! thread keeps its own copy of the acknowledged table and rewrites the journal compacted from it
//! while running (atomically: temporary file, sync, rename, sync of the directory) once the file
//! holds far more lines than live leases.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rack_proto::leases::{LeaseChange, Leases};
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// Compaction starts once the journal holds this many lines and more than four per live lease.
const COMPACT_MIN_LINES: u64 = 20_000;
/// After a failed compaction (a full disk), wait this long before trying again.
const COMPACT_RETRY: Duration = Duration::from_secs(60);

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The durable outcome of an append: `Err` holds why it is not on disk.
pub type Ack = oneshot::Receiver<std::result::Result<(), String>>;

type Done = oneshot::Sender<std::result::Result<(), String>>;

enum Msg {
    Append(Vec<LeaseChange>, Done),
    /// Rewrite the file compacted now (tests; the thread also decides on its own).
    Compact(Done),
}

/// The handle the DHCP shell appends through. Cloning is cheap; the thread ends when every handle
/// is dropped.
#[derive(Clone)]
pub struct Journal {
    tx: mpsc::Sender<Msg>,
}

/// Reads `path` back: every whole, readable record in order; the number of unreadable lines.
pub fn replay(path: &Path) -> (Leases, usize) {
    let mut leases = Leases::new();
    let mut bad = 0;
    // Bytes, not a string: one invalid byte (a torn write) must cost one line, not the journal.
    if let Ok(bytes) = std::fs::read(path) {
        for line in bytes.split(|b| *b == b'\n') {
            if line.is_empty() {
                continue;
            }
            match serde_json::from_slice::<LeaseChange>(line) {
                Ok(ch) => leases.apply(&ch),
                Err(_) => bad += 1,
            }
        }
    }
    (leases, bad)
}

/// Writes `leases` compacted to `path` atomically; returns the number of lines written.
fn write_compacted(path: &Path, leases: &Leases) -> Result<u64> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    let mut buf = Vec::new();
    let snap = leases.snapshot(now_secs());
    for ch in &snap {
        serde_json::to_writer(&mut buf, ch)?;
        buf.push(b'\n');
    }
    tmp.write_all(&buf)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    // The rename itself must survive a power cut.
    File::open(dir)?.sync_all()?;
    Ok(snap.len() as u64)
}

impl Journal {
    /// Replays and compacts `<dir>/leases.jsonl`, then starts the journal thread. Returns the
    /// handle and the table as the journal left it.
    pub fn open(dir: &Path, metrics: std::sync::Arc<Metrics>) -> Result<(Journal, Leases)> {
        let path = dir.join("leases.jsonl");
        let (leases, bad) = replay(&path);
        if bad > 0 {
            // A line cut short by a crash or a full disk: the change it held was never acknowledged.
            tracing::warn!("lease journal: skipped {bad} unreadable line(s)");
        }
        // A compacted file ends in a newline; the old one, kept when compaction fails, may end in a
        // torn record, and then the next write starts on a new line.
        let (lines, torn) = match write_compacted(&path, &leases) {
            Ok(n) => (n, false),
            // A full disk must not keep DHCP down: serve, and append to the journal as it is.
            Err(e) => {
                tracing::error!(
                    "lease journal: cannot compact {} at start ({e}); appending to it as it is",
                    path.display()
                );
                let bytes = std::fs::read(&path).unwrap_or_default();
                let torn = bytes.last().is_some_and(|b| *b != b'\n');
                (bytes.split(|c| *c == b'\n').count() as u64, torn)
            }
        };
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let good_len = file.metadata()?.len();
        tracing::info!(leases = leases.len(), "lease journal loaded");
        let (tx, rx) = mpsc::channel();
        let mut w = Writer {
            path,
            file,
            good_len,
            torn,
            lines,
            mirror: leases.clone(),
            metrics,
            compact_after: None,
            failing_since: None,
            last_error_log: None,
        };
        std::thread::Builder::new()
            .name("lease-journal".into())
            .spawn(move || w.run(rx))
            .map_err(|e| Error::Internal(format!("cannot start the lease journal: {e}")))?;
        Ok((Journal { tx }, leases))
    }

    /// Queues `changes`; the receiver resolves once they are on disk (or could not be).
    pub fn append(&self, changes: Vec<LeaseChange>) -> Ack {
        let (tx, rx) = oneshot::channel();
        if let Err(mpsc::SendError(Msg::Append(_, tx))) = self.tx.send(Msg::Append(changes, tx)) {
            let _ = tx.send(Err("the lease journal has stopped".into()));
        }
        rx
    }

    /// Compacts the journal now.
    pub fn compact(&self) -> Ack {
        let (tx, rx) = oneshot::channel();
        if let Err(mpsc::SendError(Msg::Compact(tx))) = self.tx.send(Msg::Compact(tx)) {
            let _ = tx.send(Err("the lease journal has stopped".into()));
        }
        rx
    }
}

struct Writer {
    path: PathBuf,
    file: File,
    /// Length of the file up to its last whole record.
    good_len: u64,
    /// The file may end in a partial line that could not be cut off.
    torn: bool,
    lines: u64,
    /// The table as acknowledged on disk (compaction writes this).
    mirror: Leases,
    metrics: std::sync::Arc<Metrics>,
    /// Do not try to compact before this (after a failure).
    compact_after: Option<Instant>,
    /// When writes started failing.
    failing_since: Option<Instant>,
    /// Failures are logged once a minute, not once a packet.
    last_error_log: Option<Instant>,
}

impl Writer {
    fn run(&mut self, rx: mpsc::Receiver<Msg>) {
        let mut buf = Vec::new();
        while let Ok(first) = rx.recv() {
            let mut appends = Vec::new();
            let mut compacts = Vec::new();
            let mut next = Some(first);
            while let Some(m) = next {
                match m {
                    Msg::Append(ch, tx) => appends.push((ch, tx)),
                    Msg::Compact(tx) => compacts.push(tx),
                }
                next = rx.try_recv().ok();
            }
            if !appends.is_empty() {
                let result = self.commit(&mut buf, &appends);
                for (_, tx) in appends {
                    let _ = tx.send(result.clone());
                }
            }
            let due = self.lines >= COMPACT_MIN_LINES
                && self.lines > 4 * self.mirror.len() as u64
                && self.compact_after.is_none_or(|t| Instant::now() >= t);
            if due || !compacts.is_empty() {
                let r = self.compact();
                for tx in compacts {
                    let _ = tx.send(r.clone());
                }
            }
        }
    }

    /// One write and one sync for every change in `batch`.
    fn commit(
        &mut self,
        buf: &mut Vec<u8>,
        batch: &[(Vec<LeaseChange>, Done)],
    ) -> std::result::Result<(), String> {
        buf.clear();
        if self.torn {
            buf.push(b'\n');
        }
        let mut n = 0u64;
        for (changes, _) in batch {
            for ch in changes {
                serde_json::to_writer(&mut *buf, ch).map_err(|e| e.to_string())?;
                buf.push(b'\n');
                n += 1;
            }
        }
        if n == 0 {
            return Ok(());
        }
        let r = self.file.write_all(buf).and_then(|_| self.file.sync_data());
        self.metrics.inc("dhcp_journal_syncs");
        match r {
            Ok(()) => {
                self.good_len += buf.len() as u64;
                self.torn = false;
                self.lines += n;
                for (changes, _) in batch {
                    for ch in changes {
                        self.mirror.apply(ch);
                    }
                }
                self.last_error_log = None;
                if let Some(since) = self.failing_since.take() {
                    tracing::warn!("lease journal writable again after {:?}", since.elapsed());
                }
                Ok(())
            }
            Err(e) => {
                self.metrics.inc("dhcp_journal_error");
                // Cut the partial record off so the next one starts on a line of its own.
                // Cut back, the file is as it was before this write (torn or not, as `torn`
                // says); otherwise it may end in part of this write.
                if self.file.set_len(self.good_len).is_err() {
                    self.torn = true;
                }
                let now = Instant::now();
                self.failing_since.get_or_insert(now);
                if self
                    .last_error_log
                    .is_none_or(|t| now - t >= Duration::from_secs(60))
                {
                    self.last_error_log = Some(now);
                    tracing::error!(
                        path = %self.path.display(),
                        "lease journal write failed: {e}; replies that needed it are withheld until it can be written"
                    );
                }
                Err(e.to_string())
            }
        }
    }

    fn compact(&mut self) -> std::result::Result<(), String> {
        let started = Instant::now();
        let r = write_compacted(&self.path, &self.mirror).and_then(|lines| {
            let file = OpenOptions::new().append(true).open(&self.path)?;
            self.good_len = file.metadata()?.len();
            self.file = file;
            self.torn = false;
            Ok(lines)
        });
        match r {
            Ok(lines) => {
                tracing::info!(
                    before = self.lines,
                    after = lines,
                    "lease journal compacted in {:?}",
                    started.elapsed()
                );
                self.lines = lines;
                self.compact_after = None;
                self.metrics.inc("dhcp_journal_compactions");
                Ok(())
            }
            Err(e) => {
                tracing::warn!("lease journal compaction failed: {e}; appending to the old file");
                self.compact_after = Some(Instant::now() + COMPACT_RETRY);
                Err(e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rack_proto::leases::{Lease, LeaseState};
    use std::sync::Arc;

    fn set(i: u8) -> LeaseChange {
        LeaseChange::Set(Lease {
            ip: std::net::Ipv4Addr::new(10, 0, 0, i),
            mac: [2, 0, 0, 0, 0, i],
            state: LeaseState::Bound,
            expires: now_secs() + 3600,
        })
    }

    #[tokio::test]
    async fn appends_are_durable_and_compaction_keeps_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let m = Arc::new(Metrics::default());
        let (j, _) = Journal::open(dir.path(), m.clone()).unwrap();
        // The same lease rewritten many times: compaction folds it to one line.
        for _ in 0..50 {
            j.append(vec![set(1), set(2)]).await.unwrap().unwrap();
        }
        let path = dir.path().join("leases.jsonl");
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 100);
        j.compact().await.unwrap().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
        j.append(vec![set(3)]).await.unwrap().unwrap();
        let (back, bad) = replay(&path);
        assert_eq!((back.len(), bad), (3, 0));
    }

    #[test]
    fn a_torn_line_costs_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases.jsonl");
        let good = serde_json::to_string(&set(1)).unwrap();
        let next = serde_json::to_string(&set(2)).unwrap();
        // A record cut mid-way with an invalid byte, then a whole one on the next line.
        let mut bytes = good.as_bytes().to_vec();
        bytes.push(b'\n');
        bytes.extend_from_slice(&next.as_bytes()[..10]);
        bytes.push(0xff);
        bytes.push(b'\n');
        bytes.extend_from_slice(next.as_bytes());
        bytes.push(b'\n');
        std::fs::write(&path, bytes).unwrap();
        let (back, bad) = replay(&path);
        assert_eq!((back.len(), bad), (2, 1));
    }
}
