//! Answering one question from the zones, and who may ask.

use std::net::IpAddr;

use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

use super::zones::Zones;

/// What to do with a question.
#[derive(Debug)]
pub enum Decision<'z> {
    /// Ours: answer with authority.
    Answer(Answer<'z>),
    /// Not in a Kiln zone, recursion wanted and there are forwarders: ask them.
    Forward,
    /// Not ours and no forwarding (or not asked to recurse): REFUSED.
    Refuse,
}

/// An authoritative answer: the records, by section.
#[derive(Debug, Default)]
pub struct Answer<'z> {
    pub nxdomain: bool,
    pub answers: Vec<&'z Record>,
    pub authority: Vec<&'z Record>,
    pub additional: Vec<&'z Record>,
}

/// How many CNAMEs inside Kiln's zones are followed in one answer.
const MAX_CHAIN: usize = 8;

impl Zones {
    /// The decision for `qname`/`qtype` (class IN; the shell refuses other classes).
    pub fn decide(
        &self,
        qname: &LowerName,
        qtype: RecordType,
        recursion: bool,
        forwarders: bool,
    ) -> Decision<'_> {
        match self.answer(qname, qtype) {
            Some(a) => Decision::Answer(a),
            None if recursion && forwarders => Decision::Forward,
            None => Decision::Refuse,
        }
    }

    /// The authoritative answer, or `None` when no Kiln zone holds `qname`.
    pub fn answer(&self, qname: &LowerName, qtype: RecordType) -> Option<Answer<'_>> {
        let zone = self.zone_of(qname)?;
        let apex = &self.apexes[zone];
        let mut out = Answer::default();
        let at_apex = *qname == apex.origin;
        let matches = |r: &Record| qtype == RecordType::ANY || r.record_type() == qtype;
        if at_apex && matches!(qtype, RecordType::SOA | RecordType::ANY) {
            out.answers.push(&apex.soa);
        }
        if at_apex && matches!(qtype, RecordType::NS | RecordType::ANY) {
            out.answers.extend(apex.ns.iter());
            self.glue(&apex.ns, &mut out.additional);
        }
        match self.nodes.get(qname) {
            Some(node) => {
                let cname = node
                    .records
                    .iter()
                    .find(|r| r.record_type() == RecordType::CNAME);
                match cname {
                    Some(c) if qtype != RecordType::CNAME && qtype != RecordType::ANY => {
                        out.answers.push(c);
                        self.chase(c, qtype, &mut out);
                    }
                    _ => out
                        .answers
                        .extend(node.records.iter().filter(|r| matches(r))),
                }
                if matches!(qtype, RecordType::MX | RecordType::SRV | RecordType::ANY) {
                    let found: Vec<&Record> = out.answers.clone();
                    self.glue(found, &mut out.additional);
                }
            }
            None if at_apex || self.empty_non_terminals.contains(qname) => {}
            None => out.nxdomain = true,
        }
        if out.answers.is_empty() {
            out.authority.push(&apex.soa);
        }
        Some(out)
    }

    /// Follows a CNAME while its target is in Kiln's zones, adding what is found there.
    fn chase<'z>(&'z self, first: &'z Record, qtype: RecordType, out: &mut Answer<'z>) {
        let mut cur = first;
        for _ in 0..MAX_CHAIN {
            let RData::CNAME(c) = &cur.data else {
                return;
            };
            let target = LowerName::new(&c.0);
            let Some(node) = self.nodes.get(&target) else {
                return;
            };
            if let Some(next) = node
                .records
                .iter()
                .find(|r| r.record_type() == RecordType::CNAME)
            {
                if out.answers.iter().any(|r| std::ptr::eq(*r, next)) {
                    return; // a loop
                }
                out.answers.push(next);
                cur = next;
                continue;
            }
            out.answers
                .extend(node.records.iter().filter(|r| r.record_type() == qtype));
            return;
        }
    }

    /// The A/AAAA records of the names an NS, MX or SRV answer points at, where they are ours.
    fn glue<'z, I: IntoIterator<Item = &'z Record>>(
        &'z self,
        records: I,
        add: &mut Vec<&'z Record>,
    ) {
        for r in records {
            let target: Option<&Name> = match &r.data {
                RData::NS(n) => Some(&n.0),
                RData::MX(m) => Some(&m.exchange),
                RData::SRV(s) => Some(&s.target),
                _ => None,
            };
            let Some(t) = target else { continue };
            if let Some(node) = self.nodes.get(&LowerName::new(t)) {
                for a in node
                    .records
                    .iter()
                    .filter(|a| matches!(a.record_type(), RecordType::A | RecordType::AAAA))
                {
                    if !add.iter().any(|x| std::ptr::eq(*x, a)) {
                        add.push(a);
                    }
                }
            }
        }
    }
}

impl Zones {
    /// Who may query: clients inside the managed subnets, and the rack host itself (loopback).
    /// Kiln is never an open resolver.
    pub fn allows(&self, ip: IpAddr) -> bool {
        ip.is_loopback()
            || match ip {
                IpAddr::V4(v4) => self.managed.iter().any(|n| n.contains(&v4)),
                IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some_and(|v4| {
                    v4.is_loopback() || self.managed.iter().any(|n| n.contains(&v4))
                }),
            }
    }
}
