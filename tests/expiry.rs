//! No limiter lives forever: whatever a client does with the server's own commands (PERSIST,
//! RESTORE … 0, COPY, RENAME, MOVE, SWAPDB), a `ratelimit` key ends with the TTL its state
//! implies — on the master, on its replica and after an AOF replay. Where the module's keyspace
//! hook runs (`INFO ratelimit` `keyspace_hook:1`: Redis) that happens within the command; where it
//! does not (Valkey 8.1+, see src/expiry.rs) the next RL.ALLOW on the key does it.

mod common;

use std::thread::sleep;
use std::time::Duration;

use common::{wait_until, Conn, NodeConfig, Reply, Server, ALGOS};

/// Whether the module gives the TTL back within PERSIST / RESTORE itself.
fn hook(c: &mut Conn) -> bool {
    c.stat("keyspace_hook") == 1
}

/// Where there is no hook: checks the key has no TTL, then has the next RL.ALLOW (a request
/// that can never pass, so it charges nothing) repair it.
fn repair_by_allow(c: &mut Conn, key: &str, algo: &str) {
    if !hook(c) {
        assert_eq!(c.pttl(key), -1, "{key}");
        assert_eq!(
            c.allow(key, &format!("10 1h ALGO {algo} COST 100"))
                .retry_ms,
            -1
        );
    }
}

fn dump(c: &mut Conn, key: &str) -> Vec<u8> {
    match c.cmd(&["DUMP", key]) {
        Reply::Bulk(b) => b,
        other => panic!("DUMP {key}: {other:?}"),
    }
}

/// Fills one key per algorithm; returns (key, expected PEXPIRETIME).
fn populate(c: &mut Conn) -> Vec<(String, i64)> {
    ALGOS
        .iter()
        .map(|algo| {
            let key = format!("k:{algo}");
            c.allow(&key, &format!("10 1h ALGO {algo} COST 3"));
            let at = c.pexpiretime(&key);
            assert!(at > 0);
            (key, at)
        })
        .collect()
}

#[test]
fn persist_gives_the_ttl_back_at_once() {
    let s = Server::start();
    let mut c = s.conn();
    for (key, at) in populate(&mut c) {
        let algo = &key[2..];
        // PERSIST itself succeeds (it removed a TTL) ...
        assert_eq!(c.cmd(&["PERSIST", &key]).int(), 1);
        // ... and the module puts the one the state implies back.
        repair_by_allow(&mut c, &key, algo);
        assert_eq!(c.pexpiretime(&key), at, "{key}");
        // A denial then finds nothing to repair.
        let before = c.stat("ttl_repairs");
        c.allow(&key, &format!("10 1h COST 100 ALGO {algo}"));
        assert_eq!(c.stat("ttl_repairs"), before);
    }
    assert_eq!(c.stat("ttl_repairs"), ALGOS.len() as i64);
}

#[test]
fn restore_without_ttl_gets_the_state_s_ttl() {
    let s = Server::start();
    let mut c = s.conn();
    for (key, at) in populate(&mut c) {
        let algo = key[2..].to_string();
        let d = dump(&mut c, &key);
        let copy = format!("{key}:copy");
        c.cmd(&[b"RESTORE".as_slice(), copy.as_bytes(), b"0", &d])
            .ok();
        repair_by_allow(&mut c, &copy, &algo);
        assert_eq!(c.pexpiretime(&copy), at, "{copy}");
        // REPLACE over the original: the same.
        c.cmd(&[b"RESTORE".as_slice(), key.as_bytes(), b"0", &d, b"REPLACE"])
            .ok();
        repair_by_allow(&mut c, &key, &algo);
        assert_eq!(c.pexpiretime(&key), at, "{key}");
        // A TTL given to RESTORE is kept as given.
        let other = format!("{key}:ttl");
        c.cmd(&[b"RESTORE".as_slice(), other.as_bytes(), b"5000", &d])
            .ok();
        common::assert_between(c.pttl(&other), 4_000, 5_000, "RESTORE with a TTL");
    }
}

#[test]
fn restoring_a_state_that_is_over_deletes_it() {
    let s = Server::start();
    let mut c = s.conn();
    c.allow("short", "1 20ms");
    let d = dump(&mut c, "short");
    wait_until(Duration::from_secs(5), "the window to end", || {
        !c.exists("short")
    });
    sleep(Duration::from_millis(50));
    c.cmd(&[b"RESTORE".as_slice(), b"again", b"0", &d]).ok();
    if !hook(&mut c) {
        // The next RL.ALLOW finds the state over and deletes the key.
        c.allow("again", "1 20ms COST 0");
        let r = c.rl_raw("ALLOW", "again", "1 20ms COST 5");
        assert!(r.error().is_none(), "{r:?}");
    }
    assert!(!c.exists("again"), "an expired state must not come back");
}

#[test]
fn copy_rename_move_swapdb_keep_the_ttl() {
    let s = Server::start();
    let mut c = s.conn();
    for (key, at) in populate(&mut c) {
        let copy = format!("{key}:copy");
        assert_eq!(c.cmd(&["COPY", &key, &copy]).int(), 1);
        assert_eq!(c.pexpiretime(&copy), at);
        assert_eq!(c.digest_value(&copy), c.digest_value(&key));
        let renamed = format!("{key}:renamed");
        c.cmd(&["RENAME", &copy, &renamed]).ok();
        assert_eq!(c.pexpiretime(&renamed), at);
        assert_eq!(c.cmd(&["MOVE", &renamed, "1"]).int(), 1);
        c.cmd_str("SELECT 1").ok();
        assert_eq!(c.pexpiretime(&renamed), at);
        // PERSIST in another db: repaired in that db.
        assert_eq!(c.cmd(&["PERSIST", &renamed]).int(), 1);
        repair_by_allow(&mut c, &renamed, &key[2..]);
        assert_eq!(c.pexpiretime(&renamed), at);
        c.cmd_str("SELECT 0").ok();
    }
    c.cmd_str("SWAPDB 0 1").ok();
    for algo in ALGOS {
        let key = format!("k:{algo}:renamed");
        assert!(c.pexpiretime(&key) > 0, "{key} after SWAPDB");
    }
    // Nothing in any db lacks a TTL.
    for db in ["0", "1"] {
        c.cmd(&["SELECT", db]).ok();
        for key in c.cmd_str("KEYS *").flat() {
            assert!(c.pttl(&key) > 0, "db {db}: {key}");
        }
    }
}

#[test]
fn the_replica_and_the_aof_get_the_ttl_too() {
    let master = NodeConfig::new()
        .set("appendonly", "yes")
        .set("appendfsync", "always")
        .start();
    let replica = master.start_replica();
    let mut c = master.conn();
    let keys = populate(&mut c);
    for (key, _) in &keys {
        c.cmd(&["PERSIST", key]).int();
        repair_by_allow(&mut c, key, &key[2..]);
    }
    let d = dump(&mut c, "k:gcra");
    c.cmd(&[b"RESTORE".as_slice(), b"restored", b"0", &d]).ok();
    repair_by_allow(&mut c, "restored", "gcra");
    master.wait_replicas(&mut c, 1);
    let mut r = replica.conn();
    for (key, at) in &keys {
        assert_eq!(r.pexpiretime(key), *at, "replica {key}");
    }
    assert_eq!(r.pexpiretime("restored"), c.pexpiretime("restored"));
    assert_eq!(replica.digest(), master.digest());
    // The AOF replays PERSIST and then the repair.
    drop(c);
    let mut master = master;
    master.restart();
    let mut c = master.conn();
    for (key, at) in &keys {
        assert_eq!(c.pexpiretime(key), *at, "after AOF replay: {key}");
    }
    assert!(c.pexpiretime("restored") > 0);
}
