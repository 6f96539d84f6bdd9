//! Inputs the fuzzers once crashed on: each must be dropped cleanly now.
#![allow(clippy::unwrap_used)]

#[test]
fn dhcp_option_length_crash_is_dropped() {
    let b = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/dhcp-fuzz-crash-option-length.bin"
    ))
    .unwrap();
    // Refused by the option check itself, not by whatever else happens to fail on it.
    assert_eq!(
        rack_proto::dhcp::decode_checked(&b).err(),
        Some(rack_proto::dhcp::Malformed::BadOptions)
    );
}

#[test]
fn dhcp_fqdn_length_crash_is_dropped() {
    let b = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/dhcp-fuzz-crash-fqdn-length.bin"
    ))
    .unwrap();
    // Refused by the option check itself, not by whatever else happens to fail on it.
    assert_eq!(
        rack_proto::dhcp::decode_checked(&b).err(),
        Some(rack_proto::dhcp::Malformed::BadOptions)
    );
}

#[test]
fn dhcp_concatenated_option_crash_is_dropped() {
    let b = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/dhcp-fuzz-crash-concatenated.bin"
    ))
    .unwrap();
    // Refused by the option check itself, not by whatever else happens to fail on it.
    assert_eq!(
        rack_proto::dhcp::decode_checked(&b).err(),
        Some(rack_proto::dhcp::Malformed::BadOptions)
    );
}
