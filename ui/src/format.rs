//! Pure formatting for the pages: sizes, durations, URL query encoding.

/// Bytes in binary units: `512 B`, `1.5 KiB`, `3.0 GiB`, `2.0 TiB`.
pub fn bytes(n: i64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{} B", n.max(0));
    }
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// Mebibytes as [`bytes`] does.
pub fn mib(n: i64) -> String {
    bytes(n.saturating_mul(1024 * 1024))
}

/// A duration in words a person reads at a glance: `850 ms`, `4.2 s`, `3 min 05 s`, `2 h 10 min`.
pub fn duration_ms(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{} min {:02} s", ms / 60_000, (ms % 60_000) / 1000)
    } else {
        format!("{} h {:02} min", ms / 3_600_000, (ms % 3_600_000) / 60_000)
    }
}

/// Percent-encodes a query-string value (RFC 3986 unreserved characters stay).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `path?k=v&…` with the empty values left out.
pub fn link(path: &str, params: &[(&str, &str)]) -> String {
    let q: Vec<String> = params
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", url_encode(v)))
        .collect();
    if q.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", q.join("&"))
    }
}

/// An RFC 3339 time as `2026-12-02 14:03:07` (UTC), for tables.
pub fn short_time(rfc3339: &str) -> String {
    let t = rfc3339.replace('T', " ");
    let t = t.trim_end_matches('Z');
    match t.split_once('.') {
        Some((a, _)) => a.to_string(),
        None => t.split('+').next().unwrap_or(t).to_string(),
    }
}

/// Milliseconds since the epoch of an RFC 3339 UTC time (`2026-12-02T14:03:07.123Z`, as the API
/// writes them); `None` for anything else.
pub fn parse_time_ms(t: &str) -> Option<i64> {
    let t = t.strip_suffix('Z').or_else(|| t.strip_suffix("+00:00"))?;
    let (date, time) = t.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut h = hms.splitn(3, ':').map(|x| x.parse::<i64>().ok());
    let (hh, mm, ss) = (h.next()??, h.next()??, h.next()??);
    let frac: String = frac.chars().chain("000".chars()).take(3).collect();
    let ms: i64 = frac.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(mib(2048), "2.0 GiB");
    }

    #[test]
    fn durations() {
        assert_eq!(duration_ms(850), "850 ms");
        assert_eq!(duration_ms(4200), "4.2 s");
        assert_eq!(duration_ms(185_000), "3 min 05 s");
        assert_eq!(duration_ms(7_800_000), "2 h 10 min");
        assert_eq!(duration_ms(-5), "0 ms");
    }

    #[test]
    fn links_encode_values() {
        assert_eq!(
            link(
                "/machines",
                &[
                    ("q", "status:ready hostname:node*"),
                    ("sort", ""),
                    ("page", "2")
                ]
            ),
            "/machines?q=status%3Aready%20hostname%3Anode%2A&page=2"
        );
        assert_eq!(link("/machines", &[("q", "")]), "/machines");
    }

    #[test]
    fn times() {
        assert_eq!(
            short_time("2026-12-02T14:03:07.123Z"),
            "2026-12-02 14:03:07"
        );
        assert_eq!(short_time("2026-12-02T14:03:07Z"), "2026-12-02 14:03:07");
        assert_eq!(parse_time_ms("1970-01-01T00:00:01.500Z"), Some(1500));
        // date -d 2026-12-02T14:03:07Z +%s
        assert_eq!(
            parse_time_ms("2026-12-02T14:03:07.123Z"),
            Some(1_796_220_187_123)
        );
        assert_eq!(parse_time_ms("yesterday"), None);
    }
}
