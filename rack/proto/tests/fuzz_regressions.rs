//! Inputs the fuzzers once crashed on: each must be dropped cleanly now.
#![allow(clippy::unwrap_used)]

#[test]
fn dhcp_option_length_crash_is_dropped() {
    let b = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/dhcp-fuzz-crash-option-length.bin"
    ))
    .unwrap();
    assert!(rack_proto::dhcp::decode_checked(&b).is_err());
}

#[test]
fn dhcp_fqdn_length_crash_is_dropped() {
    let b = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/dhcp-fuzz-crash-fqdn-length.bin"
    ))
    .unwrap();
    assert!(rack_proto::dhcp::decode_checked(&b).is_err());
}

#[test]
fn dhcp_concatenated_option_crash_is_dropped() {
    let b = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/dhcp-fuzz-crash-concatenated.bin"
    ))
    .unwrap();
    assert!(rack_proto::dhcp::decode_checked(&b).is_err());
}
