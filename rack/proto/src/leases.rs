//! The lease table: which address belongs to which MAC until when. In memory here; the rack shell
//! persists every [`LeaseChange`] (a journal replayed at start), so a restart never hands one address
//! to two clients.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::Mac;

/// How long an offered address is held for the client that was offered it.
pub const OFFER_HOLD_SECS: u64 = 60;
/// How long a declined address (in use by someone unknown) is kept out of the pool.
pub const DECLINE_QUARANTINE_SECS: u64 = 600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseState {
    Offered,
    Bound,
}

/// One lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub ip: Ipv4Addr,
    pub mac: Mac,
    pub state: LeaseState,
    /// Unix seconds.
    pub expires: u64,
}

/// What changed in the table; the shell persists these in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum LeaseChange {
    Set(Lease),
    Remove { ip: Ipv4Addr },
    Quarantine { ip: Ipv4Addr, until: u64 },
}

#[derive(Debug, Clone, Default)]
pub struct Leases {
    by_ip: HashMap<Ipv4Addr, Lease>,
    by_mac: HashMap<Mac, Ipv4Addr>,
    quarantine: HashMap<Ipv4Addr, u64>,
    /// Where the next free-address search starts, per range start (keeps allocation O(1) amortised).
    cursor: HashMap<Ipv4Addr, u32>,
}

impl Leases {
    pub fn new() -> Leases {
        Leases::default()
    }

    /// Applies a change (from the handler, or replayed from the journal).
    pub fn apply(&mut self, ch: &LeaseChange) {
        match ch {
            LeaseChange::Set(l) => {
                if let Some(old) = self.by_mac.insert(l.mac, l.ip) {
                    if old != l.ip {
                        self.by_ip.remove(&old);
                    }
                }
                if let Some(prev) = self.by_ip.insert(l.ip, l.clone()) {
                    if prev.mac != l.mac && self.by_mac.get(&prev.mac) == Some(&l.ip) {
                        self.by_mac.remove(&prev.mac);
                    }
                }
                self.quarantine.remove(&l.ip);
            }
            LeaseChange::Remove { ip } => {
                if let Some(l) = self.by_ip.remove(ip) {
                    if self.by_mac.get(&l.mac) == Some(ip) {
                        self.by_mac.remove(&l.mac);
                    }
                }
            }
            LeaseChange::Quarantine { ip, until } => {
                self.quarantine.insert(*ip, *until);
            }
        }
    }

    pub fn by_ip(&self, ip: Ipv4Addr) -> Option<&Lease> {
        self.by_ip.get(&ip)
    }

    pub fn by_mac(&self, mac: &Mac) -> Option<&Lease> {
        self.by_mac.get(mac).and_then(|ip| self.by_ip.get(ip))
    }

    /// Whether `ip` is held by a client other than `mac` (a live lease or offer) or quarantined.
    pub fn taken_by_other(&self, ip: Ipv4Addr, mac: &Mac, now: u64) -> bool {
        if self.quarantine.get(&ip).is_some_and(|until| *until > now) {
            return true;
        }
        self.by_ip
            .get(&ip)
            .is_some_and(|l| l.mac != *mac && l.expires > now)
    }

    /// First address of `[start, end]` free for `mac` by `ok`, starting after the last one handed out.
    pub fn find_free(
        &mut self,
        start: Ipv4Addr,
        end: Ipv4Addr,
        mac: &Mac,
        now: u64,
        ok: impl Fn(Ipv4Addr) -> bool,
    ) -> Option<Ipv4Addr> {
        let (s, e) = (u32::from(start), u32::from(end));
        if e < s {
            return None;
        }
        let n = e - s + 1;
        let first = self.cursor.get(&start).copied().unwrap_or(0) % n;
        // Prefer addresses never leased (or whose lease is long gone) over recently expired ones, so a
        // client coming back soon tends to find its old address still free.
        let mut fallback = None;
        for k in 0..n {
            let off = (first + k) % n;
            let ip = Ipv4Addr::from(s + off);
            if !ok(ip) || self.taken_by_other(ip, mac, now) {
                continue;
            }
            match self.by_ip.get(&ip) {
                Some(l) if l.mac != *mac => {
                    if fallback.is_none() {
                        fallback = Some((ip, off));
                    }
                }
                _ => {
                    self.cursor.insert(start, off + 1);
                    return Some(ip);
                }
            }
        }
        fallback.map(|(ip, off)| {
            self.cursor.insert(start, off + 1);
            ip
        })
    }

    /// Every lease (for reporting and compaction).
    pub fn all(&self) -> impl Iterator<Item = &Lease> {
        self.by_ip.values()
    }

    /// Changes that recreate the current table (the journal's compacted form).
    pub fn snapshot(&self, now: u64) -> Vec<LeaseChange> {
        let mut out: Vec<LeaseChange> = self
            .by_ip
            .values()
            .filter(|l| l.expires > now || l.state == LeaseState::Bound)
            .cloned()
            .map(LeaseChange::Set)
            .collect();
        out.extend(
            self.quarantine
                .iter()
                .filter(|(_, u)| **u > now)
                .map(|(ip, until)| LeaseChange::Quarantine {
                    ip: *ip,
                    until: *until,
                }),
        );
        out
    }

    pub fn len(&self) -> usize {
        self.by_ip.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Mac = [2, 0, 0, 0, 0, 1];
    const B: Mac = [2, 0, 0, 0, 0, 2];

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn set_move_remove() {
        let mut l = Leases::new();
        l.apply(&LeaseChange::Set(Lease {
            ip: ip("10.0.0.5"),
            mac: A,
            state: LeaseState::Bound,
            expires: 100,
        }));
        assert_eq!(l.by_mac(&A).unwrap().ip, ip("10.0.0.5"));
        assert!(l.taken_by_other(ip("10.0.0.5"), &B, 50));
        assert!(!l.taken_by_other(ip("10.0.0.5"), &A, 50));
        assert!(!l.taken_by_other(ip("10.0.0.5"), &B, 150), "expired");
        // A moves to another address: the old one is free.
        l.apply(&LeaseChange::Set(Lease {
            ip: ip("10.0.0.6"),
            mac: A,
            state: LeaseState::Bound,
            expires: 100,
        }));
        assert!(l.by_ip(ip("10.0.0.5")).is_none());
        l.apply(&LeaseChange::Remove { ip: ip("10.0.0.6") });
        assert!(l.by_mac(&A).is_none());
        assert!(l.is_empty());
    }

    #[test]
    fn find_free_skips_taken_and_quarantined_and_prefers_fresh() {
        let mut l = Leases::new();
        l.apply(&LeaseChange::Set(Lease {
            ip: ip("10.0.0.10"),
            mac: A,
            state: LeaseState::Bound,
            expires: 100,
        }));
        l.apply(&LeaseChange::Quarantine {
            ip: ip("10.0.0.11"),
            until: 100,
        });
        let got = l.find_free(ip("10.0.0.10"), ip("10.0.0.12"), &B, 50, |_| true);
        assert_eq!(got, Some(ip("10.0.0.12")));
        // Full range: nothing.
        let mut l2 = l.clone();
        l2.apply(&LeaseChange::Set(Lease {
            ip: ip("10.0.0.12"),
            mac: [9; 6],
            state: LeaseState::Bound,
            expires: 100,
        }));
        assert_eq!(
            l2.find_free(ip("10.0.0.10"), ip("10.0.0.12"), &B, 50, |_| true),
            None
        );
        // After expiry: the address whose quarantine ended (never leased) comes before expired leases.
        assert_eq!(
            l2.find_free(ip("10.0.0.10"), ip("10.0.0.12"), &B, 500, |_| true),
            Some(ip("10.0.0.11"))
        );
        // With only expired leases of others left, one of them is reused.
        let mut l3 = l2.clone();
        l3.apply(&LeaseChange::Set(Lease {
            ip: ip("10.0.0.11"),
            mac: [8; 6],
            state: LeaseState::Bound,
            expires: 100,
        }));
        assert!(l3
            .find_free(ip("10.0.0.10"), ip("10.0.0.12"), &B, 500, |_| true)
            .is_some());
    }

    #[test]
    fn journal_round_trip() {
        let mut l = Leases::new();
        l.apply(&LeaseChange::Set(Lease {
            ip: ip("10.0.0.5"),
            mac: A,
            state: LeaseState::Bound,
            expires: 100,
        }));
        l.apply(&LeaseChange::Quarantine {
            ip: ip("10.0.0.9"),
            until: 100,
        });
        let text: Vec<String> = l
            .snapshot(10)
            .iter()
            .map(|c| serde_json::to_string(c).unwrap())
            .collect();
        let mut back = Leases::new();
        for t in text {
            back.apply(&serde_json::from_str(&t).unwrap());
        }
        assert_eq!(back.by_mac(&A).unwrap().ip, ip("10.0.0.5"));
        assert!(back.taken_by_other(ip("10.0.0.9"), &B, 10));
    }
}
