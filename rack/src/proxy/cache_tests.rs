//! The cache against real files in a temporary directory.

use std::io::{Read, Write};

use super::cache::{Cache, Meta, ENTRY_OVERHEAD};

fn meta(size: usize) -> Meta {
    Meta {
        url: "http://deb.example/x.deb".into(),
        headers: Default::default(),
        size: size as u64,
        body: String::new(),
    }
}

fn put(c: &Cache, key: &str, bytes: &[u8]) {
    let mut t = tempfile::Builder::new()
        .suffix(".tmp")
        .tempfile_in(&c.dir)
        .unwrap();
    t.write_all(bytes).unwrap();
    c.store(key, meta(bytes.len()), t).unwrap();
}

fn read(c: &Cache, key: &str) -> Option<Vec<u8>> {
    let (m, mut f) = c.get(key)?;
    let mut b = Vec::new();
    f.read_to_end(&mut b).unwrap();
    assert_eq!(
        b.len() as u64,
        m.size,
        "the meta describes the body it names"
    );
    Some(b)
}

#[test]
fn a_replaced_response_stays_whole_for_the_reader_that_has_it() {
    let d = tempfile::tempdir().unwrap();
    let c = Cache::open(d.path(), 1 << 20).unwrap();
    put(&c, "k", &[1u8; 1000]);
    let (m, mut old) = c.get("k").unwrap();
    put(&c, "k", &[2u8; 10]);
    let mut b = Vec::new();
    old.read_to_end(&mut b).unwrap();
    assert_eq!((m.size, b), (1000, vec![1u8; 1000]));
    assert_eq!(read(&c, "k").unwrap(), vec![2u8; 10]);
    // One body on disk for the key: the replaced one is gone.
    let bodies = std::fs::read_dir(d.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".body"))
        .count();
    assert_eq!(bodies, 1);
}

#[test]
fn concurrent_stores_of_one_key_never_mix_meta_and_body() {
    let d = tempfile::tempdir().unwrap();
    let c = std::sync::Arc::new(Cache::open(d.path(), 64 << 20).unwrap());
    let threads: Vec<_> = (1..=8u8)
        .map(|i| {
            let c = c.clone();
            std::thread::spawn(move || {
                for _ in 0..20 {
                    put(&c, "same", &vec![i; usize::from(i) * 1000]);
                    read(&c, "same").unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let b = read(&c, "same").unwrap();
    assert!(b.iter().all(|x| *x == b[0]) && b.len() == usize::from(b[0]) * 1000);
    // After a restart the same single, consistent copy is found.
    drop(c);
    let c = Cache::open(d.path(), 64 << 20).unwrap();
    assert_eq!(read(&c, "same").unwrap(), b);
}

#[test]
fn empty_responses_still_cost_room() {
    let d = tempfile::tempdir().unwrap();
    let c = Cache::open(d.path(), 3 * ENTRY_OVERHEAD).unwrap();
    for i in 0..10 {
        put(&c, &format!("e{i}"), b"");
    }
    assert_eq!(c.keys(), vec!["e7", "e8", "e9"]);
    let metas = std::fs::read_dir(d.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".meta"))
        .count();
    assert_eq!(metas, 3);
}

#[test]
fn reopening_drops_orphans_leftovers_and_old_format_entries() {
    let d = tempfile::tempdir().unwrap();
    let c = Cache::open(d.path(), 1 << 20).unwrap();
    put(&c, "good", b"hello");
    drop(c);
    let p = d.path();
    std::fs::write(p.join("orphan.1a.body"), b"no meta names me").unwrap();
    std::fs::write(p.join("half.tmp"), b"cut short").unwrap();
    // A meta of the first format (no body name) and its body.
    std::fs::write(
        p.join("old.meta"),
        br#"{"url":"http://x/","headers":{},"size":3}"#,
    )
    .unwrap();
    std::fs::write(p.join("old.body"), b"abc").unwrap();
    // A meta naming a body outside its key.
    std::fs::write(
        p.join("evil.meta"),
        br#"{"url":"http://x/","headers":{},"size":5,"body":"../../etc/passwd"}"#,
    )
    .unwrap();
    let c = Cache::open(p, 1 << 20).unwrap();
    assert_eq!(c.keys(), vec!["good"]);
    assert_eq!(read(&c, "good").unwrap(), b"hello");
    let mut left: Vec<String> = std::fs::read_dir(p)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("good."))
        .collect();
    left.sort();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_body_deleted_behind_the_cache_is_a_miss() {
    let d = tempfile::tempdir().unwrap();
    let c = Cache::open(d.path(), 1 << 20).unwrap();
    put(&c, "k", b"data");
    for e in std::fs::read_dir(d.path()).unwrap().flatten() {
        if e.file_name().to_string_lossy().ends_with(".body") {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    assert!(c.get("k").is_none());
    assert!(c.keys().is_empty());
}
