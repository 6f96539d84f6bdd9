//! TFTP against tftp-hpa, curl and atftp on 127.0.0.1.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use rack::metrics::Metrics;
use rack::tftp::{self, FileSource, Sent};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

struct Server {
    port: u16,
    sent: Arc<Mutex<Vec<Sent>>>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
    root: tempfile::TempDir,
}

async fn start() -> Server {
    start_with(tftp::Limits::default()).await
}

async fn start_with(limits: tftp::Limits) -> Server {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::write(r.join("small.bin"), b"hello from kiln\n").unwrap();
    let big: Vec<u8> = (0..1_048_576u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(r.join("big.bin"), &big).unwrap();
    std::fs::create_dir(r.join("pxe")).unwrap();
    std::fs::write(r.join("pxe/exact.bin"), vec![7u8; 1024]).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", r.join("escape")).unwrap();
    let sock = tftp::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = sock.local_addr().unwrap().port();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let metrics = Arc::new(Metrics::default());
    let cancel = CancellationToken::new();
    let s2 = sent.clone();
    tokio::spawn(tftp::serve(
        sock,
        Arc::new(FileSource::new(vec![r.to_path_buf()])),
        limits,
        metrics.clone(),
        Arc::new(move |s| s2.lock().unwrap().push(s)),
        cancel.clone(),
    ));
    Server {
        port,
        sent,
        metrics,
        cancel,
        root,
    }
}

fn sha(p: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(p).unwrap()))
}

async fn run(cmd: &mut Command) -> std::process::Output {
    let mut c = tokio::process::Command::from(std::mem::replace(cmd, Command::new("true")));
    c.output().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tftp_with_real_clients() {
    // Every client here comes from 127.0.0.1, 50 of them at once below.
    let s = start_with(tftp::Limits {
        max_transfers: 1024,
        per_client: 64,
    })
    .await;
    let out = tempfile::tempdir().unwrap();
    let o = out.path();
    let port = s.port.to_string();
    let want_big = sha(&s.root.path().join("big.bin"));

    // tftp-hpa: plain RFC 1350 (512-byte blocks, no options), a path with a leading slash.
    let r = run(Command::new("tftp").args([
        "-m",
        "binary",
        "127.0.0.1",
        &port,
        "-c",
        "get",
        "/big.bin",
        o.join("hpa.bin").to_str().unwrap(),
    ]))
    .await;
    assert!(r.status.success(), "{r:?}");
    assert_eq!(sha(&o.join("hpa.bin")), want_big);
    // A file whose size is a multiple of the block size ends with an empty block.
    let r = run(Command::new("tftp").args([
        "-m",
        "binary",
        "127.0.0.1",
        &port,
        "-c",
        "get",
        "pxe/exact.bin",
        o.join("exact.bin").to_str().unwrap(),
    ]))
    .await;
    assert!(r.status.success(), "{r:?}");
    assert_eq!(std::fs::read(o.join("exact.bin")).unwrap().len(), 1024);

    // curl at default and large blksize.
    for bs in ["512", "1468", "8192"] {
        let f = o.join(format!("curl-{bs}.bin"));
        let r = run(Command::new("curl").args([
            "-sS",
            "--tftp-blksize",
            bs,
            &format!("tftp://127.0.0.1:{port}/big.bin"),
            "-o",
            f.to_str().unwrap(),
        ]))
        .await;
        assert!(
            r.status.success(),
            "blksize {bs}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        assert_eq!(sha(&f), want_big, "blksize {bs}");
    }
    // atftp with windowsize (RFC 7440), blksize and tsize.
    let f = o.join("atftp.bin");
    let r = run(Command::new("atftp").args([
        "--option",
        "windowsize 8",
        "--option",
        "blksize 1400",
        "--option",
        "tsize",
        "-g",
        "-r",
        "big.bin",
        "-l",
        f.to_str().unwrap(),
        "127.0.0.1",
        &port,
    ]))
    .await;
    assert!(r.status.success(), "{r:?}");
    assert_eq!(sha(&f), want_big);

    // Refused: traversal, missing files, a symlink out of the root, writes.
    for (name, why) in [
        ("../etc/passwd", "'..'"),
        ("nothere.bin", "not found"),
        ("escape", "not found"),
    ] {
        let r = run(Command::new("tftp").args([
            "-m",
            "binary",
            "127.0.0.1",
            &port,
            "-c",
            "get",
            name,
            o.join("x").to_str().unwrap(),
        ]))
        .await;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&r.stdout),
            String::from_utf8_lossy(&r.stderr)
        );
        assert!(text.contains(why), "{name}: {text}");
    }
    let r = run(Command::new("tftp").args([
        "-m",
        "binary",
        "127.0.0.1",
        &port,
        "-c",
        "put",
        s.root.path().join("small.bin").to_str().unwrap(),
        "up.bin",
    ]))
    .await;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(text.contains("writes"), "{text}");
    assert!(!s.root.path().join("up.bin").exists());
    assert!(s.metrics.get("tftp_refused") >= 2);

    // 50 clients at once, each gets the whole file intact.
    let mut jobs = Vec::new();
    for i in 0..50 {
        let f = o.join(format!("par-{i}.bin"));
        let url = format!("tftp://127.0.0.1:{port}/big.bin");
        jobs.push(tokio::spawn(async move {
            let r = tokio::process::Command::new("curl")
                .args([
                    "-sS",
                    "--tftp-blksize",
                    "1468",
                    &url,
                    "-o",
                    f.to_str().unwrap(),
                ])
                .output()
                .await
                .unwrap();
            assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
            f
        }));
    }
    for j in jobs {
        let f = j.await.unwrap();
        assert_eq!(sha(&f), want_big);
    }
    let sent = s.sent.lock().unwrap();
    assert!(
        sent.iter()
            .filter(|x| x.path == "big.bin" && x.size == 1_048_576)
            .count()
            >= 55,
        "{}",
        sent.len()
    );
    s.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_datagrams_are_dropped_and_counted() {
    let s = start().await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for junk in [
        &b""[..],
        b"\x00",
        b"\x00\x01",
        b"\x00\x09abc\x00",
        b"\x00\x01\xff\xfe\x00octet\x00",
        &[0u8; 1500][..],
    ] {
        sock.send_to(junk, ("127.0.0.1", s.port)).await.unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(s.metrics.get("tftp_refused") >= 5, "{}", s.metrics.render());
    // Still serving.
    let out = tempfile::tempdir().unwrap();
    let f = out.path().join("small.bin");
    let r = tokio::process::Command::new("curl")
        .args([
            "-sS",
            &format!("tftp://127.0.0.1:{}/small.bin", s.port),
            "-o",
            f.to_str().unwrap(),
        ])
        .output()
        .await
        .unwrap();
    assert!(r.status.success());
    assert_eq!(std::fs::read(&f).unwrap(), b"hello from kiln\n");
    s.cancel.cancel();
}

/// Sends a read request for `file` from `from` and returns the socket and the first reply's opcode
/// and text (the transfer, if it started, is left unacknowledged: it holds its slot).
async fn rrq_from(from: &str, port: u16, file: &str) -> (tokio::net::UdpSocket, u16, String) {
    let sock = tokio::net::UdpSocket::bind((from, 0)).await.unwrap();
    let mut p = vec![0, 1];
    p.extend_from_slice(file.as_bytes());
    p.extend_from_slice(b"\0octet\0");
    sock.send_to(&p, ("127.0.0.1", port)).await.unwrap();
    let mut buf = vec![0u8; 2048];
    let (n, _) = tokio::time::timeout(std::time::Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .expect("no reply")
        .unwrap();
    let op = u16::from_be_bytes([buf[0], buf[1]]);
    let text = String::from_utf8_lossy(&buf[4..n]).into_owned();
    (sock, op, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_over_the_caps_are_refused_with_an_error() {
    let s = start_with(tftp::Limits {
        max_transfers: 3,
        per_client: 2,
    })
    .await;
    // Two stalled transfers to 127.0.0.2: its third request is over the per-client cap.
    let (_a1, op, _) = rrq_from("127.0.0.2", s.port, "big.bin").await;
    assert_eq!(op, 3, "DATA");
    let (_a2, op, _) = rrq_from("127.0.0.2", s.port, "big.bin").await;
    assert_eq!(op, 3);
    let (_a3, op, text) = rrq_from("127.0.0.2", s.port, "big.bin").await;
    assert_eq!((op, text.contains("busy")), (5, true), "{text}");
    // A third stalled transfer, from elsewhere: the service is at its cap for everyone.
    let (_b1, op, _) = rrq_from("127.0.0.3", s.port, "big.bin").await;
    assert_eq!(op, 3);
    let out = tempfile::tempdir().unwrap();
    let f = out.path().join("small.bin");
    let r = run(Command::new("tftp").args([
        "-m",
        "binary",
        "127.0.0.1",
        &s.port.to_string(),
        "-c",
        "get",
        "small.bin",
        f.to_str().unwrap(),
    ]))
    .await;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(
        said.contains("server busy"),
        "tftp-hpa was not refused: {said}"
    );
    assert_eq!(s.metrics.get("tftp_refused_busy"), 2);
    // The stalled transfers give up (1 s timeout, 5 retries) and free their slots.
    tokio::time::sleep(std::time::Duration::from_secs(8)).await;
    let r = run(Command::new("curl").args([
        "-sS",
        &format!("tftp://127.0.0.1:{}/small.bin", s.port),
        "-o",
        f.to_str().unwrap(),
    ]))
    .await;
    assert!(r.status.success(), "{r:?}");
    assert_eq!(std::fs::read(&f).unwrap(), b"hello from kiln\n");
    s.cancel.cancel();
}
