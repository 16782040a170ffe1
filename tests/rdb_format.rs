//! The RDB encoding is versioned and checked: a dump whose `ratelimit` values carry a newer
//! encoding version, or a damaged value, stops the load (logged) instead of being misread.

mod common;

use std::fs;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{module_path, server_bin, Server};

/// The 64-bit module type id the server writes before each value: the nine-character type name
/// in 6-bit symbols, then the 10-bit encoding version.
fn module_type_id(name: &str, encver: u64) -> u64 {
    const CHARSET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut id = 0u64;
    for c in name.bytes() {
        id = (id << 6) | CHARSET.iter().position(|&x| x == c).unwrap() as u64;
    }
    (id << 10) | encver
}

/// Saves a dump holding one key per algorithm and returns its bytes.
fn dump_with_every_algorithm() -> Vec<u8> {
    // Uncompressed, so that the test can find the values' bytes.
    let server = Server::start_with(&[("rdbcompression", "no")]);
    let mut c = server.conn();
    c.allow("a", "10 1h");
    c.allow("b", "10 1h ALGO fixed-window");
    c.allow("c", "10 1h ALGO gcra BURST 20");
    c.cmd(&["SAVE"]).ok();
    fs::read(server.dir().join("dump.rdb")).unwrap()
}

fn replace_all(haystack: &mut [u8], from: &[u8], to: &[u8]) -> usize {
    assert_eq!(from.len(), to.len());
    let mut n = 0;
    let mut i = 0;
    while i + from.len() <= haystack.len() {
        if &haystack[i..i + from.len()] == from {
            haystack[i..i + to.len()].copy_from_slice(to);
            n += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    n
}

/// Starts a server on `dump` and returns (it exited by itself before it was ready, its log).
fn load(dump: &[u8]) -> (bool, String) {
    let (status, log) = load_with_status(dump, true);
    (status.is_some(), log)
}

/// Starts a server on `dump` (its checksum zeroed when `zero_checksum`, so that edited bytes
/// load) and returns its exit status if it exited by itself before it was ready, and its log.
fn load_with_status(
    dump: &[u8],
    zero_checksum: bool,
) -> (Option<std::process::ExitStatus>, String) {
    static RUN: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "rl-rdb-format-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let mut dump = dump.to_vec();
    // A zero checksum tells the server not to verify it (we changed bytes on purpose).
    let len = dump.len();
    if zero_checksum {
        dump[len - 8..].fill(0);
    }
    fs::write(dir.join("dump.rdb"), &dump).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = dir.join("log");
    let mut child = Command::new(server_bin())
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .arg("--dir")
        .arg(&dir)
        .arg("--logfile")
        .arg(&log)
        .arg("--loadmodule")
        .arg(module_path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let exited = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        let ready = fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("Ready to accept connections");
        if ready || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        sleep(Duration::from_millis(20));
    };
    let text = fs::read_to_string(&log).unwrap_or_default();
    let _ = fs::remove_dir_all(&dir);
    (exited, text)
}

fn assert_refused(exited: bool, log: &str, expect: &str) {
    assert!(
        exited,
        "the server kept running on a dump it cannot read; log:\n{log}"
    );
    assert!(log.contains(expect), "log lacks {expect:?}:\n{log}");
    assert!(
        !log.contains("Ready to accept connections"),
        "the server came up; log:\n{log}"
    );
}

#[test]
fn unchanged_dump_loads() {
    let (exited, log) = load(&dump_with_every_algorithm());
    assert!(!exited, "a good dump must load; log:\n{log}");
    assert!(log.contains("Ready to accept connections"), "{log}");
}

/// Rewrites every ratelimit value's encoding version (in its type id) from `from` to `to`.
fn set_encoding_version(dump: &mut [u8], from: u64, to: u64) {
    let a = module_type_id("ratelimit", from).to_be_bytes();
    let b = module_type_id("ratelimit", to).to_be_bytes();
    assert_eq!(replace_all(dump, &a, &b), 3, "one type id per key");
}

/// Rewrites every value's payload header (string opcode 5, length, version, oldest reader,
/// tag) — the payloads are short, so their length is one byte.
fn set_payload_header(dump: &mut [u8], from: [u8; 2], to: [u8; 2]) {
    let mut found = 0;
    for len in 8..64u8 {
        for tag in 1..=3u8 {
            found += replace_all(
                dump,
                &[5, len, from[0], from[1], tag],
                &[5, len, to[0], to[1], tag],
            );
        }
    }
    assert_eq!(found, 3, "one payload per key");
}

#[test]
fn newer_version_that_needs_a_newer_reader_is_refused() {
    let mut dump = dump_with_every_algorithm();
    set_encoding_version(&mut dump, 2, 3);
    // (Payload version 3 is this release's, for blocks and debts: the later one is 4.)
    set_payload_header(&mut dump, [2, 2], [4, 4]);
    let (exited, log) = load(&dump);
    assert_refused(exited, &log, "encoding version 3");
    assert!(log.contains("upgrade the module"), "{log}");
}

#[test]
fn newer_version_readable_by_this_one_loads() {
    // Forward compatibility: a later release's value that declares itself readable here.
    let mut dump = dump_with_every_algorithm();
    set_encoding_version(&mut dump, 2, 3);
    set_payload_header(&mut dump, [2, 2], [4, 2]);
    let (exited, log) = load(&dump);
    assert!(!exited, "a readable later version must load; log:\n{log}");
    assert!(log.contains("Ready to accept connections"), "{log}");
}

#[test]
fn damaged_value_is_refused() {
    let mut dump = dump_with_every_algorithm();
    // An unknown algorithm tag in every value.
    let mut found = 0;
    for len in 8..64u8 {
        for tag in 1..=3u8 {
            found += replace_all(&mut dump, &[5, len, 2, 2, tag], &[5, len, 2, 2, 9]);
        }
    }
    assert_eq!(found, 3);
    let (status, log) = load_with_status(&dump, true);
    assert_refused(status.is_some(), &log, "invalid ratelimit value");
    // What a supervisor sees (README, Persistence): the server runs its own RDB check, which
    // cannot read module values and finds the file sound, and exits with status 0 — no signal.
    use std::os::unix::process::ExitStatusExt;
    let status = status.unwrap();
    assert_eq!(status.signal(), None, "{log}");
    eprintln!("refused value: exit status {:?}", status.code());
    assert_eq!(status.code(), Some(0), "{log}");
}

#[test]
fn truncated_dump_is_refused_cleanly() {
    use std::os::unix::process::ExitStatusExt;
    let dump = dump_with_every_algorithm();
    // Cut inside each value's payload: the module's read comes up short. The first release
    // aborted the server there (SIGABRT); now the module reports it and the server exits 1.
    let mut cuts = 0;
    for len in 8..64u8 {
        for tag in 1..=3u8 {
            let pattern = [5, len, 2, 2, tag];
            if let Some(at) = dump.windows(5).position(|w| w == pattern) {
                cuts += 1;
                let cut = &dump[..at + 5 + usize::from(len) / 2];
                let (status, log) = load_with_status(cut, false);
                let status = status.unwrap_or_else(|| panic!("a truncated dump loaded:\n{log}"));
                assert_eq!(status.signal(), None, "killed by a signal; log:\n{log}");
                assert_eq!(status.code(), Some(1), "log:\n{log}");
                assert!(log.contains("short read of a ratelimit value"), "{log}");
            }
        }
    }
    assert_eq!(cuts, 3, "one cut per value");
}

#[test]
fn module_type_id_matches_the_server() {
    // Guards the helper above: the id of encoding 2 occurs in a real dump.
    let dump = dump_with_every_algorithm();
    let v2 = module_type_id("ratelimit", 2).to_be_bytes();
    assert!(dump.windows(8).any(|w| w == v2));
    assert!(Path::new(&module_path()).is_file());
}
