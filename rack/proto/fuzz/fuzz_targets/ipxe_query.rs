//! Any query string through the iPXE script query parser: never a panic; what it accepts is a MAC
//! that prints back to itself and an architecture name of the allowed characters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rack_proto::ipxe::ScriptQuery;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let q = ScriptQuery::parse(s);
    if let Some(m) = q.mac {
        assert_eq!(rack_proto::parse_mac(&rack_proto::fmt_mac(&m)), Some(m));
    }
    if let Some(a) = q.arch {
        assert!((1..=32).contains(&a.len()));
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-/.".contains(&b)));
    }
});
