//! DNS from the snapshot, without IO: the zones a rack is authoritative for ([`Zones::build`]) and
//! the answer to one question ([`Zones::answer`]); who may ask ([`Zones::allows`]); the SOA serial
//! ([`next_serial`]). The rack's shell (`rack::dns`) receives queries through hickory-server and
//! sends what these decide.
//!
//! Zones:
//! - a forward zone per Kiln domain, holding each machine's `hostname.domain` → its addresses (the
//!   interfaces' addresses in the snapshot: static reservations, leases the region recorded,
//!   deployed addresses; and this rack's own current leases for the machine's MACs), plus the
//!   operators' records;
//! - a reverse zone per managed subnet, at the octet boundary at or above its prefix (a /20 is 16
//!   `/24` zones; a /26 lives in its `/24` zone, RFC 2317-style classless delegation is not
//!   needed because the rack is authoritative for the whole `/24` itself), with a PTR for every
//!   machine address inside managed subnets;
//! - at each apex an SOA (serial given by the caller) and an NS naming `ns.<default domain>`, whose
//!   A records are the rack's own addresses.

mod answer;
mod zones;

pub use answer::{Answer, Decision};
pub use zones::{reverse_name, reverse_origins, Inputs, Zones};

/// The SOA serial after a change: one more than the last, or the Unix time in seconds when that
/// is larger (so a restarted rack, which forgot its last serial, still counts up).
pub fn next_serial(prev: u32, now_secs: u64) -> u32 {
    let now = u32::try_from(now_secs).unwrap_or(u32::MAX);
    now.max(prev.wrapping_add(1))
}

/// The whole answer to one datagram from `zones` alone (no forwarding, no client check): what the
/// fuzz target and the property tests drive. `None` for what is dropped (not a query, not ours);
/// malformed queries whose header survives get FORMERR.
pub fn answer_datagram(zones: &Zones, data: &[u8]) -> Option<Vec<u8>> {
    use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
    use hickory_proto::rr::{DNSClass, LowerName};
    let req = match Message::from_vec(data) {
        Ok(m) => m,
        Err(_) => {
            // The header alone: answer FORMERR to a query whose body does not parse.
            let id = u16::from_be_bytes([*data.first()?, *data.get(1)?]);
            if data.len() < 12 || data[2] & 0x80 != 0 {
                return None;
            }
            return Message::error_msg(id, OpCode::Query, ResponseCode::FormErr)
                .to_vec()
                .ok();
        }
    };
    if req.metadata.message_type != MessageType::Query {
        return None;
    }
    let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
    resp.metadata.recursion_desired = req.metadata.recursion_desired;
    let [q] = req.queries.as_slice() else {
        resp.metadata.response_code = ResponseCode::FormErr;
        return resp.to_vec().ok();
    };
    resp.add_query(q.clone());
    if req.metadata.op_code != OpCode::Query || q.query_class() != DNSClass::IN {
        resp.metadata.response_code = ResponseCode::NotImp;
        return resp.to_vec().ok();
    }
    let a = zones.answer(&LowerName::new(q.name()), q.query_type())?;
    resp.metadata.authoritative = true;
    if a.nxdomain {
        resp.metadata.response_code = ResponseCode::NXDomain;
    }
    resp.add_answers(a.answers.into_iter().cloned());
    resp.add_authorities(a.authority.into_iter().cloned());
    resp.add_additionals(a.additional.into_iter().cloned());
    resp.to_vec().ok()
}

/// A small lab's zones, for the fuzz target.
#[doc(hidden)]
pub fn sample_zones() -> Zones {
    tests_support::lab()
}

/// One fuzz input: answered without a panic, and the answer decodes again.
#[doc(hidden)]
pub fn fuzz_one(data: &[u8]) {
    use std::sync::OnceLock;
    static ZONES: OnceLock<Zones> = OnceLock::new();
    let z = ZONES.get_or_init(sample_zones);
    if let Some(out) = answer_datagram(z, data) {
        assert!(
            hickory_proto::op::Message::from_vec(&out).is_ok(),
            "an answer that does not decode"
        );
    }
}

mod tests_support;

#[cfg(test)]
mod tests;
