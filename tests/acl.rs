//! ACL: the module's commands are in their own category `@ratelimit` where the server can add
//! one (Redis 7.4+, Valkey 8+; checked at run time), and the replication-only commands can be
//! taken away from application users with `-rl.setstate -rl.apply` on every server.

mod common;

use common::resp::{Conn, Reply};
use common::Server;

fn login(s: &Server, user: &str) -> Conn {
    let mut c = s.conn();
    let r = c.cmd(&["AUTH", user, "pw"]);
    assert_eq!(r, Reply::Status("OK".into()), "AUTH {user}");
    c
}

fn is_noperm(r: &Reply) -> bool {
    matches!(r, Reply::Error(e) if e.starts_with("NOPERM"))
}

#[test]
fn application_users_cannot_inject_state() {
    let s = Server::start();
    let mut admin = s.conn();
    admin
        .cmd_str("ACL SETUSER app on >pw ~* +@all -rl.setstate -rl.apply")
        .ok();
    let mut app = login(&s, "app");
    assert!(app.allow("k", "10 1m").allowed);
    assert_eq!(app.peek("k", "10 1m COST 0").remaining, 9);
    assert!(is_noperm(&app.cmd(&["RL.SETSTATE", "k", "x"])));
    assert!(is_noperm(&app.cmd(&["RL.APPLY", "k", "x"])));
    // The key is as the admitted request left it.
    assert_eq!(admin.peek("k", "10 1m COST 0").remaining, 9);
}

#[test]
fn the_ratelimit_category_where_the_server_has_one() {
    let s = Server::start();
    let mut admin = s.conn();
    let cats = admin.cmd(&["ACL", "CAT"]);
    let Reply::Array(cats) = cats else {
        panic!("{cats:?}")
    };
    let has = cats
        .iter()
        .any(|c| matches!(c, Reply::Bulk(b) if b.as_slice() == b"ratelimit"));
    if !has {
        // Redis 7.0 cannot add categories: the module loads without one.
        assert!(matches!(
            admin.cmd(&["ACL", "CAT", "ratelimit"]),
            Reply::Error(_)
        ));
        return;
    }
    let Reply::Array(cmds) = admin.cmd(&["ACL", "CAT", "ratelimit"]) else {
        panic!()
    };
    let mut names: Vec<String> = cmds
        .iter()
        .map(|c| match c {
            Reply::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("{other:?}"),
        })
        .collect();
    names.sort();
    for want in [
        "rl.acquire",
        "rl.allow",
        "rl.apply",
        "rl.inspect",
        "rl.peek",
        "rl.release",
        "rl.setstate",
        "rl.throttle",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    // A user with only the category and keys user:* limits its own keys, and nothing else.
    admin
        .cmd_str("ACL SETUSER limited on >pw ~user:* +@ratelimit -rl.setstate -rl.apply")
        .ok();
    let mut u = login(&s, "limited");
    assert!(u.allow("user:1", "3 1m").allowed);
    assert!(is_noperm(&u.cmd(&["RL.ALLOW", "other:1", "3", "1m"])));
    assert!(is_noperm(&u.cmd(&["GET", "user:1"])));
    assert!(is_noperm(&u.cmd(&["RL.SETSTATE", "user:1", "x"])));
}

/// Every command, with `K` where its key goes (`L` for a lease key), and whether it only reads.
const EVERY_COMMAND: [(&str, bool); 14] = [
    ("RL.ALLOW K 10 1m", false),
    ("RL.PEEK K 10 1m", true),
    ("RL.INSPECT K", true),
    ("RL.ALLOWALL 2 user:own K 10 1m 10 1m", false),
    ("RL.PEEKALL 2 user:own K 10 1m 10 1m", true),
    ("RL.CHARGE K 10 1m 1", false),
    ("RL.REFUND K 10 1m 1", false),
    ("RL.THROTTLE T 10 10 60", false),
    ("CL.THROTTLE T 10 10 60", false),
    ("GCRA T 10 10 60", false),
    ("RL.ACQUIRE L 10 1m", false),
    ("RL.RELEASE L w1", false),
    ("RL.SETSTATE K x", false),
    ("RL.APPLY K x", false),
];

fn with_keys(line: &str, prefix: &str) -> Vec<String> {
    line.split(' ')
        .map(|w| match w {
            "K" => format!("{prefix}k"),
            "T" => format!("{prefix}t"),
            "L" => format!("{prefix}l"),
            other => other.to_string(),
        })
        .collect()
}

/// Limiter keys of every kind under `prefix`.
fn fill(c: &mut Conn, prefix: &str) {
    c.cmd(&with_keys("RL.ALLOW K 10 1m", prefix)).ok();
    c.cmd(&with_keys("RL.THROTTLE T 10 10 60", prefix)).ok();
    c.cmd(&with_keys("RL.ACQUIRE L 10 1m ID w1", prefix)).ok();
}

fn digests(c: &mut Conn, prefix: &str) -> Vec<String> {
    ["k", "t", "l"]
        .iter()
        .map(|k| c.digest_value(format!("{prefix}{k}")))
        .collect()
}

#[test]
fn a_key_pattern_keeps_every_command_off_other_keys() {
    let s = Server::start();
    let mut admin = s.conn();
    admin
        .cmd_str("ACL SETUSER scoped on >pw ~user:* +@all")
        .ok();
    fill(&mut admin, "other:");
    fill(&mut admin, "user:");
    let before = digests(&mut admin, "other:");
    let mut u = login(&s, "scoped");
    for (line, _) in EVERY_COMMAND {
        let r = u.cmd(&with_keys(line, "other:"));
        assert!(is_noperm(&r), "{line} on other:*: {r:?}");
        // The same command on its own keys passes the ACL (it may fail for other reasons:
        // RL.SETSTATE / RL.APPLY with a bad payload).
        let r = u.cmd(&with_keys(line, "user:"));
        assert!(!is_noperm(&r), "{line} on user:*: {r:?}");
    }
    assert_eq!(digests(&mut admin, "other:"), before, "other keys changed");
    assert!(admin.pttl("other:k") > 0);
}

#[test]
fn read_only_key_permission_runs_exactly_the_read_only_commands() {
    let s = Server::start();
    let mut admin = s.conn();
    admin.cmd_str("ACL SETUSER reader on >pw %R~* +@all").ok();
    fill(&mut admin, "user:");
    admin.cmd_str("RL.ALLOW user:own 10 1m").ok();
    let before = digests(&mut admin, "user:");
    let mut u = login(&s, "reader");
    for (line, read_only) in EVERY_COMMAND {
        let r = u.cmd(&with_keys(line, "user:"));
        if read_only {
            assert!(r.error().is_none(), "{line}: {r:?}");
        } else {
            assert!(is_noperm(&r), "{line}: {r:?}");
        }
    }
    assert_eq!(digests(&mut admin, "user:"), before);
}
