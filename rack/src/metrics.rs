//! Counters of the rack's services (dropped packets by reason among them).

use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<String, u64>>,
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

    pub fn get(&self, name: &str) -> u64 {
        self.counters
            .lock()
            .map(|c| c.get(name).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Prometheus text.
    pub fn render(&self) -> String {
        let mut out = String::from("# TYPE kiln_rack_events_total counter\n");
        if let Ok(c) = self.counters.lock() {
            for (k, v) in c.iter() {
                out.push_str(&format!("kiln_rack_events_total{{what=\"{k}\"}} {v}\n"));
            }
        }
        out
    }
}
