//! The drop-in GCRA commands on real servers: `CL.THROTTLE` / `RL.THROTTLE` (redis-cell's syntax
//! and reply) and `GCRA` (Redis 8.8's pulled command).
//!
//! - the sequences recorded from redis-cell and Redis's GCRA (tests/fixtures/compat) replayed:
//!   every reply as the original's, or as the fixture's documented difference;
//! - the same key read through RL.PEEK, RL.INSPECT and RL.ALLOW … ALGO gcra;
//! - errors leave the key alone; quantity 0 writes nothing (no key, no WATCH abort);
//! - a client that waits `retry_after` seconds is admitted;
//! - replication (effects, not calls) and persistence: equal DEBUG DIGEST and PEXPIRETIME;
//! - CL.THROTTLE / GCRA are left alone when the server already has the name, and
//!   `compat-commands` turns them off; COMMAND DOCS and key specs.

mod common;

use std::collections::HashMap;
use std::thread::sleep;
use std::time::Duration;

use common::{assert_between, Conn, NodeConfig, Reply, Server};

const FIXTURE: &str = include_str!("fixtures/compat/sequences.txt");

/// Which command shape a replay speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavour {
    Cell,
    Gcra,
}

#[derive(Debug)]
enum Line {
    Wait(u64),
    Step {
        /// The command with `{key}` to fill in, or None when the step is not run in this flavour.
        cmd: Option<Vec<String>>,
        want: String,
        text: String,
    },
}

/// The fixture's sequences for one flavour: (name, lines).
fn sequences(flavour: Flavour) -> Vec<(String, Vec<Line>)> {
    let mut out: Vec<(String, Vec<Line>)> = Vec::new();
    for raw in FIXTURE.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix("seq ") {
            out.push((name.to_string(), Vec::new()));
            continue;
        }
        let seq = &mut out.last_mut().expect("a step before any seq").1;
        if let Some(ms) = line.strip_prefix("wait ") {
            seq.push(Line::Wait(ms.parse().unwrap()));
            continue;
        }
        let mut parts = line.split(" | ");
        let step = parts.next().unwrap();
        let fields: HashMap<&str, &str> = parts
            .map(|p| p.split_once(' ').unwrap_or((p, "")))
            .collect();
        let (original, ours) = match flavour {
            Flavour::Cell => ("cell", "ours-cl"),
            Flavour::Gcra => ("gcra", "ours-gcra"),
        };
        let want = fields
            .get(ours)
            .or_else(|| fields.get(original))
            .unwrap_or_else(|| panic!("no {original} field: {line}"))
            .to_string();
        let words: Vec<String> = step.split_whitespace().map(str::to_string).collect();
        let cmd = match (words[0].as_str(), flavour) {
            ("throttle", _) => {
                let (mb, count, period) = (&words[1], &words[2], &words[3]);
                let q = words.get(4);
                Some(match flavour {
                    Flavour::Cell => {
                        let mut c = vec!["CL.THROTTLE", "{key}", mb, count, period];
                        c.extend(q.map(String::as_str));
                        c.into_iter().map(str::to_string).collect()
                    }
                    Flavour::Gcra => {
                        let mut c = vec!["GCRA", "{key}", mb, count, period];
                        if let Some(q) = q {
                            c.extend(["TOKENS", q.as_str()]);
                        }
                        c.into_iter().map(str::to_string).collect()
                    }
                })
            }
            ("raw", _) | ("cell", Flavour::Cell) | ("gcra", Flavour::Gcra) => {
                Some(words[1..].to_vec())
            }
            ("cell", Flavour::Gcra) | ("gcra", Flavour::Cell) => None,
            (other, _) => panic!("unknown step {other}: {line}"),
        };
        assert!(
            cmd.is_none() || want != "-",
            "a step run in {flavour:?} needs an expected reply: {line}"
        );
        seq.push(Line::Step {
            cmd,
            want,
            text: line.to_string(),
        });
    }
    out
}

/// A reply as the fixture writes it.
fn show(r: &Reply) -> String {
    match r {
        Reply::Array(items) => items.iter().map(show).collect::<Vec<_>>().join(" "),
        Reply::Int(i) => i.to_string(),
        Reply::Status(s) => s.clone(),
        Reply::Error(e) => format!("!{e}"),
        Reply::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
        Reply::Nil => "nil".to_string(),
    }
}

fn matches(want: &str, got: &str) -> bool {
    let (w, g): (Vec<&str>, Vec<&str>) = (want.split(' ').collect(), got.split(' ').collect());
    if want.starts_with('!') || w.len() != g.len() {
        return want == got;
    }
    w.iter()
        .zip(&g)
        .all(|(w, g)| w == g || (*w == "*" && g.parse::<i64>().is_ok()))
}

/// Replays every sequence of `flavour` on a fresh key each; returns the mismatches.
fn replay(port: u16, flavour: Flavour) -> Vec<String> {
    let mut c = Conn::connect(port).unwrap();
    let mut failures = Vec::new();
    for (n, (name, lines)) in sequences(flavour).into_iter().enumerate() {
        let key = format!("{flavour:?}:{n}");
        // Steps between two waits go out as one pipeline (no round trips in between).
        let mut batch: Vec<(Vec<String>, String, String)> = Vec::new();
        let mut flush = |batch: &mut Vec<(Vec<String>, String, String)>, c: &mut Conn| {
            for (cmd, _, _) in batch.iter() {
                c.send(cmd).unwrap();
            }
            for (cmd, want, text) in batch.drain(..) {
                let got = show(&c.read().unwrap());
                // An original's crash is never the module's answer: such steps carry an ours field.
                if want == "CRASH" || !matches(&want, &got) {
                    failures.push(format!(
                        "[{name}] {text}\n    sent {}\n    want {want}\n    got  {got}",
                        cmd.join(" ")
                    ));
                }
            }
        };
        for line in lines {
            match line {
                Line::Wait(ms) => {
                    flush(&mut batch, &mut c);
                    sleep(Duration::from_millis(ms));
                }
                Line::Step {
                    cmd: Some(cmd),
                    want,
                    text,
                } => {
                    let cmd = cmd.iter().map(|w| w.replace("{key}", &key)).collect();
                    batch.push((cmd, want, text));
                }
                Line::Step { cmd: None, .. } => {}
            }
        }
        flush(&mut batch, &mut c);
    }
    failures
}

#[test]
fn recorded_sequences_replay() {
    let server = Server::start();
    let port = server.port();
    // The two flavours on separate keys at once: the waits overlap.
    let cell = std::thread::spawn(move || replay(port, Flavour::Cell));
    let gcra = replay(port, Flavour::Gcra);
    let mut failures = cell.join().unwrap();
    failures.extend(gcra);
    server.assert_alive();
    assert!(
        failures.is_empty(),
        "{} replies differ from the fixture:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn ints(r: &Reply) -> Vec<i64> {
    r.ints()
}

#[test]
fn one_key_through_every_command() {
    let server = Server::start();
    let mut c = server.conn();
    // 30 per minute, burst 16: the same limiter as RL.ALLOW k 30 60 ALGO gcra BURST 16.
    let rl = "30 60 ALGO gcra BURST 16";
    assert_eq!(
        ints(&c.cmd_str("CL.THROTTLE k 15 30 60")),
        [0, 16, 15, -1, 2]
    );
    assert_eq!(
        ints(&c.cmd_str("RL.THROTTLE k 15 30 60 2")),
        [0, 16, 13, -1, 6]
    );
    assert_eq!(
        ints(&c.cmd_str("GCRA k 15 30 60.0 TOKENS 3")),
        [0, 16, 10, -1, 12]
    );
    assert_eq!(c.type_of("k"), "ratelimit");
    let peek = c.peek("k", &format!("{rl} COST 0"));
    assert_eq!(peek.acr(), (true, 16, 10));
    assert!((11_000..=12_000).contains(&peek.reset_ms), "{peek:?}");
    let allow = c.allow("k", &format!("{rl} COST 10"));
    assert_eq!(allow.acr(), (true, 16, 0));
    assert_eq!(
        ints(&c.cmd_str("CL.THROTTLE k 15 30 60"))[..4],
        [1, 16, 0, 2]
    );
    let inspect = c.cmd_str("RL.INSPECT k").flat();
    let field = |name: &str| {
        let at = inspect.iter().position(|f| f == name).unwrap();
        inspect[at + 1].parse::<i64>().unwrap()
    };
    assert_eq!(
        (field("limit"), field("window_us"), field("burst")),
        (30, 60_000_000, 16)
    );
    let ahead_ms = (field("tat_us") - field("now_us")) / 1000;
    assert_between(ahead_ms, 31_000, 32_000, "tat − now");
    // The key expires when the bucket is full again (in whole ms, rounded up).
    assert_between(c.pttl("k"), 27_000, 32_001, "PTTL");
    // Another algorithm's key is refused, not converted.
    c.allow("sw", "10 1m");
    assert_eq!(
        c.cmd_str("CL.THROTTLE sw 1 1 1").expect_err(),
        "ERR key holds a sliding-window limiter, not gcra: DEL it to change algorithms"
    );
}

#[test]
fn errors_leave_the_key_alone() {
    let server = Server::start();
    let mut c = server.conn();
    c.cmd_str("CL.THROTTLE k 4 1 10 2");
    let before = c.snapshot("k");
    let cases = [
        (
            "CL.THROTTLE k 1 1",
            "ERR wrong number of arguments for 'cl.throttle' command",
        ),
        (
            "CL.THROTTLE k 1 1 10 1 1",
            "ERR wrong number of arguments for 'cl.throttle' command",
        ),
        (
            "RL.THROTTLE k 1 1",
            "ERR wrong number of arguments for 'rl.throttle' command",
        ),
        (
            "GCRA k 1 1 10 TOKENS 1 x",
            "ERR wrong number of arguments for 'gcra' command",
        ),
        (
            "CL.THROTTLE k -1 1 10",
            "ERR max_burst must be an integer from 0 to 9223372036854775806",
        ),
        (
            "GCRA k 9223372036854775807 1 10",
            "ERR max_burst must be an integer from 0 to 9223372036854775806",
        ),
        (
            "CL.THROTTLE k 4 0 10",
            "ERR count_per_period must be an integer from 1 to 9223372036854775807",
        ),
        (
            "GCRA k 4 0 10",
            "ERR tokens_per_period must be an integer from 1 to 9223372036854775807",
        ),
        (
            "CL.THROTTLE k 4 1 0",
            "ERR period must be a duration from 1 microsecond to 365d: whole seconds (60) \
             or a number with a unit ms, s, m, h or d (500ms, 1.5s, 1m)",
        ),
        (
            "GCRA k 4 1 1e12",
            "ERR period must be a number of seconds from 0.000001 to 31536000 (365 days), \
             such as 60, 0.5 or 1e-3",
        ),
        (
            "CL.THROTTLE k 4 1 10 -1",
            "ERR quantity must be an integer from 0 to 9223372036854775807",
        ),
        (
            "GCRA k 4 1 10 TOKENS 0",
            "ERR TOKENS must be an integer from 1 to 9223372036854775807",
        ),
        ("GCRA k 4 1 10 TOKENS", "ERR TOKENS needs a value"),
        (
            "GCRA k 4 1 10 COST 2",
            "ERR unknown option 'COST': expected TOKENS",
        ),
        (
            "CL.THROTTLE k 100 1 365d",
            "ERR (max_burst + 1) * period / count must not exceed 100 years",
        ),
    ];
    for (cmd, want) in cases {
        assert_eq!(c.cmd_str(cmd).expect_err(), want, "{cmd}");
        assert!(!c.exists("absent"));
    }
    assert_eq!(c.snapshot("k"), before);
    for cmd in ["CL.THROTTLE absent -1 1 10", "GCRA absent 1 1 0"] {
        c.cmd_str(cmd).expect_err();
        assert!(!c.exists("absent"), "{cmd}");
    }
    c.cmd_str("SET s hello").ok();
    for cmd in [
        "CL.THROTTLE s 1 1 10",
        "RL.THROTTLE s 1 1 10 0",
        "GCRA s 1 1 10",
    ] {
        assert_eq!(
            c.cmd_str(cmd).expect_err(),
            "WRONGTYPE Operation against a key holding the wrong kind of value"
        );
    }
    assert_eq!(c.cmd_str("GET s").text(), "hello");
}

#[test]
fn quantity_zero_writes_nothing() {
    let server = Server::start();
    let mut c = server.conn();
    assert_eq!(ints(&c.cmd_str("CL.THROTTLE k 2 1 10 0")), [0, 3, 3, -1, 0]);
    assert!(!c.exists("k"));
    c.cmd_str("CL.THROTTLE k 2 1 10").ints();
    let before = c.snapshot("k");
    // WATCH survives a look (redis-cell rewrites the key on quantity 0).
    c.cmd_str("WATCH k").ok();
    let look = ints(&c.cmd_str("CL.THROTTLE k 2 1 10 0"));
    assert_eq!(look[..4], [0, 3, 2, -1]);
    c.cmd_str("MULTI").ok();
    c.cmd_str("PING");
    assert_eq!(
        c.cmd_str("EXEC"),
        Reply::Array(vec![Reply::Status("PONG".into())])
    );
    assert_eq!(c.snapshot("k"), before);
}

#[test]
fn waiting_the_retry_after_is_enough() {
    // One per 1.0009 s: redis-cell 0.5 says retry in 1 s and refuses a client that waits 1 s;
    // the module says 2.
    let server = Server::start();
    let mut c = server.conn();
    c.send(&["CL.THROTTLE", "k", "0", "10000", "10009"])
        .unwrap();
    c.send(&["CL.THROTTLE", "k", "0", "10000", "10009"])
        .unwrap();
    assert_eq!(ints(&c.read().unwrap()), [0, 1, 0, -1, 2]);
    let denied = ints(&c.read().unwrap());
    assert_eq!(denied, [1, 1, 0, 2, 2]);
    sleep(Duration::from_secs(denied[3] as u64));
    assert_eq!(ints(&c.cmd_str("CL.THROTTLE k 0 10000 10009"))[0], 0);
}

/// A workload of the three commands on a few keys: admissions, denials, looks, a rule change.
fn workload(c: &mut Conn) {
    for i in 0..40 {
        let k = format!("w{}", i % 5);
        let cmd = match i % 4 {
            0 => format!("CL.THROTTLE {k} 3 10 1m"),
            1 => format!("GCRA {k} 3 10 60 TOKENS 2"),
            2 => format!("RL.THROTTLE {k} 3 10 60 0"),
            _ => format!("CL.THROTTLE {k} 5 20 60"),
        };
        assert!(c.cmd_str(&cmd).ints().len() == 5, "{cmd}");
    }
    c.cmd_str("GCRA short 0 1 0.2").ints();
}

fn expiry_times(c: &mut Conn) -> Vec<i64> {
    let mut keys: Vec<String> = (0..5).map(|i| format!("w{i}")).collect();
    keys.push("short".into());
    keys.iter().map(|k| c.pexpiretime(k)).collect()
}

#[test]
fn replicas_get_effects_and_agree() {
    let master = Server::start();
    let replica = master.start_replica();
    let mut m = master.conn();
    workload(&mut m);
    master.wait_replicas(&mut m, 1);
    let mut r = replica.conn();
    assert_eq!(master.digest(), replica.digest());
    assert_eq!(expiry_times(&mut m), expiry_times(&mut r));
    // Effects, not calls: the replica applied RL.SETSTATE and never ran the compat commands.
    let stats = r.info("commandstats");
    assert!(stats.contains("cmdstat_rl.setstate"), "{stats}");
    for name in ["cl.throttle", "gcra", "rl.throttle"] {
        assert!(!stats.contains(&format!("cmdstat_{name}:")), "{stats}");
    }
    // The replica reads the same limiter.
    assert_eq!(
        r.peek("w1", "20 60 ALGO gcra BURST 6").acr(),
        m.peek("w1", "20 60 ALGO gcra BURST 6").acr()
    );
    // A write command: refused on a read-only replica.
    assert!(r
        .cmd_str("CL.THROTTLE w1 5 20 60")
        .expect_err()
        .starts_with("READONLY"));
}

#[test]
fn rdb_and_aof_keep_state_and_expiry() {
    let mut s = NodeConfig::new().set("appendonly", "yes").start();
    let mut c = s.conn();
    workload(&mut c);
    let digest = s.digest();
    let expiry = expiry_times(&mut c);
    // AOF replay of the appended effects.
    s.restart();
    let mut c = s.conn();
    assert_eq!(s.digest(), digest);
    assert_eq!(expiry_times(&mut c), expiry);
    // RDB.
    c.cmd_str("DEBUG RELOAD").ok();
    assert_eq!(s.digest(), digest);
    assert_eq!(expiry_times(&mut c), expiry);
}

#[test]
fn names_the_server_has_are_left_alone() {
    // rename-command makes the names busy before the module loads, as a server with its own
    // GCRA or redis-cell loaded first would.
    let server = NodeConfig::new()
        .set("rename-command ECHO", "GCRA")
        .set("rename-command LASTSAVE", "CL.THROTTLE")
        .start();
    let mut c = server.conn();
    assert_eq!(c.cmd_str("GCRA hello").text(), "hello");
    assert!(matches!(c.cmd_str("CL.THROTTLE"), Reply::Int(_)));
    assert_eq!(
        ints(&c.cmd_str("RL.THROTTLE k 15 30 60")),
        [0, 16, 15, -1, 2]
    );
    let log = server.log();
    for name in ["GCRA", "CL.THROTTLE"] {
        let line = format!("ratelimit: {name} is already a command on this server, left as it is");
        assert_eq!(log.matches(&line).count(), 1, "{log}");
    }
}

#[test]
fn compat_commands_argument() {
    let none = NodeConfig::new()
        .module_args(&["compat-commands", "none"])
        .start();
    let mut c = none.conn();
    for cmd in ["CL.THROTTLE k 1 1 1", "GCRA k 1 1 1"] {
        assert!(
            c.cmd_str(cmd)
                .expect_err()
                .starts_with("ERR unknown command"),
            "{cmd}"
        );
    }
    assert_eq!(c.cmd_str("RL.THROTTLE k 1 1 1").ints().len(), 5);

    let gcra_only = NodeConfig::new()
        .module_args(&["compat-commands", "gcra", "enable-debug-command", "no"])
        .start();
    let mut c = gcra_only.conn();
    assert!(c
        .cmd_str("CL.THROTTLE k 1 1 1")
        .expect_err()
        .starts_with("ERR unknown command"));
    assert_eq!(c.cmd_str("GCRA k 1 1 1").ints().len(), 5);
}

#[test]
fn command_docs_and_key_specs() {
    let server = Server::start();
    let mut c = server.conn();
    for (name, summary) in [
        (
            "rl.throttle",
            "redis-cell's CL.THROTTLE on the module's gcra limiter",
        ),
        (
            "cl.throttle",
            "redis-cell's GCRA command, served by the ratelimit module",
        ),
        (
            "gcra",
            "Redis's GCRA rate limiter, served by the ratelimit module",
        ),
    ] {
        let docs = c.cmd(&["COMMAND", "DOCS", name]).flat();
        assert!(docs.iter().any(|d| d.starts_with(summary)), "{docs:?}");
        assert!(docs.contains(&"O(1)".to_string()), "{docs:?}");
        let info = c.cmd(&["COMMAND", "INFO", name]).flat();
        assert_eq!(info[1], "-5", "arity of {name}: {info:?}");
        for flag in ["write", "denyoom", "fast", "RW", "access", "update"] {
            assert!(
                info.contains(&flag.to_string()),
                "{name} lacks {flag}: {info:?}"
            );
        }
        let keys = c.cmd(&["COMMAND", "GETKEYS", name, "the-key", "1", "1", "1"]);
        assert_eq!(keys.flat(), ["the-key"]);
    }
}

#[test]
fn redis_cell_loaded_first_keeps_cl_throttle() {
    // Needs a redis-cell build (RL_CELL_SO, as scripts/bench uses it); skipped without one.
    let Some(cell) = std::env::var_os("RL_CELL_SO") else {
        eprintln!("RL_CELL_SO not set: skipped");
        return;
    };
    let server = NodeConfig::new()
        .set("loadmodule", &format!("\"{}\"", cell.to_string_lossy()))
        .start();
    let mut c = server.conn();
    assert_eq!(
        ints(&c.cmd_str("CL.THROTTLE k 15 30 60")),
        [0, 16, 15, -1, 2]
    );
    assert_eq!(c.type_of("k"), "string"); // redis-cell's
    assert_eq!(ints(&c.cmd_str("GCRA g 15 30 60")), [0, 16, 15, -1, 2]);
    assert_eq!(c.type_of("g"), "ratelimit");
    assert!(server
        .log()
        .contains("ratelimit: CL.THROTTLE is already a command on this server"));
}
