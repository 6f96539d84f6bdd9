//! The rack's caching HTTP proxy, its decisions without IO: parsing a request head, what may be
//! asked (GET/HEAD of `http://` URLs, CONNECT to port 443 only), what is cached and how (immutable
//! package files kept, apt indexes revalidated, the rest only when the origin allows it), cache
//! keys, and the size-capped LRU that decides what to evict. The shell is `rack::proxy`.

use std::collections::{BTreeMap, HashMap};

/// Request heads larger than this are refused (431).
pub const MAX_HEAD: usize = 64 * 1024;

/// What a client asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `GET`/`HEAD http://host[:port]/path`.
    Fetch {
        head_only: bool,
        host: String,
        port: u16,
        /// Path and query, starting with `/`.
        path: String,
        /// The client's headers minus hop-by-hop ones (and `Proxy-*`).
        headers: Vec<(String, String)>,
    },
    /// `CONNECT host:port`.
    Connect { host: String, port: u16 },
}

/// Why a request is refused: the status and the sentence sent back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: &'static str,
    pub message: String,
}

fn refuse(status: u16, reason: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        reason,
        message: message.into(),
    }
}

/// Headers a proxy does not pass on (RFC 9110 7.6.1), plus the proxy's own.
fn hop_by_hop(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authorization"
            | "proxy-authenticate"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

fn host_port(s: &str, default: u16) -> Option<(String, u16)> {
    let (h, p) = match s.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => match p.parse::<u16>() {
            Ok(p) => (h, p),
            Err(_) => return None,
        },
        _ => (s, default),
    };
    let h = h.trim_start_matches('[').trim_end_matches(']');
    let ok = !h.is_empty()
        && h.len() <= 253
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'));
    ok.then(|| (h.to_ascii_lowercase(), p))
}

/// Parses a request head. `Ok(None)`: not all of it has arrived yet.
pub fn parse(buf: &[u8]) -> Result<Option<(Request, usize)>, Refusal> {
    let mut hs = [httparse::EMPTY_HEADER; 100];
    let mut req = httparse::Request::new(&mut hs);
    let n = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Err(refuse(
                431,
                "Request Header Fields Too Large",
                "The request head is too large.",
            ))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(refuse(
                431,
                "Request Header Fields Too Large",
                "Too many request headers.",
            ))
        }
        Err(e) => {
            return Err(refuse(
                400,
                "Bad Request",
                format!("The request is not HTTP/1.x: {e}."),
            ))
        }
    };
    let method = req.method.unwrap_or("");
    let target = req.path.unwrap_or("");
    if method == "CONNECT" {
        let (host, port) = host_port(target, 443)
            .filter(|_| target.contains(':'))
            .ok_or_else(|| refuse(400, "Bad Request", "CONNECT needs host:port."))?;
        if port != 443 {
            return Err(refuse(
                403,
                "Forbidden",
                format!("CONNECT is allowed to port 443 only, not {port}."),
            ));
        }
        return Ok(Some((Request::Connect { host, port }, n)));
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        m => {
            return Err(refuse(
                405,
                "Method Not Allowed",
                format!(
                "This proxy serves GET and HEAD of http:// URLs and CONNECT to port 443, not {m}."
            ),
            ))
        }
    };
    let Some(rest) = target.strip_prefix("http://") else {
        return Err(refuse(
            400,
            "Bad Request",
            "Ask for an absolute http:// URL (this is a proxy; https goes through CONNECT).",
        ));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.contains('@') {
        return Err(refuse(
            400,
            "Bad Request",
            "URLs with credentials are not proxied.",
        ));
    }
    let (host, port) = host_port(authority, 80)
        .ok_or_else(|| refuse(400, "Bad Request", format!("'{authority}' is not a host.")))?;
    let headers = req
        .headers
        .iter()
        .filter(|h| !hop_by_hop(h.name) && !h.name.eq_ignore_ascii_case("host"))
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    Ok(Some((
        Request::Fetch {
            head_only,
            host,
            port,
            path: path.to_string(),
            headers,
        },
        n,
    )))
}

/// How a response to a URL is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Never changes once published (`.deb`, `by-hash/`): served from the cache without asking.
    Immutable,
    /// apt's indexes and anything else cacheable: kept, and revalidated (If-None-Match /
    /// If-Modified-Since) on every request.
    Revalidate,
}

/// The policy for `path` (its query ignored).
pub fn policy(path: &str) -> Policy {
    let p = path.split('?').next().unwrap_or(path);
    let name = p.rsplit('/').next().unwrap_or(p);
    if p.contains("/by-hash/")
        || [
            ".deb",
            ".udeb",
            ".ddeb",
            ".rpm",
            ".dsc",
            ".orig.tar.gz",
            ".orig.tar.xz",
        ]
        .iter()
        .any(|s| name.ends_with(s))
    {
        Policy::Immutable
    } else {
        Policy::Revalidate
    }
}

/// Whether a response may be stored at all: a complete 200 without `no-store`/`private`, no
/// cookies, and (for revalidated ones) a validator to revalidate with.
pub fn storable(status: u16, headers: &BTreeMap<String, String>, policy: Policy) -> bool {
    let h = |k: &str| {
        headers
            .get(k)
            .map(|v| v.to_ascii_lowercase())
            .unwrap_or_default()
    };
    let cc = h("cache-control");
    status == 200
        && !cc.contains("no-store")
        && !cc.contains("private")
        && !headers.contains_key("set-cookie")
        && !headers.contains_key("vary")
        && (policy == Policy::Immutable
            || headers.contains_key("etag")
            || headers.contains_key("last-modified"))
}

/// The headers of a stored response that are sent again with it.
pub const KEPT_HEADERS: [&str; 5] = [
    "content-type",
    "etag",
    "last-modified",
    "content-encoding",
    "cache-control",
];

/// The cache key of a URL.
pub fn key(host: &str, port: u16, path: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(format!("http://{host}:{port}{path}").as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Which stored objects to drop to stay under the size cap: least recently used first.
#[derive(Debug, Default, Clone)]
pub struct Lru {
    cap: u64,
    total: u64,
    tick: u64,
    entries: HashMap<String, (u64, u64)>,
}

impl Lru {
    pub fn new(cap: u64) -> Lru {
        Lru {
            cap,
            ..Default::default()
        }
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// Marks `key` used now.
    pub fn touch(&mut self, key: &str) {
        self.tick += 1;
        if let Some(e) = self.entries.get_mut(key) {
            e.1 = self.tick;
        }
    }

    /// Records `key` with `size` bytes; returns the keys to delete (never `key` itself unless it
    /// alone is larger than the cap).
    pub fn insert(&mut self, key: &str, size: u64) -> Vec<String> {
        self.tick += 1;
        if let Some((old, _)) = self.entries.insert(key.to_string(), (size, self.tick)) {
            self.total -= old;
        }
        self.total += size;
        let mut out = Vec::new();
        if size > self.cap {
            self.remove(key);
            out.push(key.to_string());
            return out;
        }
        while self.total > self.cap {
            let Some(victim) = self
                .entries
                .iter()
                .filter(|(k, _)| k.as_str() != key)
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.remove(&victim);
            out.push(victim);
        }
        out
    }

    pub fn remove(&mut self, key: &str) {
        if let Some((size, _)) = self.entries.remove(key) {
            self.total -= size;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetch(raw: &str) -> Request {
        parse(raw.as_bytes()).unwrap().unwrap().0
    }

    #[test]
    fn gets_of_absolute_http_urls_are_parsed_without_hop_by_hop_headers() {
        let r = fetch("GET http://deb.example:8080/debian/dists/x/InRelease HTTP/1.1\r\nHost: deb.example:8080\r\nConnection: keep-alive\r\nProxy-Authorization: x\r\nIf-Modified-Since: Tue\r\n\r\n");
        assert_eq!(
            r,
            Request::Fetch {
                head_only: false,
                host: "deb.example".into(),
                port: 8080,
                path: "/debian/dists/x/InRelease".into(),
                headers: vec![("If-Modified-Since".into(), "Tue".into())],
            }
        );
        match fetch("HEAD http://Deb.Example HTTP/1.1\r\n\r\n") {
            Request::Fetch {
                head_only,
                host,
                port,
                path,
                ..
            } => {
                assert!(head_only);
                assert_eq!(
                    (host.as_str(), port, path.as_str()),
                    ("deb.example", 80, "/")
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse(b"GET http://a/ HTTP/1.1\r\nHost: a\r\n").unwrap(),
            None,
            "partial"
        );
    }

    #[test]
    fn connect_only_to_443_and_other_methods_refused_in_words() {
        assert_eq!(
            fetch("CONNECT example.org:443 HTTP/1.1\r\n\r\n"),
            Request::Connect {
                host: "example.org".into(),
                port: 443
            }
        );
        let e = parse(b"CONNECT mail.example:25 HTTP/1.1\r\n\r\n").unwrap_err();
        assert_eq!(e.status, 403);
        assert!(e.message.contains("443"));
        assert_eq!(
            parse(b"POST http://a/ HTTP/1.1\r\n\r\n")
                .unwrap_err()
                .status,
            405
        );
        assert_eq!(
            parse(b"GET /relative HTTP/1.1\r\n\r\n").unwrap_err().status,
            400
        );
        assert_eq!(
            parse(b"GET https://a/ HTTP/1.1\r\n\r\n")
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            parse(b"GET http://u:p@a/ HTTP/1.1\r\n\r\n")
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            parse(b"GET http://a b/ HTTP/1.1\r\n\r\n")
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(parse(b"\x00\x01garbage\r\n\r\n").unwrap_err().status, 400);
        let big = format!("GET http://a/ HTTP/1.1\r\nX: {}", "y".repeat(MAX_HEAD));
        assert_eq!(parse(big.as_bytes()).unwrap_err().status, 431);
    }

    #[test]
    fn packages_are_immutable_indexes_revalidated() {
        assert_eq!(
            policy("/debian/pool/main/h/hello/hello_2.10-3_amd64.deb"),
            Policy::Immutable
        );
        assert_eq!(
            policy("/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/ab12"),
            Policy::Immutable
        );
        for p in [
            "/debian/dists/bookworm/InRelease",
            "/debian/dists/bookworm/main/binary-amd64/Packages.xz",
            "/x/Release.gpg",
            "/index.html?x=.deb",
        ] {
            assert_eq!(policy(p), Policy::Revalidate, "{p}");
        }
    }

    #[test]
    fn only_complete_public_responses_with_validators_are_stored() {
        let h = |kv: &[(&str, &str)]| {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert!(storable(200, &h(&[]), Policy::Immutable));
        assert!(
            !storable(200, &h(&[]), Policy::Revalidate),
            "nothing to revalidate with"
        );
        assert!(storable(200, &h(&[("etag", "\"x\"")]), Policy::Revalidate));
        assert!(storable(
            200,
            &h(&[("last-modified", "Tue")]),
            Policy::Revalidate
        ));
        assert!(!storable(206, &h(&[]), Policy::Immutable));
        assert!(!storable(404, &h(&[]), Policy::Immutable));
        assert!(!storable(
            200,
            &h(&[("cache-control", "No-Store")]),
            Policy::Immutable
        ));
        assert!(!storable(
            200,
            &h(&[("cache-control", "private")]),
            Policy::Immutable
        ));
        assert!(!storable(
            200,
            &h(&[("set-cookie", "a=b")]),
            Policy::Immutable
        ));
    }

    #[test]
    fn the_least_recently_used_go_first_and_the_cap_holds() {
        let mut l = Lru::new(100);
        assert!(l.insert("a", 40).is_empty());
        assert!(l.insert("b", 40).is_empty());
        l.touch("a");
        assert_eq!(l.insert("c", 40), vec!["b".to_string()]);
        assert_eq!(l.total(), 80);
        assert_eq!(l.insert("d", 100), vec!["a".to_string(), "c".to_string()]);
        assert_eq!(l.total(), 100);
        assert_eq!(
            l.insert("huge", 101),
            vec!["huge".to_string()],
            "larger than the cap: not kept"
        );
        assert!(l.contains("d") && !l.contains("huge"));
        // Replacing an entry counts its new size only.
        assert!(l.insert("d", 50).is_empty());
        assert_eq!(l.total(), 50);
    }

    #[test]
    fn keys_differ_by_url() {
        assert_ne!(key("a", 80, "/x"), key("a", 8080, "/x"));
        assert_eq!(key("a", 80, "/x").len(), 64);
    }
}
