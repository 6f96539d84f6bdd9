//! Counters of the rack's services (dropped packets by reason among them).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<String, u64>>,
    /// Counters bumped on hot paths without a lock (the DNS server's per-query ones).
    atomic: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
}

impl Metrics {
    pub fn inc(&self, name: &str) {
        if let Ok(mut c) = self.counters.lock() {
            // Counted in place: no allocation per packet once a counter exists.
            match c.get_mut(name) {
                Some(v) => *v += 1,
                None => {
                    c.insert(name.to_string(), 1);
                }
            }
        }
    }

    /// Adds `n` (bytes, say) to a counter.
    pub fn add(&self, name: &str, n: u64) {
        if let Ok(mut c) = self.counters.lock() {
            match c.get_mut(name) {
                Some(v) => *v += n,
                None => {
                    c.insert(name.to_string(), n);
                }
            }
        }
    }

    /// A lock-free counter, rendered with the others.
    pub fn counter(&self, name: &str) -> Arc<AtomicU64> {
        match self.atomic.lock() {
            Ok(mut a) => a.entry(name.to_string()).or_default().clone(),
            Err(_) => Arc::default(),
        }
    }

    pub fn get(&self, name: &str) -> u64 {
        if let Some(a) = self.atomic.lock().ok().and_then(|a| a.get(name).cloned()) {
            return a.load(Ordering::Relaxed);
        }
        self.counters
            .lock()
            .map(|c| c.get(name).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Prometheus text.
    pub fn render(&self) -> String {
        let mut out = String::from("# TYPE kiln_rack_events_total counter\n");
        let mut all: BTreeMap<String, u64> =
            self.counters.lock().map(|c| c.clone()).unwrap_or_default();
        if let Ok(a) = self.atomic.lock() {
            for (k, v) in a.iter() {
                all.insert(k.clone(), v.load(Ordering::Relaxed));
            }
        }
        for (k, v) in &all {
            out.push_str(&format!("kiln_rack_events_total{{what=\"{k}\"}} {v}\n"));
        }
        out
    }
}
