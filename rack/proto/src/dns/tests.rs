use std::net::IpAddr;
use std::str::FromStr;

use hickory_proto::rr::{LowerName, Name, RData, RecordType};
use proptest::prelude::*;

use super::tests_support::lab;
use super::*;

fn q(s: &str) -> LowerName {
    LowerName::new(&Name::from_str(s).unwrap())
}

fn a_records(a: &Answer<'_>) -> Vec<String> {
    a.answers
        .iter()
        .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
        .collect()
}

#[test]
fn machines_resolve_forward_from_reservations_and_this_racks_leases() {
    let z = lab();
    let a = z.answer(&q("node1.kiln."), RecordType::A).unwrap();
    assert_eq!(a_records(&a), ["node1.kiln. A 10.0.0.5"]);
    assert!(!a.nxdomain && a.authority.is_empty());
    // node2 has no address in the snapshot, only this rack's lease.
    let a = z.answer(&q("NODE2.kiln."), RecordType::A).unwrap();
    assert_eq!(a_records(&a), ["node2.kiln. A 10.0.0.100"]);
    // A machine naming its own domain; the name is lower case.
    let a = z.answer(&q("db.lab.example."), RecordType::A).unwrap();
    assert_eq!(a_records(&a), ["db.lab.example. A 192.168.7.70"]);
    assert_eq!(a.answers[0].ttl, 300);
    let a = z.answer(&q("outside.kiln."), RecordType::A).unwrap();
    assert_eq!(a_records(&a), ["outside.kiln. A 172.16.0.9"]);
}

#[test]
fn reverse_zones_cover_managed_subnets_including_sub_24() {
    let z = lab();
    let a = z
        .answer(&q("5.0.0.10.in-addr.arpa."), RecordType::PTR)
        .unwrap();
    assert_eq!(a_records(&a), ["5.0.0.10.in-addr.arpa. PTR node1.kiln."]);
    let a = z
        .answer(&q("100.0.0.10.in-addr.arpa."), RecordType::PTR)
        .unwrap();
    assert_eq!(a_records(&a), ["100.0.0.10.in-addr.arpa. PTR node2.kiln."]);
    // A /26: its /24 zone answers.
    let a = z
        .answer(&q("70.7.168.192.in-addr.arpa."), RecordType::PTR)
        .unwrap();
    assert_eq!(
        a_records(&a),
        ["70.7.168.192.in-addr.arpa. PTR db.lab.example."]
    );
    // Inside a zone but no such address: NXDOMAIN with the SOA.
    let a = z
        .answer(&q("9.0.0.10.in-addr.arpa."), RecordType::PTR)
        .unwrap();
    assert!(a.nxdomain);
    assert_eq!(a.authority[0].record_type(), RecordType::SOA);
    // An unmanaged subnet has no reverse zone: not ours.
    assert!(z
        .answer(&q("9.0.16.172.in-addr.arpa."), RecordType::PTR)
        .is_none());
}

#[test]
fn reverse_origins_sit_on_octet_boundaries() {
    let o = |s: &str| reverse_origins(s.parse().unwrap());
    assert_eq!(o("10.0.0.0/24"), ["0.0.10.in-addr.arpa"]);
    assert_eq!(o("10.0.0.128/25"), ["0.0.10.in-addr.arpa"]);
    assert_eq!(o("10.1.0.0/16"), ["1.10.in-addr.arpa"]);
    assert_eq!(
        o("10.0.4.0/22"),
        [
            "4.0.10.in-addr.arpa",
            "5.0.10.in-addr.arpa",
            "6.0.10.in-addr.arpa",
            "7.0.10.in-addr.arpa"
        ]
    );
    assert_eq!(o("10.0.0.0/8"), ["10.in-addr.arpa"]);
    assert_eq!(o("10.0.0.0/12").len(), 16);
}

#[test]
fn cname_is_followed_inside_kiln_and_stops_outside_and_at_loops() {
    let z = lab();
    let a = z.answer(&q("www.kiln."), RecordType::A).unwrap();
    assert_eq!(
        a_records(&a),
        ["www.kiln. CNAME node1.kiln.", "node1.kiln. A 10.0.0.5"]
    );
    let a = z.answer(&q("www.kiln."), RecordType::CNAME).unwrap();
    assert_eq!(a_records(&a), ["www.kiln. CNAME node1.kiln."]);
    let a = z.answer(&q("far.kiln."), RecordType::A).unwrap();
    assert_eq!(a_records(&a), ["far.kiln. CNAME example.org."]);
    let a = z.answer(&q("loop1.kiln."), RecordType::A).unwrap();
    assert_eq!(a.answers.len(), 2, "{:?}", a_records(&a));
}

#[test]
fn srv_mx_aaaa_txt_and_the_apex() {
    let z = lab();
    let a = z.answer(&q("_http._tcp.kiln."), RecordType::SRV).unwrap();
    assert_eq!(a_records(&a), ["_http._tcp.kiln. SRV 10 5 80 node1.kiln."]);
    assert_eq!(a.additional.len(), 1, "the target's address comes along");
    // The name above an SRV name exists without data.
    let a = z.answer(&q("_tcp.kiln."), RecordType::A).unwrap();
    assert!(!a.nxdomain && a.answers.is_empty());
    let a = z.answer(&q("kiln."), RecordType::MX).unwrap();
    assert_eq!(a_records(&a), ["kiln. MX 10 node2.kiln."]);
    let a = z.answer(&q("v6.kiln."), RecordType::AAAA).unwrap();
    assert_eq!(a_records(&a), ["v6.kiln. AAAA fd00::5"]);
    let a = z.answer(&q("txt.kiln."), RecordType::TXT).unwrap();
    assert_eq!(a.answers.len(), 1);
    let a = z.answer(&q("kiln."), RecordType::SOA).unwrap();
    match &a.answers[0].data {
        RData::SOA(s) => assert_eq!(s.serial, 7),
        other => panic!("{other:?}"),
    }
    let a = z.answer(&q("kiln."), RecordType::NS).unwrap();
    assert_eq!(a_records(&a), ["kiln. NS ns.kiln."]);
    assert_eq!(a.additional.len(), 1, "the name server's address");
    let a = z.answer(&q("ns.kiln."), RecordType::A).unwrap();
    assert_eq!(a_records(&a), ["ns.kiln. A 10.0.0.1"]);
    // A record the region should not have let through is left out, not served wrong.
    assert!(z.answer(&q("bad.kiln."), RecordType::A).unwrap().nxdomain);
}

#[test]
fn nodata_and_nxdomain_carry_the_soa() {
    let z = lab();
    let a = z.answer(&q("node1.kiln."), RecordType::AAAA).unwrap();
    assert!(!a.nxdomain && a.answers.is_empty());
    assert_eq!(a.authority[0].record_type(), RecordType::SOA);
    let a = z.answer(&q("nobody.kiln."), RecordType::A).unwrap();
    assert!(a.nxdomain);
    assert_eq!(a.authority.len(), 1);
}

#[test]
fn names_outside_kiln_are_forwarded_or_refused() {
    let z = lab();
    let name = q("example.org.");
    assert!(matches!(
        z.decide(&name, RecordType::A, true, true),
        Decision::Forward
    ));
    assert!(matches!(
        z.decide(&name, RecordType::A, true, false),
        Decision::Refuse
    ));
    assert!(matches!(
        z.decide(&name, RecordType::A, false, true),
        Decision::Refuse
    ));
    assert!(matches!(
        z.decide(&q("node1.kiln."), RecordType::A, true, true),
        Decision::Answer(_)
    ));
    // "xkiln." is not under "kiln.".
    assert!(z.answer(&q("xkiln."), RecordType::A).is_none());
}

#[test]
fn only_managed_subnets_and_loopback_may_ask() {
    let z = lab();
    let ok = |s: &str| z.allows(IpAddr::from_str(s).unwrap());
    assert!(ok("10.0.0.77"));
    assert!(ok("192.168.7.65"));
    assert!(ok("127.0.0.1"));
    assert!(ok("::1"));
    assert!(ok("::ffff:10.0.0.77"));
    assert!(!ok("192.168.7.1"), "outside the /26");
    assert!(!ok("172.16.0.5"), "an unmanaged subnet");
    assert!(!ok("8.8.8.8"));
    assert!(!ok("fd00::1"));
}

#[test]
fn serials_only_go_up() {
    assert_eq!(next_serial(5, 1_000), 1_000);
    assert_eq!(next_serial(1_000, 1_000), 1_001);
    assert_eq!(next_serial(2_000, 1_000), 2_001);
    assert_eq!(
        next_serial(u32::MAX, 1_000),
        1_000,
        "wraps as RFC 1982 serials do"
    );
}

#[test]
fn txt_is_split_between_characters_into_255_byte_strings() {
    // 200 two-byte characters: 400 bytes; a byte split at 255 would cut one in half.
    let data = "é".repeat(200);
    let parts = zones::txt_strings(&data);
    assert!(parts.iter().all(|p| p.len() <= 255), "{parts:?}");
    assert_eq!(parts.concat(), data, "nothing lost or replaced");
    assert_eq!(parts.len(), 2);
    assert_eq!(
        zones::txt_strings("v=spf1 -all"),
        vec!["v=spf1 -all".to_string()]
    );
    assert_eq!(zones::txt_strings(&"a".repeat(510)).len(), 2);
}

fn query(name: &str, t: RecordType) -> Vec<u8> {
    use hickory_proto::op::{Message, Query};
    let mut m = Message::query();
    m.metadata.id = 0x4242;
    m.add_query(Query::query(Name::from_str(name).unwrap(), t));
    m.to_vec().unwrap()
}

#[test]
fn a_datagram_gets_its_answer_on_the_wire() {
    use hickory_proto::op::{Message, ResponseCode};
    let z = lab();
    let out = answer_datagram(&z, &query("node1.kiln.", RecordType::A)).unwrap();
    let m = Message::from_vec(&out).unwrap();
    assert_eq!(m.metadata.id, 0x4242);
    assert!(m.metadata.authoritative);
    assert_eq!(m.answers.len(), 1);
    let out = answer_datagram(&z, &query("nobody.kiln.", RecordType::A)).unwrap();
    assert_eq!(
        Message::from_vec(&out).unwrap().metadata.response_code,
        ResponseCode::NXDomain
    );
    assert!(answer_datagram(&z, &query("example.org.", RecordType::A)).is_none());
    // A header followed by garbage: FORMERR; less than a header: dropped.
    let mut bad = query("node1.kiln.", RecordType::A);
    bad.truncate(14);
    let out = answer_datagram(&z, &bad).unwrap();
    assert_eq!(
        Message::from_vec(&out).unwrap().metadata.response_code,
        ResponseCode::FormErr
    );
    assert!(answer_datagram(&z, &[1, 2, 3]).is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Malformed datagrams: never a panic, and whatever is sent back decodes.
    #[test]
    fn any_bytes_are_answered_or_dropped(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        fuzz_one(&data);
    }

    /// Valid queries with bytes flipped, cut or grown.
    #[test]
    fn mutated_queries_are_answered_or_dropped(
        name in prop::sample::select(vec!["node1.kiln.", "www.kiln.", "_http._tcp.kiln.", "5.0.0.10.in-addr.arpa.", "kiln."]),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
        tail in proptest::collection::vec(any::<u8>(), 0..20),
    ) {
        let mut d = query(name, RecordType::ANY);
        for (i, b) in flips {
            let at = i.index(d.len());
            d[at] ^= b;
        }
        let keep = cut.index(d.len() + 1);
        d.truncate(keep.max(d.len().saturating_sub(8)));
        d.extend(tail);
        fuzz_one(&d);
    }
}
