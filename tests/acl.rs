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
