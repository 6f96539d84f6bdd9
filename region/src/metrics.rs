//! In-process counters rendered as Prometheus text. Per-process by design: each region exposes its
//! own request counters; machine counts come from the shared database at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Instant;

use region_api_types::MachineStatus;

/// A counter's key: (method label, status).
type Key = (&'static str, u16);
/// A counter's value: (count, total seconds).
type Tally = (u64, f64);

#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    /// (method, status) → (count, total seconds). Methods come from [`METHODS`] (else `other`) and
    /// statuses are what the server itself answered, so no caller can grow this map.
    requests: Mutex<BTreeMap<Key, Tally>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            started: Instant::now(),
            requests: Mutex::new(BTreeMap::new()),
        }
    }
}

/// The request methods counted by name; any other is counted as `other`.
pub const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// The label a request method is counted under: one of [`METHODS`] or `other`.
pub fn method_label(method: &str) -> &'static str {
    METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

impl Metrics {
    pub fn record(&self, method: &str, status: u16, secs: f64) {
        // A status outside what HTTP defines cannot come from our own server; fold it anyway.
        let status = if (100..600).contains(&status) {
            status
        } else {
            0
        };
        if let Ok(mut m) = self.requests.lock() {
            let e = m.entry((method_label(method), status)).or_insert((0, 0.0));
            e.0 += 1;
            e.1 += secs;
        }
    }

    pub fn render(&self, machines_by_status: &[(String, i64)]) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP kiln_region_uptime_seconds Seconds since this region process started."
        );
        let _ = writeln!(out, "# TYPE kiln_region_uptime_seconds gauge");
        let _ = writeln!(
            out,
            "kiln_region_uptime_seconds {:.3}",
            self.started.elapsed().as_secs_f64()
        );
        let _ = writeln!(
            out,
            "# HELP kiln_http_requests_total HTTP requests served, by method and status."
        );
        let _ = writeln!(out, "# TYPE kiln_http_requests_total counter");
        let snapshot: Vec<(Key, Tally)> = self
            .requests
            .lock()
            .map(|m| m.iter().map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default();
        for ((method, status), (n, _)) in &snapshot {
            let _ = writeln!(
                out,
                "kiln_http_requests_total{{method=\"{method}\",status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(out, "# HELP kiln_http_request_seconds_total Time spent serving HTTP requests, by method and status.");
        let _ = writeln!(out, "# TYPE kiln_http_request_seconds_total counter");
        for ((method, status), (_, s)) in &snapshot {
            let _ = writeln!(
                out,
                "kiln_http_request_seconds_total{{method=\"{method}\",status=\"{status}\"}} {s:.6}"
            );
        }
        let _ = writeln!(out, "# HELP kiln_machines Machines by status.");
        let _ = writeln!(out, "# TYPE kiln_machines gauge");
        for st in MachineStatus::ALL {
            let n = machines_by_status
                .iter()
                .find(|(s, _)| s == st.as_str())
                .map(|(_, n)| *n)
                .unwrap_or(0);
            let _ = writeln!(out, "kiln_machines{{status=\"{}\"}} {n}", st.as_str());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.record("GET", 200, 0.5);
        m.record("GET", 200, 0.25);
        let t = m.render(&[("ready".into(), 3)]);
        assert!(
            t.contains("kiln_http_requests_total{method=\"GET\",status=\"200\"} 2"),
            "{t}"
        );
        assert!(t.contains("kiln_machines{status=\"ready\"} 3"));
        assert!(t.contains("kiln_machines{status=\"new\"} 0"));
    }

    #[test]
    fn unknown_methods_count_as_other() {
        let m = Metrics::default();
        for i in 0..100 {
            m.record(&format!("X{i}"), 405, 0.0);
        }
        m.record("BREW\"}", 400, 0.0);
        let t = m.render(&[]);
        assert!(
            t.contains("kiln_http_requests_total{method=\"other\",status=\"405\"} 100"),
            "{t}"
        );
        assert!(!t.contains("X1") && !t.contains("BREW"), "{t}");
        assert_eq!(m.requests.lock().unwrap().len(), 2);
    }
}
