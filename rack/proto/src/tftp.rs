//! TFTP (RFC 1350) read requests with options: blksize (RFC 2348), timeout and tsize (RFC 2349),
//! windowsize (RFC 7440), negotiated with OACK (RFC 2347). Block numbers roll over past 65535
//! (as tftp-hpa and iPXE expect), so files of any size go through.
//!
//! [`parse_request`] validates a request (no traversal, no absolute escape, octet mode only);
//! [`Transfer`] is one transfer's state machine: the shell feeds it ACKs and timeouts and it says
//! which blocks to send. It reads no file and no clock.

use std::time::Duration;

/// Largest block size accepted (RFC 2348 allows 65464).
pub const MAX_BLKSIZE: u16 = 65464;
/// Default block size (RFC 1350).
pub const DEFAULT_BLKSIZE: u16 = 512;
/// Retransmissions before a transfer is abandoned.
pub const MAX_RETRIES: u32 = 5;
/// Largest window granted (RFC 7440 lets the server answer with less than asked): a window of
/// 65,535 blocks of 64 KiB would let one request aim gigabytes at whoever its source claims to be.
pub const MAX_WINDOWSIZE: u16 = 64;
/// Largest retransmission timeout accepted, in seconds. RFC 2349 lets the server only accept the
/// client's value or ignore the option, so a longer one is ignored (the default applies).
pub const MAX_TIMEOUT: u8 = 10;

/// TFTP error codes (RFC 1350).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    NotDefined = 0,
    FileNotFound = 1,
    AccessViolation = 2,
    IllegalOperation = 4,
    UnknownTid = 5,
    OptionRefused = 8,
}

/// Why a request was refused; becomes an ERROR packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refused {
    pub code: ErrorCode,
    pub message: String,
}

fn refused(code: ErrorCode, message: impl Into<String>) -> Refused {
    Refused {
        code,
        message: message.into(),
    }
}

/// A valid read request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRequest {
    /// Relative path under the TFTP root, `/`-separated, no `..`, no empty components.
    pub path: String,
    pub blksize: Option<u16>,
    pub timeout: Option<u8>,
    /// The client asked for the size (`tsize=0`).
    pub tsize: bool,
    pub windowsize: Option<u16>,
}

fn cstr(b: &[u8]) -> Option<(&str, &[u8])> {
    let end = b.iter().position(|&c| c == 0)?;
    Some((std::str::from_utf8(&b[..end]).ok()?, &b[end + 1..]))
}

/// Parses and validates a request datagram.
pub fn parse_request(b: &[u8]) -> Result<ReadRequest, Refused> {
    if b.len() < 4 {
        return Err(refused(ErrorCode::IllegalOperation, "truncated request"));
    }
    match u16::from_be_bytes([b[0], b[1]]) {
        1 => {}
        2 => {
            return Err(refused(
                ErrorCode::AccessViolation,
                "this server does not accept writes",
            ))
        }
        _ => {
            return Err(refused(
                ErrorCode::IllegalOperation,
                "expected a read request",
            ))
        }
    }
    let (name, rest) =
        cstr(&b[2..]).ok_or_else(|| refused(ErrorCode::IllegalOperation, "malformed file name"))?;
    let (mode, mut rest) =
        cstr(rest).ok_or_else(|| refused(ErrorCode::IllegalOperation, "malformed mode"))?;
    if !mode.eq_ignore_ascii_case("octet") {
        return Err(refused(
            ErrorCode::IllegalOperation,
            format!("only octet mode is served, not {mode}"),
        ));
    }
    let path = clean_path(name)?;
    let mut req = ReadRequest {
        path,
        blksize: None,
        timeout: None,
        tsize: false,
        windowsize: None,
    };
    while !rest.is_empty() {
        let Some((opt, r)) = cstr(rest) else { break };
        let Some((val, r)) = cstr(r) else { break };
        rest = r;
        match opt.to_ascii_lowercase().as_str() {
            "blksize" => {
                if let Ok(v) = val.parse::<u32>() {
                    // Out-of-range values are clamped (RFC 2348: the server may answer with less).
                    if v >= 8 {
                        req.blksize = Some(v.min(u32::from(MAX_BLKSIZE)) as u16);
                    }
                }
            }
            "timeout" => {
                if let Ok(v) = val.parse::<u8>() {
                    if (1..=MAX_TIMEOUT).contains(&v) {
                        req.timeout = Some(v);
                    }
                }
            }
            "tsize" => req.tsize = true,
            "windowsize" => {
                if let Ok(v) = val.parse::<u32>() {
                    if v >= 1 {
                        req.windowsize = Some(v.min(u32::from(MAX_WINDOWSIZE)) as u16);
                    }
                }
            }
            _ => {} // unknown options are ignored (RFC 2347)
        }
    }
    Ok(req)
}

/// A request path made safe: leading slashes stripped (firmware often sends `/file`), `\` refused,
/// `.` dropped, `..` refused.
pub fn clean_path(name: &str) -> Result<String, Refused> {
    if name.is_empty() || name.len() > 255 {
        return Err(refused(
            ErrorCode::FileNotFound,
            "empty or overlong file name",
        ));
    }
    if name.contains('\\') || name.chars().any(char::is_control) {
        return Err(refused(
            ErrorCode::AccessViolation,
            "invalid characters in file name",
        ));
    }
    let mut parts = Vec::new();
    for p in name.trim_start_matches('/').split('/') {
        match p {
            "" | "." => {}
            ".." => return Err(refused(ErrorCode::AccessViolation, "'..' is not allowed")),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(refused(ErrorCode::FileNotFound, "no file named"));
    }
    Ok(parts.join("/"))
}

/// An ERROR packet.
pub fn error_packet(code: ErrorCode, message: &str) -> Vec<u8> {
    let mut v = vec![0, 5, 0, code as u8];
    v.extend_from_slice(message.as_bytes());
    v.push(0);
    v
}

/// A DATA packet header for block `n` (the caller appends the payload).
pub fn data_header(n: u64) -> [u8; 4] {
    let w = (n & 0xffff) as u16;
    [0, 3, (w >> 8) as u8, w as u8]
}

/// What the shell should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this packet (the OACK).
    Send(Vec<u8>),
    /// Send DATA blocks `first..=last` (block k carries bytes `(k-1)*blksize ..`).
    SendBlocks { first: u64, last: u64 },
    /// Nothing to do until the next datagram or timeout.
    Wait,
    /// The last block was acknowledged.
    Done,
    /// Give up; send this ERROR packet (or nothing, if empty).
    Abort(Vec<u8>),
}

/// One read transfer.
#[derive(Debug, Clone)]
pub struct Transfer {
    size: u64,
    pub blksize: u16,
    pub windowsize: u16,
    pub timeout: Duration,
    /// Blocks in the file (a file whose size is a multiple of blksize ends with an empty block).
    blocks: u64,
    /// Highest block acknowledged (0 = none; the OACK is acknowledged as block 0).
    acked: u64,
    /// Whether an OACK was sent and not yet acknowledged.
    oack_pending: bool,
    retries: u32,
}

impl Transfer {
    /// Starts a transfer of a `size`-byte file; returns it and the first step.
    pub fn start(req: &ReadRequest, size: u64) -> (Transfer, Step) {
        let blksize = req.blksize.unwrap_or(DEFAULT_BLKSIZE);
        let windowsize = req.windowsize.unwrap_or(1);
        let timeout = Duration::from_secs(u64::from(req.timeout.unwrap_or(1)));
        let blocks = size / u64::from(blksize) + 1;
        let mut oack = vec![0u8, 6];
        let mut any = false;
        let mut opt = |k: &str, v: String| {
            oack.extend_from_slice(k.as_bytes());
            oack.push(0);
            oack.extend_from_slice(v.as_bytes());
            oack.push(0);
            any = true;
        };
        if let Some(b) = req.blksize {
            opt("blksize", b.to_string());
        }
        if let Some(t) = req.timeout {
            opt("timeout", t.to_string());
        }
        if req.tsize {
            opt("tsize", size.to_string());
        }
        if let Some(w) = req.windowsize {
            opt("windowsize", w.to_string());
        }
        let t = Transfer {
            size,
            blksize,
            windowsize,
            timeout,
            blocks,
            acked: 0,
            oack_pending: any,
            retries: 0,
        };
        let step = if any { Step::Send(oack) } else { t.window() };
        (t, step)
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Byte range of block `n`.
    pub fn block_range(&self, n: u64) -> (u64, usize) {
        let start = (n - 1) * u64::from(self.blksize);
        let len = self.size.saturating_sub(start).min(u64::from(self.blksize)) as usize;
        (start, len)
    }

    fn window(&self) -> Step {
        let first = self.acked + 1;
        let last = (self.acked + u64::from(self.windowsize)).min(self.blocks);
        Step::SendBlocks { first, last }
    }

    /// A datagram from the client's port.
    pub fn on_datagram(&mut self, b: &[u8]) -> Step {
        if b.len() < 4 {
            return Step::Wait;
        }
        match u16::from_be_bytes([b[0], b[1]]) {
            4 => {
                let wire = u16::from_be_bytes([b[2], b[3]]);
                if self.oack_pending {
                    if wire == 0 {
                        self.oack_pending = false;
                        self.retries = 0;
                        return self.window();
                    }
                    return Step::Wait;
                }
                // Map the 16-bit block number to the nearest block at or below what we sent.
                let sent_up_to = (self.acked + u64::from(self.windowsize)).min(self.blocks);
                let mut n = (sent_up_to & !0xffff) | u64::from(wire);
                if n > sent_up_to {
                    n = n.saturating_sub(0x10000);
                }
                if n <= self.acked || n > sent_up_to {
                    // Duplicate or stale ACK: ignore (avoids the Sorcerer's Apprentice syndrome).
                    return Step::Wait;
                }
                self.acked = n;
                self.retries = 0;
                if self.acked >= self.blocks {
                    Step::Done
                } else {
                    self.window()
                }
            }
            5 => Step::Abort(Vec::new()),
            _ => Step::Abort(error_packet(ErrorCode::IllegalOperation, "expected an ACK")),
        }
    }

    /// Nothing arrived within `timeout`: resend, or give up.
    pub fn on_timeout(&mut self, oack: &[u8]) -> Step {
        self.retries += 1;
        if self.retries > MAX_RETRIES {
            return Step::Abort(error_packet(ErrorCode::NotDefined, "timed out"));
        }
        if self.oack_pending {
            Step::Send(oack.to_vec())
        } else {
            // Only the first block not acknowledged: its ACK restarts the window. Resending the
            // whole window to a silent peer (a spoofed source) would multiply what it receives.
            let n = self.acked + 1;
            Step::SendBlocks { first: n, last: n }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rrq(name: &str, mode: &str, opts: &[(&str, &str)]) -> Vec<u8> {
        let mut v = vec![0, 1];
        for s in [name, mode] {
            v.extend_from_slice(s.as_bytes());
            v.push(0);
        }
        for (k, val) in opts {
            v.extend_from_slice(k.as_bytes());
            v.push(0);
            v.extend_from_slice(val.as_bytes());
            v.push(0);
        }
        v
    }

    fn ack(n: u16) -> Vec<u8> {
        vec![0, 4, (n >> 8) as u8, n as u8]
    }

    #[test]
    fn paths_are_confined() {
        assert_eq!(clean_path("/undionly.kpxe").unwrap(), "undionly.kpxe");
        assert_eq!(clean_path("a/./b").unwrap(), "a/b");
        for bad in [
            "../etc/passwd",
            "a/../../x",
            "/",
            "",
            "a\\b",
            "..",
            "a/\u{1}b",
        ] {
            assert!(clean_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn requests() {
        let r = parse_request(&rrq(
            "pxe/x.efi",
            "OCTET",
            &[
                ("blksize", "1468"),
                ("tsize", "0"),
                ("windowsize", "8"),
                ("foo", "1"),
            ],
        ))
        .unwrap();
        assert_eq!(
            r,
            ReadRequest {
                path: "pxe/x.efi".into(),
                blksize: Some(1468),
                timeout: None,
                tsize: true,
                windowsize: Some(8)
            }
        );
        assert_eq!(
            parse_request(&rrq("x", "netascii", &[])).unwrap_err().code,
            ErrorCode::IllegalOperation
        );
        assert_eq!(
            parse_request(&rrq("../x", "octet", &[])).unwrap_err().code,
            ErrorCode::AccessViolation
        );
        let mut wrq = rrq("x", "octet", &[]);
        wrq[1] = 2;
        assert_eq!(
            parse_request(&wrq).unwrap_err().code,
            ErrorCode::AccessViolation
        );
        assert!(parse_request(&[0, 1, b'x']).is_err());
        assert_eq!(
            parse_request(&rrq("x", "octet", &[("blksize", "99999")]))
                .unwrap()
                .blksize,
            Some(MAX_BLKSIZE)
        );
    }

    #[test]
    fn plain_transfer_lockstep() {
        let req = parse_request(&rrq("f", "octet", &[])).unwrap();
        let (mut t, s) = Transfer::start(&req, 1024);
        // 1024 bytes at 512: blocks 1, 2 and an empty block 3.
        assert_eq!(s, Step::SendBlocks { first: 1, last: 1 });
        assert_eq!(
            t.on_datagram(&ack(1)),
            Step::SendBlocks { first: 2, last: 2 }
        );
        assert_eq!(t.on_datagram(&ack(1)), Step::Wait, "duplicate ACK ignored");
        assert_eq!(
            t.on_datagram(&ack(2)),
            Step::SendBlocks { first: 3, last: 3 }
        );
        assert_eq!(t.block_range(3), (1024, 0));
        assert_eq!(t.on_datagram(&ack(3)), Step::Done);
    }

    #[test]
    fn options_windows_and_timeouts() {
        let req = parse_request(&rrq(
            "f",
            "octet",
            &[("blksize", "1000"), ("tsize", "0"), ("windowsize", "4")],
        ))
        .unwrap();
        let (mut t, s) = Transfer::start(&req, 9500);
        let Step::Send(oack) = s else { panic!("{s:?}") };
        assert_eq!(
            oack,
            b"\x00\x06blksize\x001000\x00tsize\x009500\x00windowsize\x004\x00"
        );
        assert_eq!(
            t.on_datagram(&ack(1)),
            Step::Wait,
            "data ACK before the OACK's"
        );
        assert_eq!(
            t.on_datagram(&ack(0)),
            Step::SendBlocks { first: 1, last: 4 }
        );
        // Partial window ACK: resend from there.
        assert_eq!(
            t.on_datagram(&ack(2)),
            Step::SendBlocks { first: 3, last: 6 }
        );
        // A timeout resends only the first block not acknowledged, not the window.
        assert_eq!(t.on_timeout(&oack), Step::SendBlocks { first: 3, last: 3 });
        assert_eq!(
            t.on_datagram(&ack(6)),
            Step::SendBlocks { first: 7, last: 10 }
        );
        assert_eq!(t.block_range(10), (9000, 500));
        assert_eq!(t.on_datagram(&ack(10)), Step::Done);
        let (mut t, _) = Transfer::start(&req, 10);
        for _ in 0..MAX_RETRIES {
            assert!(matches!(t.on_timeout(&oack), Step::Send(_)));
        }
        assert!(matches!(t.on_timeout(&oack), Step::Abort(_)));
    }

    #[test]
    fn windowsize_and_timeout_are_capped() {
        let req = parse_request(&rrq(
            "f",
            "octet",
            &[
                ("blksize", "65464"),
                ("windowsize", "65535"),
                ("timeout", "255"),
            ],
        ))
        .unwrap();
        assert_eq!(req.windowsize, Some(MAX_WINDOWSIZE));
        assert_eq!(req.timeout, None, "a timeout over the cap is not accepted");
        let (mut t, s) = Transfer::start(&req, 100 << 20);
        let Step::Send(oack) = s else { panic!("{s:?}") };
        // The OACK grants the capped window and says nothing of the timeout.
        assert_eq!(oack, b"\x00\x06blksize\x0065464\x00windowsize\x0064\x00");
        assert_eq!(t.timeout, Duration::from_secs(1));
        assert_eq!(
            t.on_datagram(&ack(0)),
            Step::SendBlocks { first: 1, last: 64 }
        );
        // A peer that never answers gets one block per timeout, then nothing.
        let mut resent = 0;
        loop {
            match t.on_timeout(&oack) {
                Step::SendBlocks { first, last } => resent += last - first + 1,
                Step::Abort(_) => break,
                s => panic!("{s:?}"),
            }
        }
        assert_eq!(resent, u64::from(MAX_RETRIES));
        let ok = parse_request(&rrq("f", "octet", &[("timeout", "5")])).unwrap();
        assert_eq!(ok.timeout, Some(5));
    }

    #[test]
    fn block_numbers_roll_over() {
        let req = parse_request(&rrq("f", "octet", &[])).unwrap();
        let size = 70_000u64 * 512;
        let (mut t, _) = Transfer::start(&req, size);
        for n in 1..=70_001u64 {
            let step = t.on_datagram(&ack((n & 0xffff) as u16));
            if n == 70_001 {
                assert_eq!(step, Step::Done);
            } else {
                assert_eq!(
                    step,
                    Step::SendBlocks {
                        first: n + 1,
                        last: n + 1
                    },
                    "block {n}"
                );
            }
        }
        assert_eq!(data_header(65_536), [0, 3, 0, 0]);
    }

    proptest! {
        #[test]
        fn parser_never_panics(b in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_request(&b);
        }

        #[test]
        fn transfer_survives_any_datagrams(size in 0u64..100_000, dgrams in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..8), 0..50)) {
            let req = parse_request(&rrq("f", "octet", &[("windowsize", "3")])).unwrap();
            let (mut t, _) = Transfer::start(&req, size);
            for d in dgrams {
                if let Step::SendBlocks { first, last } = t.on_datagram(&d) {
                    prop_assert!(first >= 1 && first <= last);
                    let (start, len) = t.block_range(last);
                    prop_assert!(start + len as u64 <= size);
                }
            }
        }
    }
}
