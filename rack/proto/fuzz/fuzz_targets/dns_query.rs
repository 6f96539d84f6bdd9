//! Any datagram as a DNS query: decoded (hickory-proto), answered from a small zone set, the answer
//! encoded. Never a panic; every answer encodes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rack_proto::dns::fuzz_one(data);
});
