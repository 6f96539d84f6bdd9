//! The static files, compiled into the binary and served under `/ui/static/`: htmx (vendored,
//! version 2.0.11, BSD Zero Clause licence in `htmx.LICENSE`), the stylesheet and Kiln's small
//! script (the SSE client and the selection helpers). No CDN, no build step.

use sha2::{Digest, Sha256};

/// One static file.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "htmx.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../static/htmx.min.js"),
    },
    Asset {
        name: "htmx.LICENSE",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("../static/htmx.LICENSE"),
    },
    Asset {
        name: "kiln.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../static/kiln.js"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../static/favicon.svg"),
    },
    Asset {
        name: "kiln.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../static/kiln.css"),
    },
];

/// The file called `name`, if there is one.
pub fn get(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

impl Asset {
    /// A strong ETag: the first 16 hex digits of the body's sha256.
    pub fn etag(&self) -> String {
        let d = Sha256::digest(self.body);
        format!("\"{}\"", &hex::encode(d)[..16])
    }
}

/// A short version of all assets together, appended to their URLs (`?v=…`) so that a new binary's
/// files are fetched at once while old ones stay cached.
pub fn version() -> String {
    let mut h = Sha256::new();
    for a in ASSETS {
        h.update(a.body);
    }
    hex::encode(h.finalize())[..10].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_found_by_name_with_stable_etags() {
        let a = get("htmx.min.js").unwrap();
        assert!(a.body.starts_with(b"var htmx="));
        assert_eq!(a.etag(), get("htmx.min.js").unwrap().etag());
        assert_ne!(a.etag(), get("kiln.css").unwrap().etag());
        assert!(get("../Cargo.toml").is_none());
        assert_eq!(version().len(), 10);
    }
}
