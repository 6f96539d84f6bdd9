//! Any path through the metadata path check: what it lets through can never climb out of
//! `/metadata/v1/` once joined to the region's URL (no `.`/`..` segment, no `%`, `?`, `#`, `\\`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(p) = std::str::from_utf8(data) else {
        return;
    };
    if rack_proto::metadata_path_ok(p) {
        assert!(!p.is_empty() && p.len() <= 256);
        assert!(!p.starts_with('/') && !p.ends_with('/'));
        for seg in p.split('/') {
            assert!(!seg.is_empty() && seg != "." && seg != "..");
        }
        assert!(!p.contains(['%', '?', '#', '\\', ':', '@']));
    }
});
