//! The memory layout of limiter keys on real servers: counter states packed into the value word
//! (nothing allocated), larger ones in a 16-byte block, the rest boxed; the shared rule table
//! those name, released on every path a key can leave by (DEL, UNLINK, FLUSHALL ASYNC on the
//! lazyfree thread, expiry, overwrite), and a full table falling back to the heap.

mod common;

use std::time::Duration;

use common::{assert_between, info_field, wait_until, Conn, Server};

/// Sends `cmds` (each a whitespace-separated line with `{}` for the key) for keys
/// `prefix0..prefixN` in one pipeline and checks no reply is an error.
fn fill(c: &mut Conn, prefix: &str, n: usize, cmds: &[&str]) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(1_000) {
        let mut sent = 0;
        for &i in chunk {
            let key = format!("{prefix}{i:08}");
            for cmd in cmds {
                let line = cmd.replace("{}", &key);
                let args: Vec<&str> = line.split_whitespace().collect();
                c.send(&args).unwrap();
                sent += 1;
            }
        }
        for _ in 0..sent {
            let r = c.read().unwrap();
            assert!(r.error().is_none(), "{cmds:?}: {r:?}");
        }
    }
}

fn used_memory(c: &mut Conn) -> i64 {
    info_field(&c.info("memory"), "used_memory")
        .unwrap()
        .parse()
        .unwrap()
}

fn memory_usage(c: &mut Conn, key: &str) -> i64 {
    c.cmd(&["MEMORY", "USAGE", key]).int()
}

/// Real bytes per key of `N` keys written by `cmds`.
fn bytes_per_key(c: &mut Conn, cmds: &[&str]) -> i64 {
    const N: usize = 20_000;
    c.cmd_str("FLUSHALL SYNC").ok();
    let before = used_memory(c);
    fill(c, "m:user:", N, cmds);
    assert_eq!(c.cmd_str("DBSIZE").int(), N as i64, "{cmds:?}");
    (used_memory(c) - before) / N as i64
}

/// Counter keys under usual rules, and a one-entry moving-window key, cost what any key with a
/// TTL costs the server plus its object headers (robj and module value, 32 bytes on Redis 7.0):
/// their state is packed into the value word. `MEMORY USAGE` reports what each form allocates.
#[test]
fn counter_keys_allocate_nothing_beyond_the_server() {
    let s = Server::start();
    let mut c = s.conn();
    c.cmd_str("DEBUG SET-ACTIVE-EXPIRE 0").ok();
    fill(&mut c, "warm:", 20_000, &["SET {} 1"]);
    let string = bytes_per_key(&mut c, &["SET {} 1 PX 3600000"]);
    for rule in [
        "100 1h",
        "10 1s",
        "1000 1d",
        "100 1h ALGO fixed-window",
        "10 1s ALGO fixed-window",
        "1000 1d ALGO fixed-window",
        "100 1h ALGO gcra",
        "100 1h ALGO gcra BURST 10",
        "10 1s ALGO gcra",
        "1000 1d ALGO gcra",
        "100 1h ALGO moving-window",
        "100 1h ALGO limits-sliding-window",
    ] {
        let cmd = format!("RL.ALLOW {{}} {rule}");
        let per_key = bytes_per_key(&mut c, &[cmd.as_str()]);
        assert!(
            per_key <= string + 40,
            "{rule}: {per_key} B per key, a string with a TTL {string}"
        );
    }
    let two_runs = bytes_per_key(
        &mut c,
        &[
            "RL.ALLOW {} 100 1h ALGO moving-window",
            "RL.ALLOW {} 100 1h ALGO moving-window COST 2",
        ],
    );
    assert!(
        two_runs > string + 64,
        "a log of two runs is boxed: {two_runs}"
    );

    // MEMORY USAGE: the word allocates nothing, a block 16 bytes (its allocator's size), a box
    // at least the 64-byte limiter.
    c.cmd_str("FLUSHALL SYNC").ok();
    c.allow("form:aaa:word", "100 1h ALGO fixed-window");
    c.allow("form:aaa:blok", "10000 1d ALGO fixed-window");
    c.allow("form:aaa:boxd", "100 1h ALGO moving-window");
    c.allow("form:aaa:boxd", "100 1h ALGO moving-window COST 2");
    c.allow("form:aaa:wor2", "1000 1d ALGO gcra");
    let word = memory_usage(&mut c, "form:aaa:word");
    assert_eq!(memory_usage(&mut c, "form:aaa:wor2"), word);
    let block = memory_usage(&mut c, "form:aaa:blok") - word;
    assert!(block == 16 || block == 24, "a block's usable size: {block}");
    assert!(memory_usage(&mut c, "form:aaa:boxd") - word >= 64);
    s.assert_alive();
}

/// Each form survives COPY, DEBUG RELOAD and moves between forms with rule changes, with the
/// state, digest and TTL of the key unchanged by the layout.
#[test]
fn every_form_copies_reloads_and_converts() {
    let s = Server::start();
    let mut c = s.conn();
    let keys = [
        ("word", "100 1h ALGO fixed-window"),
        ("block", "10000 1d ALGO fixed-window"),
        ("gcra-block", "100000 1d ALGO gcra"),
        ("box", "100 1h ALGO moving-window"),
    ];
    for (key, rule) in keys {
        c.allow(key, &format!("{rule} COST 40"));
    }
    c.allow("box", "100 1h ALGO moving-window COST 2");
    let entries = c.stat("rule_table_entries");
    assert!(entries >= 3, "{entries}");
    for (key, rule) in keys {
        let copy = format!("{key}:copy");
        assert_eq!(c.cmd(&["COPY", key, copy.as_str()]).int(), 1);
        assert_eq!(c.digest_value(key), c.digest_value(&copy), "{key}");
        let strip = |m: Option<std::collections::BTreeMap<String, String>>| {
            m.map(|mut m| {
                m.remove("now_us");
                m
            })
        };
        assert_eq!(strip(c.inspect(key)), strip(c.inspect(&copy)), "{key}");
        assert_eq!(c.del(key), 1);
        let r = c.allow(&copy, rule);
        let limit: i64 = rule.split(' ').next().unwrap().parse().unwrap();
        let expected = if key == "box" { limit - 43 } else { limit - 41 };
        // gcra refills a cell every 864 ms meanwhile.
        assert_between(r.remaining, expected, expected + 2, key);
    }
    // Lowering the limit below the count moves a word state to the heap; DEBUG RELOAD and a
    // new key of each form keep every state and TTL.
    let r = c.allow("word:copy", "10 1h ALGO fixed-window");
    assert!(!r.allowed);
    assert_eq!(c.inspect_int("word:copy", "count"), 41);
    let before = s.digest();
    let ttls: Vec<i64> = keys
        .iter()
        .map(|(k, _)| c.pexpiretime(format!("{k}:copy")))
        .collect();
    c.cmd_str("DEBUG RELOAD").ok();
    assert_eq!(s.digest(), before);
    for ((k, _), ttl) in keys.iter().zip(ttls) {
        assert_eq!(c.pexpiretime(format!("{k}:copy")), ttl);
    }
    c.cmd_str("FLUSHALL SYNC").ok();
    assert_eq!(c.stat("rule_table_entries"), 0);
    s.assert_alive();
}

/// Every way a key can go releases its rule table entry, also when the server frees values on
/// its lazyfree thread while the main thread creates keys of the same rules.
#[test]
fn rule_table_entries_are_released_on_every_path() {
    let s = Server::start_with(&[
        ("lazyfree-lazy-user-del", "yes"),
        ("lazyfree-lazy-expire", "yes"),
        ("lazyfree-lazy-server-del", "yes"),
    ]);
    let mut c = s.conn();
    let rules: Vec<String> = (0..50)
        .map(|i| match i % 4 {
            0 => format!("RL.ALLOW {{}} {} 1h", 100 + i),
            1 => format!("RL.ALLOW {{}} {} 1h ALGO fixed-window", 100 + i),
            2 => format!("RL.ALLOW {{}} {} 1h ALGO gcra", 100 + i),
            _ => format!("RL.ALLOW {{}} {} 1h ALGO moving-window", 100 + i),
        })
        .collect();
    let rules: Vec<&str> = rules.iter().map(String::as_str).collect();
    for round in 0..20 {
        for (i, rule) in rules.iter().enumerate() {
            fill(&mut c, &format!("r{round}:{i}:"), 100, &[rule]);
        }
        // Freed on the lazyfree thread while the next round creates keys.
        c.cmd_str("FLUSHALL ASYNC").ok();
    }
    for (i, rule) in rules.iter().enumerate() {
        fill(&mut c, &format!("last:{i}:"), 50, &[rule]);
    }
    assert!(c.stat("rule_table_entries") > 0);
    // DEL, UNLINK, overwrite, RENAME over a key, expiry: each releases.
    for i in 0..50 {
        let key = format!("last:{i}:{:08}", 0);
        assert_eq!(c.cmd(&["DEL", key.as_str()]).int(), 1);
        let key = format!("last:{i}:{:08}", 1);
        assert_eq!(c.cmd(&["UNLINK", key.as_str()]).int(), 1);
        let key = format!("last:{i}:{:08}", 2);
        c.cmd(&["SET", key.as_str(), "x"]).ok();
        let (from, to) = (format!("last:{i}:{:08}", 3), format!("last:{i}:{:08}", 4));
        c.cmd(&["RENAME", from.as_str(), to.as_str()]).ok();
    }
    fill(
        &mut c,
        "short:",
        1_000,
        &["RL.ALLOW {} 5 20ms ALGO fixed-window"],
    );
    c.cmd_str("FLUSHALL ASYNC").ok();
    fill(&mut c, "short:", 1_000, &["RL.ALLOW {} 5 20ms ALGO gcra"]);
    wait_until(Duration::from_secs(10), "short keys to expire", || {
        std::thread::sleep(Duration::from_millis(50));
        c.cmd_str("DBSIZE").int() == 0
    });
    wait_until(
        Duration::from_secs(10),
        "every entry to be released",
        || c.stat("rule_table_entries") == 0,
    );
    s.assert_alive();
}

/// More rules alive at once than the table holds: keys beyond it stay on the heap, correct.
#[test]
fn a_full_rule_table_falls_back_to_the_heap() {
    let s = Server::start();
    let mut c = s.conn();
    const RULES: usize = 70_000;
    for chunk in (0..RULES).collect::<Vec<_>>().chunks(1_000) {
        for &i in chunk {
            let key = format!("k:{i}");
            let limit = (10 + i).to_string();
            c.send(&[
                "RL.ALLOW",
                key.as_str(),
                limit.as_str(),
                "1h",
                "ALGO",
                "fixed-window",
            ])
            .unwrap();
        }
        for _ in chunk {
            assert!(c.read().unwrap().error().is_none());
        }
    }
    let entries = c.stat("rule_table_entries");
    assert!((60_000..=65_536).contains(&entries), "{entries}");
    let bytes = c.stat("rule_table_bytes");
    eprintln!("a full rule table: {entries} entries, {bytes} bytes");
    assert!(bytes < 12 << 20, "{bytes}");
    for i in [0, 1, 65_535, 65_536, 69_999] {
        let r = c.allow(
            format!("k:{i}"),
            &format!("{} 1h ALGO fixed-window", 10 + i),
        );
        assert_eq!(r.remaining, 10 + i as i64 - 2, "k:{i}");
    }
    c.cmd_str("FLUSHALL SYNC").ok();
    assert_eq!(c.stat("rule_table_entries"), 0);
    // The table serves again.
    c.allow("again", "10 1h");
    assert_eq!(c.stat("rule_table_entries"), 1);
    s.assert_alive();
}

/// The forms of the newer commands: a gcra debt (`RL.CHARGE` past the capacity) packs like any
/// gcra state; a counter in debt (its count above the limit), a key under a penalty block
/// (`BLOCK`) and a key of leases are boxed. `MEMORY USAGE` reports what each allocates, and a
/// key whose debt or block is over is back in the value word after its next write.
#[test]
fn debts_blocks_and_leases_report_what_they_allocate() {
    // Key names of one length: MEMORY USAGE counts the name too.
    let s = Server::start();
    let mut c = s.conn();
    c.allow("plain0", "100 1h ALGO fixed-window");
    let word = memory_usage(&mut c, "plain0");
    c.allow("gcra00", "100 1h ALGO gcra");
    assert_eq!(memory_usage(&mut c, "gcra00"), word);

    // A gcra debt: still in the word (100/1h leaves room for a debt's depth), or a block.
    c.cmd_str("RL.CHARGE gdebt0 100 1h 150 ALGO gcra").ok();
    assert!(!c.allow("gdebt0", "100 1h ALGO gcra").allowed);
    assert_eq!(
        memory_usage(&mut c, "gdebt0"),
        word,
        "a gcra debt in the word"
    );
    c.cmd_str("RL.CHARGE gdebtd 1000 1d 1500 ALGO gcra").ok();
    let block = memory_usage(&mut c, "gdebtd") - word;
    assert!(
        block == 16 || block == 24,
        "a gcra debt under 1000/1d: {block}"
    );

    // A counter in debt: boxed (at least the 64-byte limiter) until the window is over.
    c.cmd_str("RL.CHARGE fdebt0 10 200ms 15 ALGO fixed-window")
        .ok();
    assert_eq!(c.inspect_int("fdebt0", "count"), 15);
    assert!(memory_usage(&mut c, "fdebt0") - word >= 64);

    // A penalty block: the limiter boxed, the block in a box of its own.
    c.allow("block0", "2 1h ALGO fixed-window COST 2");
    assert!(
        !c.allow("block0", "2 1h ALGO fixed-window BLOCK 200ms")
            .allowed
    );
    assert!(memory_usage(&mut c, "block0") - word >= 64 + 32);

    // Leases: the limiter, the table, its array.
    c.cmd_str("RL.ACQUIRE lease0 10 1h ID worker-a").ok();
    assert!(memory_usage(&mut c, "lease0") - word >= 64 + 32);

    // After the debt's window and the block, one write each: back in the word, same decisions
    // as keys that were never indebted or blocked.
    std::thread::sleep(Duration::from_millis(250));
    let r = c.allow("fdebt0", "10 200ms ALGO fixed-window");
    assert_eq!(
        c.allow("fresh0", "10 200ms ALGO fixed-window").remaining,
        r.remaining
    );
    assert_eq!(memory_usage(&mut c, "fdebt0"), word);
    assert_eq!(c.inspect_int("block0", "blocked_until_us"), 0);
    assert!(
        memory_usage(&mut c, "block0") - word >= 64 + 32,
        "kept until a write"
    );
    c.cmd_str("RL.REFUND block0 2 1h 1 ALGO fixed-window").ok();
    assert_eq!(c.inspect_int("block0", "count"), 1);
    assert_eq!(memory_usage(&mut c, "block0"), word);
    s.assert_alive();
}

/// Decisions of two keys with the same state read one after the other: equal but for the time
/// between the reads (µs on a quiet machine; a loaded CI machine has stalled the server for
/// several ms between two commands, hence the margin: a real difference in state is a window's
/// worth or more).
fn assert_same(a: &common::Rl, b: &common::Rl, what: &str) {
    assert_eq!(
        (a.allowed, a.capacity, a.remaining),
        (b.allowed, b.capacity, b.remaining),
        "{what}"
    );
    const MARGIN_MS: i64 = 250;
    assert_between(
        a.retry_ms,
        b.retry_ms - MARGIN_MS,
        b.retry_ms + MARGIN_MS,
        what,
    );
    assert_between(
        a.reset_ms,
        b.reset_ms - MARGIN_MS,
        b.reset_ms + MARGIN_MS,
        what,
    );
}

/// The same state held packed and boxed (a copy of the key given a 1 ms penalty block: a
/// denial stores the block and leaves the kind's state as it was, and an ended block stays
/// stored until the key's next write): the same state read back, the same decisions, and the
/// same again after a write on each, which drops the block and packs the copy again.
/// `MEMORY USAGE` reports the box, then the word.
#[test]
fn a_packed_key_and_a_boxed_key_decide_the_same() {
    let s = Server::start();
    let mut c = s.conn();
    for opts in [
        "",
        "ALGO fixed-window",
        "ALGO gcra",
        "ALGO gcra BURST 2",
        "ALGO moving-window",
        "ALGO limits-sliding-window",
    ] {
        let rule = format!("3 1h {opts}");
        c.cmd_str("FLUSHALL SYNC").ok();
        // One entry (a moving-window log of one run packs).
        let full = if opts.contains("BURST 2") { 2 } else { 3 };
        assert!(c.allow("packed", &format!("{rule} COST {full}")).allowed);
        assert_eq!(c.cmd(&["COPY", "packed", "boxed"]).int(), 1);
        assert!(!c.allow("boxed", &format!("{rule} BLOCK 1ms")).allowed);
        std::thread::sleep(Duration::from_millis(5));
        let word = memory_usage(&mut c, "packed");
        assert!(
            memory_usage(&mut c, "boxed") >= word + 64,
            "{rule}: the boxed key reports its box"
        );
        let state = |c: &mut Conn, key: &str| {
            let mut m = c.inspect(key).unwrap();
            // Read µs apart: what is relative to the reading goes.
            m.retain(|k, _| {
                !matches!(k.as_str(), "now_us" | "blocked_until_us") && !k.ends_with("ttl_ms")
            });
            m
        };
        assert_eq!(state(&mut c, "packed"), state(&mut c, "boxed"), "{rule}");
        for cost in ["0", "1", "2"] {
            let peek = |c: &mut Conn, key: &str| {
                common::Rl::from_reply(&c.cmd_str(&format!("RL.PEEK {key} {rule} COST {cost}")))
            };
            let (p, b) = (peek(&mut c, "packed"), peek(&mut c, "boxed"));
            assert_same(&p, &b, &format!("{rule} COST {cost}"));
        }
        // A write on each (a refund of 1): the ended block goes, the copy packs again.
        for key in ["packed", "boxed"] {
            let cmd = format!("RL.REFUND {key} 3 1h 1 {opts}");
            assert!(c.cmd_str(&cmd).error().is_none(), "{cmd}");
        }
        assert_eq!(state(&mut c, "packed"), state(&mut c, "boxed"), "{rule}");
        assert_eq!(memory_usage(&mut c, "boxed"), word, "{rule}: packed again");
        let (p, b) = (c.allow("packed", &rule), c.allow("boxed", &rule));
        assert_same(&p, &b, &rule);
    }
    s.assert_alive();
}
