//! Any datagram through the TFTP request parser, and as an ACK into a transfer: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rack_proto::tftp::{self, Transfer};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = tftp::parse_request(data) {
        // `a..b` is a fine name; a `..` component, a leading `/` or a `\\` never gets through.
        assert!(req.path.split('/').all(|c| c != ".." && c != "."));
        assert!(!req.path.starts_with('/') && !req.path.contains('\\'));
        let (mut t, _) = Transfer::start(&req, 100_000);
        let _ = t.on_datagram(data);
    }
});
