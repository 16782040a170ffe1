//! The bad-input matrix: every error reply, its exact text, and that an error leaves the key
//! byte-for-byte unchanged (DIGEST-VALUE, PEXPIRETIME, TYPE) and the server alive.

mod common;

use common::{Conn, Server, ALGOS};

const LIMIT_ERR: &str = "ERR limit must be an integer from 1 to 9223372036854775807";
const COST_ERR: &str = "ERR COST must be an integer from 0 to 9223372036854775807";
const BURST_ERR: &str = "ERR BURST must be an integer from 1 to 9223372036854775807";

/// Runs `args` (the full command, as separate arguments) against `key`, which must end up
/// unchanged; returns the error line.
fn err_unchanged(s: &Server, c: &mut Conn, key: &[u8], args: &[&[u8]]) -> String {
    let before = c.snapshot(key);
    let r = c.cmd(args);
    let shown: Vec<String> = args
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let e = match r.error() {
        Some(e) => e.to_string(),
        None => panic!("`{}`: expected an error, got {r:?}", shown.join(" ")),
    };
    assert_eq!(
        c.snapshot(key),
        before,
        "`{}` changed the key",
        shown.join(" ")
    );
    s.assert_alive();
    e
}

/// `RL.<cmd> key <args>` (whitespace-split) must fail with exactly `want`.
#[track_caller]
fn expect_err(s: &Server, c: &mut Conn, cmd: &str, key: &str, args: &str, want: &str) {
    let e = run_err(s, c, cmd, key, args);
    assert_eq!(e, want, "RL.{cmd} {key} {args}");
}

/// `RL.<cmd> key <args>` must fail with an error starting with `prefix`.
#[track_caller]
fn expect_err_prefix(s: &Server, c: &mut Conn, cmd: &str, key: &str, args: &str, prefix: &str) {
    let e = run_err(s, c, cmd, key, args);
    assert!(
        e.starts_with(prefix),
        "RL.{cmd} {key} {args}: got `{e}`, want `{prefix}…`"
    );
}

fn run_err(s: &Server, c: &mut Conn, cmd: &str, key: &str, args: &str) -> String {
    let name = format!("RL.{cmd}");
    let mut v: Vec<&[u8]> = vec![name.as_bytes(), key.as_bytes()];
    v.extend(args.split_whitespace().map(str::as_bytes));
    err_unchanged(s, c, key.as_bytes(), &v)
}

/// A server with an existing limiter of every algorithm (`k:<algo>`, used twice) and no `missing`.
fn setup() -> (Server, Conn) {
    let s = Server::start();
    let mut c = s.conn();
    for algo in ALGOS {
        let k = format!("k:{algo}");
        c.allow(&k, &format!("5 1h ALGO {algo}"));
        c.allow(&k, &format!("5 1h ALGO {algo}"));
    }
    (s, c)
}

/// Keys to try every bad input on: a missing one and one per algorithm.
fn keys() -> Vec<String> {
    let mut v = vec!["missing".to_string()];
    v.extend(ALGOS.iter().map(|a| format!("k:{a}")));
    v
}

#[test]
fn arity() {
    let (s, mut c) = setup();
    for cmd in ["RL.ALLOW", "RL.PEEK", "rl.allow"] {
        for args in [vec![], vec!["k:gcra"], vec!["k:gcra", "5"]] {
            let mut v: Vec<&[u8]> = vec![cmd.as_bytes()];
            v.extend(args.iter().map(|a| a.as_bytes()));
            let e = err_unchanged(&s, &mut c, b"k:gcra", &v);
            assert!(
                e.starts_with("ERR wrong number of arguments"),
                "{cmd} {args:?}: {e}"
            );
        }
    }
    for args in [vec![], vec!["k:gcra"]] {
        let mut v: Vec<&[u8]> = vec![b"RL.SETSTATE"];
        v.extend(args.iter().map(|a| a.as_bytes()));
        let e = err_unchanged(&s, &mut c, b"k:gcra", &v);
        assert!(
            e.starts_with("ERR wrong number of arguments"),
            "RL.SETSTATE {args:?}: {e}"
        );
    }
    let e = err_unchanged(
        &s,
        &mut c,
        b"k:gcra",
        &[b"RL.SETSTATE", b"k:gcra", b"p", b"extra"],
    );
    assert!(
        e.starts_with("ERR wrong number of arguments"),
        "RL.SETSTATE with 3 args: {e}"
    );
}

#[test]
fn bad_limit() {
    let (s, mut c) = setup();
    for key in keys() {
        for cmd in ["ALLOW", "PEEK"] {
            for limit in [
                "abc",
                "1.5",
                "-1",
                "0",
                "99999999999999999999",
                "9223372036854775808",
                "",
                "1e3",
                "+",
            ] {
                let args = format!("{limit} 1h");
                if limit.is_empty() {
                    // An empty argument cannot go through the whitespace split.
                    let name = format!("RL.{cmd}");
                    let e = err_unchanged(
                        &s,
                        &mut c,
                        key.as_bytes(),
                        &[name.as_bytes(), key.as_bytes(), b"", b"1h"],
                    );
                    assert_eq!(e, LIMIT_ERR);
                    continue;
                }
                expect_err(&s, &mut c, cmd, &key, &args, LIMIT_ERR);
            }
        }
        assert!(!c.exists("missing"));
    }
    // The largest limit is accepted.
    let r = c.allow("big", "9223372036854775807 1h ALGO fixed-window");
    assert_eq!(r.acr(), (true, i64::MAX, i64::MAX - 1));
}

#[test]
fn bad_window() {
    let (s, mut c) = setup();
    for key in keys() {
        for cmd in ["ALLOW", "PEEK"] {
            for w in [
                "0",
                "-1",
                "1.5",
                "10x",
                "366d",
                "0ms",
                "0s",
                "-5s",
                "abc",
                "ms",
                "1.5.5s",
                "1 s",
                "s1",
                "367d",
                "8760h1",
                "1e3ms",
                "99999999999999999999",
                "99999999999999999999ms",
                "31536001",
                "365.0000001d",
                "525601m",
                "0.0004ms",
                "1.5ms5",
                ".s",
            ] {
                let name = format!("RL.{cmd}");
                let e = err_unchanged(
                    &s,
                    &mut c,
                    key.as_bytes(),
                    &[name.as_bytes(), key.as_bytes(), b"5", w.as_bytes()],
                );
                assert!(e.starts_with("ERR window must be"), "window `{w}`: {e}");
            }
            let name = format!("RL.{cmd}");
            let e = err_unchanged(
                &s,
                &mut c,
                key.as_bytes(),
                &[name.as_bytes(), key.as_bytes(), b"5", b""],
            );
            assert!(e.starts_with("ERR window must be"), "empty window: {e}");
        }
    }
    assert!(!c.exists("missing"));
    // The edges that are accepted.
    for w in [
        "365d", "8760h", "1ms", "0.001s", "1", "31536000", "525600m", "0.0006ms",
    ] {
        c.allow(format!("edge:{w}"), &format!("1 {w} ALGO fixed-window"));
    }
}

#[test]
fn bad_cost() {
    let (s, mut c) = setup();
    for key in keys() {
        for cmd in ["ALLOW", "PEEK"] {
            for cost in [
                "abc",
                "1.5",
                "-1",
                "99999999999999999999",
                "9223372036854775808",
                "1x",
            ] {
                expect_err(
                    &s,
                    &mut c,
                    cmd,
                    &key,
                    &format!("5 1h COST {cost}"),
                    COST_ERR,
                );
            }
            expect_err(&s, &mut c, cmd, &key, "5 1h COST", "ERR COST needs a value");
            expect_err(
                &s,
                &mut c,
                cmd,
                &key,
                "5 1h ALGO gcra COST",
                "ERR COST needs a value",
            );
        }
    }
    assert!(!c.exists("missing"));
}

#[test]
fn bad_burst() {
    let (s, mut c) = setup();
    for cmd in ["ALLOW", "PEEK"] {
        for key in ["missing", "k:gcra"] {
            for b in [
                "abc",
                "1.5",
                "-1",
                "0",
                "99999999999999999999",
                "9223372036854775808",
            ] {
                expect_err(
                    &s,
                    &mut c,
                    cmd,
                    key,
                    &format!("5 1h ALGO gcra BURST {b}"),
                    BURST_ERR,
                );
            }
            expect_err(
                &s,
                &mut c,
                cmd,
                key,
                "5 1h ALGO gcra BURST",
                "ERR BURST needs a value",
            );
        }
        for key in keys() {
            for args in [
                "5 1h BURST 5",
                "5 1h BURST 10",
                "5 1h ALGO fixed-window BURST 5",
                "5 1h BURST 5 ALGO sliding-window",
                "5 1h ALGO sliding-window BURST 3",
            ] {
                expect_err(
                    &s,
                    &mut c,
                    cmd,
                    &key,
                    args,
                    "ERR BURST applies only to ALGO gcra",
                );
            }
        }
    }
    assert!(!c.exists("missing"));
}

#[test]
fn bad_algo_and_options() {
    let (s, mut c) = setup();
    for key in keys() {
        for cmd in ["ALLOW", "PEEK"] {
            expect_err_prefix(
                &s,
                &mut c,
                cmd,
                &key,
                "5 1h ALGO leaky",
                "ERR unknown ALGO 'leaky'",
            );
            expect_err_prefix(
                &s,
                &mut c,
                cmd,
                &key,
                "5 1h ALGO token",
                "ERR unknown ALGO 'token'",
            );
            expect_err(&s, &mut c, cmd, &key, "5 1h ALGO", "ERR ALGO needs a value");
            expect_err_prefix(
                &s,
                &mut c,
                cmd,
                &key,
                "5 1h FOO 1",
                "ERR unknown option 'FOO'",
            );
            expect_err_prefix(&s, &mut c, cmd, &key, "5 1h 7", "ERR unknown option '7'");
            expect_err_prefix(
                &s,
                &mut c,
                cmd,
                &key,
                "5 1h COST 1 X",
                "ERR unknown option 'X'",
            );
            for (args, opt) in [
                ("5 1h COST 1 COST 1", "COST"),
                ("5 1h COST 1 cost 2", "COST"),
                ("5 1h ALGO gcra ALGO gcra", "ALGO"),
                ("5 1h ALGO gcra BURST 5 BURST 5", "BURST"),
                ("5 1h ALGO fixed-window COST 1 algo fixed-window", "ALGO"),
            ] {
                let want = format!("ERR {opt} given more than once");
                expect_err(&s, &mut c, cmd, &key, args, &want);
            }
        }
    }
    assert!(!c.exists("missing"));
}

#[test]
fn gcra_takes_more_than_one_request_per_microsecond() {
    // gcra is exact in units of 1/limit µs: no lower bound on window / limit any more.
    let (_s, mut c) = setup();
    for (key, args) in [
        ("g1", "2000 1ms ALGO gcra"),
        ("g2", "1000001 1s ALGO gcra"),
        ("g3", "9223372036854775807 1h ALGO gcra"),
    ] {
        let r = c.allow(key, args);
        assert!(r.allowed, "{args}: {r:?}");
        assert_eq!(r.remaining, r.capacity - 1, "{args}");
    }
    c.allow("ok:fw", "2000 1ms ALGO fixed-window");
    c.allow("ok:sw", "2000 1ms ALGO sliding-window");
}

#[test]
fn algorithm_mismatch() {
    let (s, mut c) = setup();
    for stored in ALGOS {
        for requested in ALGOS {
            if stored == requested {
                continue;
            }
            let key = format!("k:{stored}");
            let args = if requested == "sliding-window" {
                // The default algorithm, not named.
                "5 1h".to_string()
            } else {
                format!("5 1h ALGO {requested}")
            };
            let want = format!("ERR key holds a {stored} limiter, not {requested}");
            for cmd in ["ALLOW", "PEEK"] {
                expect_err_prefix(&s, &mut c, cmd, &key, &args, &want);
                expect_err_prefix(&s, &mut c, cmd, &key, &format!("{args} COST 0"), &want);
            }
        }
    }
}

#[test]
fn wrong_type() {
    let (s, mut c) = setup();
    c.cmd_str("SET str v").ok();
    c.cmd_str("RPUSH list a b").ok();
    c.cmd_str("HSET hash f v").ok();
    c.cmd_str("SADD set m").ok();
    c.cmd_str("ZADD zset 1 m").ok();
    c.cmd_str("XADD stream * f v").ok();
    c.cmd_str("PEXPIRE str 100000").ok();
    for key in ["str", "list", "hash", "set", "zset", "stream"] {
        for cmd in ["ALLOW", "PEEK"] {
            for args in [
                "5 1h",
                "5 1h ALGO gcra",
                "5 1h ALGO fixed-window COST 0",
                "5 1h COST 9",
            ] {
                expect_err(
                    &s,
                    &mut c,
                    cmd,
                    key,
                    args,
                    "WRONGTYPE Operation against a key holding the wrong kind of value",
                );
            }
        }
    }
    assert_eq!(c.cmd_str("GET str").text(), "v");
}

#[test]
fn binary_keys_and_errors() {
    let (s, mut c) = setup();
    let key: &[u8] = b"\x80\xff\x00bin\xc3\x28";
    c.cmd(&[b"RL.ALLOW".as_slice(), key, b"3", b"1h"]).ok();
    let e = err_unchanged(&s, &mut c, key, &[b"RL.ALLOW", key, b"0", b"1h"]);
    assert_eq!(e, LIMIT_ERR);
    let e = err_unchanged(
        &s,
        &mut c,
        key,
        &[b"RL.ALLOW", key, b"3", b"1h", b"ALGO", b"gcra"],
    );
    assert!(
        e.starts_with("ERR key holds a sliding-window limiter, not gcra"),
        "{e}"
    );
    // A non-UTF-8 option name is an unknown option, not a crash.
    let e = err_unchanged(
        &s,
        &mut c,
        key,
        &[b"RL.ALLOW", key, b"3", b"1h", b"\xff\xfe", b"1"],
    );
    assert!(e.starts_with("ERR unknown option '"), "{e}");
    let e = err_unchanged(
        &s,
        &mut c,
        key,
        &[b"RL.ALLOW", key, b"3", b"1h", b"ALGO", b"\xff"],
    );
    assert!(e.starts_with("ERR unknown ALGO '"), "{e}");
    let e = err_unchanged(&s, &mut c, key, &[b"RL.ALLOW", key, b"\xff", b"1h"]);
    assert_eq!(e, LIMIT_ERR);
    let e = err_unchanged(&s, &mut c, key, &[b"RL.ALLOW", key, b"3", b"1\xffs"]);
    assert!(e.starts_with("ERR window must be"), "{e}");
    let r = c.cmd(&[b"RL.PEEK".as_slice(), key, b"3", b"1h"]).ok();
    assert_eq!(r.ints()[..3], [1, 3, 1]);
}

#[test]
fn gcra_tolerance_too_large() {
    let (s, mut c) = setup();
    // BURST × interval beyond what the state can represent is refused, not overflowed.
    let want = "ERR gcra BURST * window / limit must not exceed 100 years";
    for args in [
        "1 365d ALGO gcra BURST 9223372036854775807",
        "1 365d ALGO gcra BURST 1000",
    ] {
        expect_err(&s, &mut c, "ALLOW", "missing", args, want);
        expect_err(&s, &mut c, "ALLOW", "k:gcra", args, want);
    }
    assert!(!c.exists("missing"));
}

#[test]
fn errors_touch_nothing() {
    let (s, mut c) = setup();
    c.cmd_str("SET str v").ok();
    let before = s.digest();
    for cmd in [
        "RL.ALLOW k:gcra 0 1h",
        "RL.ALLOW k:gcra 5 1h ALGO fixed-window",
        "RL.ALLOW missing 5 1h COST",
        "RL.ALLOW str 5 1h",
        "RL.ALLOW missing 5 1h BURST 2",
        "RL.SETSTATE k:gcra garbage",
        "RL.SETSTATE missing garbage",
    ] {
        let r = c.cmd_str(cmd);
        assert!(r.error().is_some(), "{cmd}: {r:?}");
    }
    assert_eq!(s.digest(), before);
    assert_eq!(c.cmd_str("DBSIZE").int(), ALGOS.len() as i64 + 1);
}

#[test]
fn error_replies_are_short_ascii_and_quote_arguments_safely() {
    let (s, mut c) = setup();
    let long = vec![b'A'; 10_000];
    let mut args: Vec<&[u8]> = vec![b"RL.ALLOW", b"k", b"5", b"1h", &long, b"1"];
    let e = c.cmd(&args).expect_err().to_string();
    assert_eq!(
        e,
        format!(
            "ERR unknown option '{}...': expected COST, ALGO, BURST or BLOCK",
            "A".repeat(32)
        )
    );
    args[4] = b"ALGO";
    args[5] = b"x\r\ny\xff'";
    let e = c.cmd(&args).expect_err().to_string();
    assert_eq!(
        e,
        "ERR unknown ALGO 'x\\x0d\\x0ay\\xff\\x27': use sliding-window, fixed-window, gcra, moving-window or limits-sliding-window"
    );
    // Every error text is ASCII.
    for line in [
        "RL.ALLOW k 1 365d ALGO gcra BURST 1000",
        "RL.ALLOW k 0 1h",
        "RL.ALLOW k 1 0",
        "RL.ALLOW k 1 1h COST x",
    ] {
        let e = c.cmd_str(line).expect_err().to_string();
        assert!(e.is_ascii(), "{e}");
    }
    s.assert_alive();
}

#[test]
fn numbers_parse_alike_whatever_their_length() {
    let (_s, mut c) = setup();
    // Leading zeros and long fractions are accepted everywhere, and rounded to the µs.
    let r = c.allow(
        "z",
        "0000000000000000000003 1.0000000000000000000s COST 0000000000000000000002",
    );
    assert_eq!((r.allowed, r.capacity, r.remaining), (true, 3, 1));
    let r = c.allow("z", "03 0000000000000000000001 COST 01");
    assert_eq!(r.remaining, 0, "the same rule written differently");
    // Twenty significant digits are too many; a sign or a space is not a digit.
    for args in ["10000000000000000000 1s", "+1 1s", "1 +1s", "1 1 s"] {
        assert!(c.rl_raw("ALLOW", "z2", args).error().is_some(), "{args}");
    }
}
