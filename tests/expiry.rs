//! No limiter lives forever: whatever a client does with the server's own commands (PERSIST,
//! RESTORE … 0, COPY, RENAME, MOVE, SWAPDB) and whatever a node loads, a `ratelimit` key ends
//! with the TTL its state implies — on the master, on its replica and after an AOF replay.
//!
//! `RESTORE … 0` is repaired right after the command (its reply already sees the TTL);
//! `PERSIST` by the TTL sweep within its bound (a tiny keyspace here: about a second), or right
//! after the command with `ttl-hook yes` where the server allows that hook (Redis; not Valkey
//! 8.1 – 9.1, see src/expiry.rs). Replicas and the AOF receive the repair as `PEXPIREAT` / `DEL`
//! after the command that caused it.

mod common;

use std::thread::sleep;
use std::time::Duration;

use common::{wait_until, Conn, NodeConfig, Reply, Server, ALGOS};

/// Far more than the sweep needs on these keyspaces (a look every second, one tick per pass).
const SWEEP_BOUND: Duration = Duration::from_secs(15);

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

/// Waits until `key` has a TTL again.
fn wait_for_ttl(c: &mut Conn, key: &str) {
    wait_until(SWEEP_BOUND, &format!("{key} to get its TTL back"), || {
        c.pttl(key) != -1
    });
}

#[test]
fn restore_without_ttl_gets_the_state_s_ttl_right_after_the_command() {
    let s = Server::start();
    let mut c = s.conn();
    for (key, at) in populate(&mut c) {
        let d = dump(&mut c, &key);
        let copy = format!("{key}:copy");
        c.cmd(&[b"RESTORE".as_slice(), copy.as_bytes(), b"0", &d])
            .ok();
        assert_eq!(c.pexpiretime(&copy), at, "{copy}");
        // REPLACE over the original: the same.
        c.cmd(&[b"RESTORE".as_slice(), key.as_bytes(), b"0", &d, b"REPLACE"])
            .ok();
        assert_eq!(c.pexpiretime(&key), at, "{key}");
        // A TTL given to RESTORE is kept as given.
        let other = format!("{key}:ttl");
        c.cmd(&[b"RESTORE".as_slice(), other.as_bytes(), b"5000", &d])
            .ok();
        common::assert_between(c.pttl(&other), 4_000, 5_000, "RESTORE with a TTL");
    }
    assert_eq!(c.stat("ttl_repairs"), 2 * ALGOS.len() as i64);
    // Inside MULTI the key has no TTL until EXEC is over: then it has.
    let d = dump(&mut c, "k:gcra");
    c.cmd_str("MULTI").ok();
    c.cmd(&[b"RESTORE".as_slice(), b"in-multi", b"0", &d]);
    c.cmd_str("PTTL in-multi");
    let r = c.cmd_str("EXEC");
    assert_eq!(r.array()[1], Reply::Int(-1), "{r:?}");
    assert!(c.pttl("in-multi") > 0);
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
    assert!(!c.exists("again"), "an expired state must not come back");
}

#[test]
fn persist_gets_the_ttl_back_from_the_sweep() {
    let s = Server::start();
    let mut c = s.conn();
    // Other keys, in several databases, for the sweep to walk past.
    for db in ["0", "2"] {
        c.cmd(&["SELECT", db]).ok();
        for i in 0..200 {
            c.cmd(&["SET", &format!("s:{i}"), "v"]).ok();
        }
    }
    c.cmd_str("SELECT 0").ok();
    let keys = populate(&mut c);
    let passes = c.stat("ttl_sweep_passes");
    for (key, _) in &keys {
        // PERSIST itself succeeds (it removed a TTL) ...
        assert_eq!(c.cmd(&["PERSIST", key]).int(), 1);
    }
    // ... and the sweep puts the one the state implies back.
    for (key, at) in &keys {
        wait_for_ttl(&mut c, key);
        assert_eq!(c.pexpiretime(key), *at, "{key}");
    }
    wait_until(SWEEP_BOUND, "the pass to end", || {
        c.stat("ttl_sweep_passes") > passes
    });
    assert_eq!(c.stat("ttl_repairs"), ALGOS.len() as i64);
    assert!(c.stat("ttl_sweep_scanned") >= 400);
    // In another database too.
    c.cmd_str("SELECT 2").ok();
    c.allow("there", "5 1h");
    let at = c.pexpiretime("there");
    c.cmd_str("PERSIST there").int();
    wait_for_ttl(&mut c, "there");
    assert_eq!(c.pexpiretime("there"), at);
    // Nothing else was touched.
    for i in 0..200 {
        assert_eq!(c.pttl(format!("s:{i}")), -1);
    }
}

#[test]
fn the_hook_repairs_persist_right_after_the_command_where_the_server_allows_it() {
    let s = NodeConfig::new().module_args(&["ttl-hook", "yes"]).start();
    let mut c = s.conn();
    let keys = populate(&mut c);
    let hook = c.stat("keyspace_hook") == 1;
    let valkey = c.info("server").contains("valkey_version:");
    // Redis has the hook; Valkey 8.1 (the one these tests run) refuses it (valkey-io/valkey#4024).
    assert_eq!(hook, !valkey);
    if !hook {
        assert!(s.log().contains("ttl-hook yes ignored"), "{}", s.log());
    }
    if hook {
        // PERSIST of other keys costs the hook a look at the key, and nothing more: no pass.
        c.cmd_str("SET s v EX 100").ok();
        c.cmd_str("PERSIST s").int();
        sleep(Duration::from_millis(2500));
        assert_eq!(c.stat("ttl_sweep_passes"), 0);
        assert_eq!(c.stat("ttl_sweep_scanned"), 0);
    }
    for (key, at) in &keys {
        assert_eq!(c.cmd(&["PERSIST", key]).int(), 1);
        if hook {
            assert_eq!(
                c.pexpiretime(key),
                *at,
                "{key}: the reply to PERSIST comes after the repair"
            );
        } else {
            wait_for_ttl(&mut c, key);
            assert_eq!(c.pexpiretime(key), *at, "{key}");
        }
    }
}

#[test]
fn renamed_moved_or_copied_before_the_repair_is_still_repaired() {
    let s = Server::start();
    let mut c = s.conn();
    c.allow("src", "10 1h ALGO gcra");
    let at = c.pexpiretime("src");
    let d = dump(&mut c, "src");
    // RESTORE … 0 and, in the same transaction, RENAME / MOVE / COPY: the copy or the new name
    // has no TTL when the repair runs; the sweep pass that repair asks for finds it.
    c.cmd_str("MULTI").ok();
    c.cmd(&[b"RESTORE".as_slice(), b"r1", b"0", &d]);
    c.cmd_str("RENAME r1 r1:renamed");
    c.cmd(&[b"RESTORE".as_slice(), b"r2", b"0", &d]);
    c.cmd_str("MOVE r2 5");
    c.cmd(&[b"RESTORE".as_slice(), b"r3", b"0", &d]);
    c.cmd_str("COPY r3 r3:copy");
    c.cmd_str("EXEC").array();
    for key in ["r1:renamed", "r3", "r3:copy"] {
        wait_for_ttl(&mut c, key);
        assert_eq!(c.pexpiretime(key), at, "{key}");
    }
    c.cmd_str("SELECT 5").ok();
    wait_for_ttl(&mut c, "r2");
    assert_eq!(c.pexpiretime("r2"), at);
}

#[test]
fn a_key_renamed_during_a_pass_is_found_by_the_next_one() {
    // A slow sweep over a few thousand keys, so that the RENAME lands during the pass.
    let s = NodeConfig::new()
        .module_args(&["ttl-sweep-rate", "1000"])
        .start();
    let mut c = s.conn();
    let mut pipeline = Vec::new();
    for i in 0..3000 {
        pipeline.push(format!("SET s:{i} v"));
    }
    for line in &pipeline {
        c.cmd_str(line).ok();
    }
    c.allow("lim", "10 1h");
    let at = c.pexpiretime("lim");
    let passes = c.stat("ttl_sweep_passes");
    c.cmd_str("PERSIST lim").int();
    // Wait for the pass to start, then rename the key while it runs.
    let scanned = c.stat("ttl_sweep_scanned");
    wait_until(SWEEP_BOUND, "a pass to start", || {
        c.stat("ttl_sweep_scanned") > scanned
    });
    if c.cmd_str("RENAME lim lim:renamed").error().is_some() {
        panic!("lim vanished");
    }
    wait_for_ttl(&mut c, "lim:renamed");
    assert_eq!(c.pexpiretime("lim:renamed"), at);
    // Either this pass found it, or the one the RENAME asked for did; both end.
    wait_until(SWEEP_BOUND * 2, "the passes to end", || {
        c.stat("ttl_sweep_passes") >= passes + 2
    });
}

#[test]
fn without_sweep_or_hook_persist_stays_until_the_next_write() {
    let s = NodeConfig::new()
        .module_args(&["ttl-sweep-rate", "0"])
        .start();
    let mut c = s.conn();
    assert_eq!(c.stat("ttl_sweep_rate"), 0);
    c.allow("k", "10 1h");
    c.cmd_str("PERSIST k").int();
    sleep(Duration::from_millis(1500));
    assert_eq!(c.pttl("k"), -1, "ttl-sweep-rate 0: nothing repairs PERSIST");
    // A denial writes nothing (and repairs nothing) ...
    assert!(!c.allow("k", "10 1h COST 11").allowed);
    assert_eq!(c.pttl("k"), -1);
    // ... an admission stores the state and its expiry.
    assert!(c.allow("k", "10 1h").allowed);
    assert!(c.pttl("k") > 0);
    // RESTORE … 0 is still repaired (that needs no sweep).
    let d = dump(&mut c, "k");
    c.cmd(&[b"RESTORE".as_slice(), b"r", b"0", &d]).ok();
    assert!(c.pttl("r") > 0);
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
        assert_eq!(c.cmd(&["COPY", &renamed, &key, "DB", "3"]).int(), 1);
        // The connection stays where it was (MOVE / COPY … DB on Valkey: valkey-io/valkey#4024).
        assert!(c.cmd_str("CLIENT INFO").text().contains(" db=1 "));
        // PERSIST in another db: repaired in that db.
        assert_eq!(c.cmd(&["PERSIST", &renamed]).int(), 1);
        wait_for_ttl(&mut c, &renamed);
        assert_eq!(c.pexpiretime(&renamed), at);
        c.cmd_str("SELECT 0").ok();
    }
    c.cmd_str("SWAPDB 0 1").ok();
    for algo in ALGOS {
        let key = format!("k:{algo}:renamed");
        assert!(c.pexpiretime(&key) > 0, "{key} after SWAPDB");
    }
    // Nothing in any db lacks a TTL.
    for db in ["0", "1", "3"] {
        c.cmd(&["SELECT", db]).ok();
        for key in c.cmd_str("KEYS *").flat() {
            assert!(c.pttl(&key) > 0, "db {db}: {key}");
        }
    }
}

/// The commands of an AOF file set (multi-part on Redis 7.0+ / Valkey), as flat text.
fn aof_text(s: &Server) -> String {
    let mut out = String::new();
    let dir = s.dir().join("appendonlydir");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".incr.aof"))
        .collect();
    files.sort();
    for f in files {
        out.push_str(&String::from_utf8_lossy(&std::fs::read(f).unwrap()));
    }
    out
}

#[test]
fn the_replica_and_the_aof_get_the_repair_after_the_command() {
    let master = NodeConfig::new()
        .set("appendonly", "yes")
        .set("appendfsync", "always")
        .set("aof-use-rdb-preamble", "no")
        .start();
    let replica = master.start_replica();
    let mut c = master.conn();
    let keys = populate(&mut c);
    for (key, _) in &keys {
        c.cmd(&["PERSIST", key]).int();
    }
    let d = dump(&mut c, "k:gcra");
    c.cmd(&[b"RESTORE".as_slice(), b"restored", b"0", &d]).ok();
    for (key, _) in &keys {
        wait_for_ttl(&mut c, key);
    }
    master.wait_replicas(&mut c, 1);
    let mut r = replica.conn();
    for (key, at) in &keys {
        assert_eq!(c.pexpiretime(key), *at, "master {key}");
        assert_eq!(r.pexpiretime(key), *at, "replica {key}");
    }
    assert_eq!(r.pexpiretime("restored"), c.pexpiretime("restored"));
    assert!(r.pexpiretime("restored") > 0);
    assert_eq!(replica.digest(), master.digest());
    // The replica repaired nothing itself: everything came from the master.
    assert_eq!(r.stat("ttl_repairs"), 0);
    // In the AOF each key's PEXPIREAT comes after its PERSIST / RESTORE.
    let aof = aof_text(&master);
    for key in keys.iter().map(|(k, _)| k.as_str()).chain(["restored"]) {
        let removed = ["PERSIST", "RESTORE"]
            .iter()
            .filter_map(|cmd| aof.find(&format!("{cmd}\r\n${}\r\n{key}\r\n", key.len())))
            .max()
            .unwrap_or_else(|| panic!("{key}: no PERSIST / RESTORE in the AOF"));
        let repaired = aof
            .rfind(&format!("PEXPIREAT\r\n${}\r\n{key}\r\n", key.len()))
            .unwrap_or_else(|| panic!("{key}: no PEXPIREAT in the AOF"));
        assert!(repaired > removed, "{key}: PEXPIREAT before the command");
    }
    // The AOF replays to the same keyspace.
    let digest = master.digest();
    let expiries: Vec<i64> = keys.iter().map(|(k, _)| c.pexpiretime(k)).collect();
    drop(c);
    let mut master = master;
    master.restart();
    let mut c = master.conn();
    assert_eq!(master.digest(), digest);
    for ((key, _), at) in keys.iter().zip(expiries) {
        assert_eq!(c.pexpiretime(key), at, "after AOF replay: {key}");
    }
}

#[test]
fn an_aof_written_without_repairs_on_redis_7_0_is_repaired_after_replay() {
    // Written by Redis 7.0 with no repair at all (as the first release, or this one with
    // `ttl-sweep-rate 0`, would write it): PERSIST and RESTORE … 0 leave keys without TTL in
    // the file. Replayed by the server under test (Redis 7.0, or Valkey 8.1: a 7.2+ server),
    // the sweep that follows the load gives every key its TTL back.
    let mut s = NodeConfig::new()
        .server("redis-server")
        .module_args(&["ttl-sweep-rate", "0"])
        .set("appendonly", "yes")
        .set("appendfsync", "always")
        .start();
    let mut c = s.conn();
    let keys = populate(&mut c);
    for (key, _) in &keys {
        c.cmd(&["PERSIST", key]).int();
    }
    // RESTORE … 0 is repaired even without the sweep: make one the old way, with PERSIST after.
    let d = dump(&mut c, "k:gcra");
    c.cmd(&[b"RESTORE".as_slice(), b"restored", b"0", &d]).ok();
    let restored_at = c.pexpiretime("restored");
    c.cmd_str("PERSIST restored").int();
    for (key, _) in &keys {
        assert_eq!(c.pttl(key), -1);
    }
    drop(c);
    s.restart_with(|cfg| cfg.server(&common::server_bin()).no_module_args());
    let mut c = s.conn();
    for (key, at) in &keys {
        wait_for_ttl(&mut c, key);
        assert_eq!(c.pexpiretime(key), *at, "{key}");
    }
    wait_for_ttl(&mut c, "restored");
    assert_eq!(c.pexpiretime("restored"), restored_at);
    assert_eq!(c.stat("ttl_repairs"), keys.len() as i64 + 1);
    assert!(c.stat("ttl_sweep_passes") >= 1);
}

#[test]
fn a_promoted_replica_repairs_what_its_old_master_left() {
    let master = NodeConfig::new()
        .module_args(&["ttl-sweep-rate", "0"])
        .start();
    let replica = master.start_replica();
    let mut c = master.conn();
    let keys = populate(&mut c);
    for (key, _) in &keys {
        c.cmd(&["PERSIST", key]).int();
    }
    master.wait_replicas(&mut c, 1);
    let mut r = replica.conn();
    sleep(Duration::from_millis(1500));
    for (key, _) in &keys {
        assert_eq!(r.pttl(key), -1, "a replica never repairs on its own: {key}");
    }
    r.cmd_str("REPLICAOF NO ONE").ok();
    for (key, at) in &keys {
        wait_for_ttl(&mut r, key);
        assert_eq!(r.pexpiretime(key), *at, "{key}");
    }
}

#[test]
fn info_counts_limiter_keys() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(c.stat("keys"), 0);
    assert_eq!(c.stat("ttl_sweep_rate"), 5_000);
    assert_eq!(c.stat("keyspace_hook"), 0);
    for i in 0..10 {
        c.allow(format!("n:{i}"), "5 1h");
    }
    c.cmd_str("SET other v").ok();
    assert_eq!(c.stat("keys"), 10);
    c.cmd_str("COPY n:0 n:copy").int();
    assert_eq!(c.stat("keys"), 11);
    c.del("n:1");
    c.cmd_str("UNLINK n:2").int();
    assert_eq!(c.stat("keys"), 9);
    c.cmd_str("FLUSHALL ASYNC").ok();
    wait_until(Duration::from_secs(5), "FLUSHALL ASYNC to free", || {
        c.stat("keys") == 0
    });
}
