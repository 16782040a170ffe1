//! RESTORE of crafted payloads: what an ordinary `+@write` user can send. Every checksum-valid
//! damage to a `ratelimit` value is refused with an error (or, when the damage happens to leave
//! a valid value, loads as one), and the server stays up.

mod common;

use common::{crc64, make_dump, mutate_dump, split_dump, Conn, Reply, Rng, Server};

/// The payload from the review: a valid checksum, the type id directly followed by the end
/// marker. It crashed the first release ("short read" inside the module).
const REVIEW_PAYLOAD: &[u8] =
    b"\x07\x81\xad\xab\x5e\x96\x29\xa2\xb4\x01\x00\x0a\x00\x38\x51\x72\x46\x73\xbd\xef\xca";

#[test]
fn crc64_matches_the_server() {
    let s = Server::start();
    let mut c = s.conn();
    c.allow("k", "10 1h");
    let dump = c.cmd(&["DUMP", "k"]).ok();
    let Reply::Bulk(dump) = dump else {
        panic!("{dump:?}")
    };
    let n = dump.len();
    assert_eq!(crc64(&dump[..n - 8]).to_le_bytes(), dump[n - 8..]);
    assert_eq!(crc64(b"123456789"), 0xe9c6_d914_c4b8_d9ca);
    let (body, version) = split_dump(&dump);
    assert_eq!(make_dump(&body, version), dump);
}

#[test]
fn the_reviewed_payload_is_refused_and_the_server_stays_up() {
    let s = Server::start();
    let mut admin = s.conn();
    admin
        .cmd_str("ACL SETUSER app on >pw ~user:* +@read +@write")
        .ok();
    let mut c = s.conn();
    c.cmd_str("AUTH app pw").ok();
    let r = c.cmd(&[b"RESTORE".as_slice(), b"user:x", b"0", REVIEW_PAYLOAD]);
    assert!(
        r.error().is_some_and(|e| e.starts_with("ERR")),
        "expected an error, got {r:?}"
    );
    s.assert_alive();
    assert!(!c.exists("user:x"));
    assert!(
        s.log().contains("short read of a ratelimit value"),
        "{}",
        s.log()
    );
}

/// DUMPs of a variety of real values: every algorithm, fresh and full, odd rules.
fn real_dumps(c: &mut Conn) -> Vec<Vec<u8>> {
    let calls = [
        ("a", "10 1h", 1),
        ("b", "10 1h", 10),
        ("c", "5 1m ALGO fixed-window", 3),
        ("d", "3 1s ALGO gcra", 2),
        ("e", "600000 1s ALGO gcra BURST 7 COST 7", 1),
        ("f", "9223372036854775807 365d", 1),
        ("h", "100 1h ALGO moving-window", 5),
        ("i", "7 1m ALGO limits-sliding-window COST 2", 2),
        ("g", "1 250ms ALGO fixed-window COST 1", 1),
    ];
    calls
        .iter()
        .map(|(key, args, n)| {
            for _ in 0..*n {
                c.allow(key, args);
            }
            match c.cmd(&["DUMP", key]) {
                Reply::Bulk(b) => b,
                other => panic!("DUMP {key}: {other:?}"),
            }
        })
        .collect()
}

#[test]
fn thousands_of_mutated_dumps_never_crash_the_server() {
    const MUTATIONS: usize = 4_000;
    let s = Server::start();
    let mut c = s.conn();
    let dumps = real_dumps(&mut c);
    let mut rng = Rng::from_env("thousands_of_mutated_dumps_never_crash_the_server");
    let (mut refused, mut accepted) = (0usize, Vec::new());
    for batch in 0..MUTATIONS / 100 {
        let payloads: Vec<Vec<u8>> = (0..100)
            .map(|_| {
                let d = rng.pick(&dumps).clone();
                mutate_dump(&mut rng, &d)
            })
            .collect();
        for (i, p) in payloads.iter().enumerate() {
            let key = format!("m:{batch}:{i}");
            c.send(&[b"RESTORE".as_slice(), key.as_bytes(), b"0", p])
                .unwrap();
        }
        for i in 0..payloads.len() {
            match c.read().expect("the server answers every RESTORE") {
                Reply::Status(s) if s == "OK" => accepted.push(format!("m:{batch}:{i}")),
                Reply::Error(e) => {
                    assert!(e.starts_with("ERR") || e.starts_with("BUSYKEY"), "{e}");
                    refused += 1;
                }
                other => panic!("RESTORE: {other:?}"),
            }
        }
        s.assert_alive();
    }
    eprintln!(
        "{MUTATIONS} checksum-valid mutated DUMP payloads: {refused} refused, {} loaded",
        accepted.len()
    );
    assert!(refused > MUTATIONS / 2, "too few refusals: {refused}");
    // What loaded is a valid limiter: readable, and never without a TTL (RESTORE … 0 gets the
    // TTL its state implies, or the key is gone when that state is already over).
    for key in &accepted {
        if !c.exists(key) {
            continue;
        }
        let ty = c.type_of(key);
        if ty != "ratelimit" {
            continue; // a mutation may turn the value into another valid type
        }
        assert!(c.pttl(key) > 0, "{key} has no TTL");
        assert!(c.inspect(key).is_some());
    }
    // Everything that loaded survives a save and reload unchanged (keys close to their expiry
    // are dropped first: a mutated timestamp can make a state end within milliseconds).
    let keys = c.cmd_str("KEYS *").flat();
    for key in &keys {
        let ttl = c.pttl(key);
        if (0..600_000).contains(&ttl) {
            c.del(key);
        }
    }
    let snapshot = |c: &mut Conn| {
        let mut keys = c.cmd_str("KEYS *").flat();
        keys.sort();
        keys.into_iter()
            .map(|k| {
                let v = (c.digest_value(&k), c.pexpiretime(&k), c.type_of(&k));
                (k, v)
            })
            .collect::<Vec<_>>()
    };
    let before = snapshot(&mut c);
    c.cmd_str("DEBUG RELOAD").ok();
    let after = snapshot(&mut c);
    let differing: Vec<_> = before.iter().filter(|kv| !after.contains(kv)).collect();
    assert!(differing.is_empty(), "changed by a reload: {differing:?}");
    assert_eq!(before.len(), after.len());
    s.assert_alive();
}

/// Anyone allowed to RESTORE can send refused payloads at will: the log gets at most one
/// warning line a minute for them (README, Trust). A refused value while *loading* a dataset,
/// which stops the load, is always logged — also right after a flood of refused RESTOREs.
#[test]
fn refused_restores_cannot_flood_the_log() {
    const ATTEMPTS: usize = 3_000;
    let mut s = Server::start_with(&[("rdbcompression", "no")]);
    let mut c = s.conn();
    let dumps = real_dumps(&mut c);
    let mut rng = Rng::from_env("refused_restores_cannot_flood_the_log");
    let lines = |s: &Server| s.log().lines().filter(|l| l.contains("ratelimit:")).count();
    let before = lines(&s);
    let mut refused = 0;
    for batch in 0..ATTEMPTS / 100 {
        for i in 0..100 {
            let d = rng.pick(&dumps).clone();
            let p = mutate_dump(&mut rng, &d);
            let key = format!("f:{batch}:{i}");
            c.send(&[b"RESTORE".as_slice(), key.as_bytes(), b"0", &p])
                .unwrap();
        }
        for _ in 0..100 {
            if let Reply::Error(_) = c.read().unwrap() {
                refused += 1;
            }
        }
    }
    // The review's short read too (a module line of its own kind).
    for _ in 0..100 {
        let r = c.cmd(&[b"RESTORE".as_slice(), b"f:short", b"0", REVIEW_PAYLOAD]);
        assert!(r.error().is_some());
    }
    s.assert_alive();
    let written = lines(&s) - before;
    eprintln!("{refused} refused RESTOREs (+100 short reads) wrote {written} log lines");
    assert!(refused > ATTEMPTS / 2, "{refused}");
    // One for the first refusal; a second only if the loop straddled a minute.
    assert!((1..=2).contains(&written), "{written} lines:\n{}", s.log());
    assert!(s.log().contains("(RESTORE)"), "{}", s.log());

    // Now a dataset load in the same process meets a refused value: that line is written.
    c.cmd_str("FLUSHALL").ok();
    c.allow("a", "10 1h");
    c.cmd_str("SAVE").ok();
    let path = s.dir().join("dump.rdb");
    let mut rdb = std::fs::read(&path).unwrap();
    // The value's payload: a string of 17..40 bytes starting with version 2, oldest reader 2,
    // tag 1 (sliding-window); make its tag unknown, and zero the checksum (not verified then).
    let at = (17..40u8)
        .find_map(|len| rdb.windows(5).position(|w| w == [5, len, 2, 2, 1]))
        .expect("the payload in the uncompressed dump");
    rdb[at + 4] = 99;
    let n = rdb.len();
    rdb[n - 8..].fill(0);
    std::fs::write(&path, &rdb).unwrap();
    // The load stops at the refused value: DEBUG RELOAD answers an error (Redis 7.0 keeps
    // running on an empty dataset) or the server exits; either way the line is there.
    c.send(&["DEBUG", "RELOAD", "NOSAVE"]).unwrap();
    match c.read() {
        Ok(Reply::Error(e)) => eprintln!("DEBUG RELOAD NOSAVE: {e}"),
        Ok(other) => panic!("a refused value loaded: {other:?}"),
        Err(e) => eprintln!("DEBUG RELOAD NOSAVE: the server closed the connection ({e})"),
    }
    let log = s.log();
    let load_line = log
        .lines()
        .rev()
        .find(|l| l.contains("invalid ratelimit value"))
        .unwrap_or_else(|| panic!("no line for the refused load:\n{log}"));
    assert!(!load_line.contains("(RESTORE)"), "{load_line}");
    assert!(load_line.contains(" # "), "at warning level: {load_line}");
    s.kill();
}
