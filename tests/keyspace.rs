//! What other clients see of a limiter key: WATCH, client tracking and keyspace notifications
//! fire for real writes only (an admission, a stored conversion, RL.SETSTATE), never for a
//! denial, a peek, COST 0 or an error; the key specs route every command's key.

mod common;

use std::time::Duration;

use common::{Conn, Reply, Server};
use redis_ratelimit::algo::{Algorithm, FixedWindowState, Limiter, Rule, State};
use redis_ratelimit::datatype::codec::encode;

/// A connection subscribed to `channel` (SUBSCRIBE) or `pattern` (PSUBSCRIBE).
fn subscriber(s: &Server, cmd: &str, channel: &str) -> Conn {
    let mut sub = s.conn();
    let r = sub.cmd(&[cmd, channel]);
    assert_eq!(r.array().len(), 3, "{r:?}");
    sub.set_read_timeout(Duration::from_millis(300));
    sub
}

/// Messages that arrive within the read timeout.
fn drain(sub: &mut Conn) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    while let Ok(r) = sub.read() {
        out.push(r.flat());
    }
    out
}

#[test]
fn watch_survives_a_denial_and_is_aborted_by_an_admission() {
    let s = Server::start();
    let mut c = s.conn();
    let mut other = s.conn();
    for algo in common::ALGOS {
        let key = format!("w:{algo}");
        let args = format!("1 1h ALGO {algo}");
        other.allow(&key, &args);
        let tx = |c: &mut Conn| {
            c.cmd(&["MULTI"]).ok();
            c.cmd(&["SET", "marker", "1"]);
            c.cmd(&["EXEC"])
        };
        // Denials, peeks, COST 0, cost above capacity and errors leave a WATCH alone.
        c.cmd(&["WATCH", &key]).ok();
        assert!(!other.allow(&key, &args).allowed);
        other.peek(&key, &args);
        other.allow(&key, &format!("{args} COST 0"));
        assert_eq!(other.allow(&key, &format!("{args} COST 5")).retry_ms, -1);
        assert!(other
            .rl_raw("ALLOW", &key, "1 1h ALGO nope")
            .error()
            .is_some());
        assert!(
            matches!(tx(&mut c), Reply::Array(_)),
            "{algo}: EXEC aborted"
        );
        // An admission aborts it.
        let fresh = format!("{key}:fresh");
        c.cmd(&["WATCH", &fresh]).ok();
        assert!(other.allow(&fresh, &args).allowed);
        assert_eq!(tx(&mut c), Reply::Nil, "{algo}: EXEC not aborted");
    }
}

#[test]
fn client_tracking_is_invalidated_by_writes_only() {
    let s = Server::start();
    let mut reader = s.conn();
    let mut writer = s.conn();
    writer.allow("t", "1 1h");
    let mut sub = subscriber(&s, "SUBSCRIBE", "__redis__:invalidate");
    let sub_id = {
        let mut c = s.conn();
        // The subscriber's client id: the newest CLIENT LIST entry with a subscription.
        let list = c.cmd(&["CLIENT", "LIST"]).text();
        list.lines()
            .find(|l| l.contains("sub=1"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|f| f.strip_prefix("id="))
            .unwrap()
            .to_string()
    };
    reader
        .cmd(&["CLIENT", "TRACKING", "on", "REDIRECT", &sub_id])
        .ok();
    let track = |reader: &mut Conn| {
        reader.peek("t", "1 1h");
    };
    track(&mut reader);
    assert!(!writer.allow("t", "1 1h").allowed);
    writer.allow("t", "1 1h COST 0");
    writer.peek("t", "1 1h");
    assert_eq!(
        drain(&mut sub),
        Vec::<Vec<String>>::new(),
        "a denial invalidated"
    );
    // A write: RL.ALLOW under a raised limit admits and stores.
    assert!(writer.allow("t", "2 1h").allowed);
    let msgs = drain(&mut sub);
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0], ["message", "__redis__:invalidate", "t"]);
    // Tracked again, then RL.SETSTATE (what a replica applies) invalidates too.
    track(&mut reader);
    let now = writer.time_us() as u64;
    let rule = Rule::new(Algorithm::FixedWindow, 2, 3_600_000_000, None).unwrap();
    let state = State::FixedWindow(FixedWindowState {
        window_start_us: now,
        count: 1,
    });
    let payload = encode(&Limiter { rule, state });
    writer
        .cmd(&[b"RL.SETSTATE".as_slice(), b"t2", &payload])
        .ok();
    reader.peek("t2", "2 1h ALGO fixed-window");
    writer
        .cmd(&[b"RL.SETSTATE".as_slice(), b"t2", &payload])
        .ok();
    let msgs = drain(&mut sub);
    assert!(msgs.iter().any(|m| m[2] == "t2"), "{msgs:?}");
}

#[test]
fn keyspace_notifications_for_writes_only() {
    let s = Server::start();
    let mut c = s.conn();
    c.cmd_str("CONFIG SET notify-keyspace-events KEA").ok();
    let mut sub = subscriber(&s, "PSUBSCRIBE", "__keyevent@0__:*");
    let events = |sub: &mut Conn| -> Vec<(String, String)> {
        drain(sub)
            .into_iter()
            .map(|m| {
                (
                    m[2].trim_start_matches("__keyevent@0__:").to_string(),
                    m[3].clone(),
                )
            })
            .collect()
    };
    assert!(c.allow("n", "1 1h").allowed);
    assert_eq!(
        events(&mut sub),
        [("rl.allow".to_string(), "n".to_string())]
    );
    assert!(!c.allow("n", "1 1h").allowed);
    c.peek("n", "1 1h");
    c.allow("n", "1 1h COST 0");
    c.allow("n", "1 1h COST 9");
    assert!(c.rl_raw("ALLOW", "n", "1 1h ALGO gcra").error().is_some());
    assert_eq!(events(&mut sub), []);
    // A denial under a changed rule stores the converted state: a write.
    assert!(!c.allow("n", "1 2h").allowed);
    assert_eq!(
        events(&mut sub),
        [("rl.allow".to_string(), "n".to_string())]
    );
    // PERSIST, then the module's repair of the TTL (by the TTL sweep, a moment later).
    c.cmd(&["PERSIST", "n"]).int();
    common::wait_until(Duration::from_secs(15), "the TTL sweep", || c.pttl("n") > 0);
    assert_eq!(
        events(&mut sub),
        [
            ("persist".to_string(), "n".to_string()),
            ("expire".to_string(), "n".to_string())
        ]
    );
    // Only the module class: flag d.
    c.cmd_str("CONFIG SET notify-keyspace-events Ed").ok();
    assert!(c.allow("m", "1 1h").allowed);
    c.cmd(&["SET", "x", "1"]).ok();
    assert_eq!(
        events(&mut sub),
        [("rl.allow".to_string(), "m".to_string())]
    );
}

#[test]
fn setstate_notifies_rl_setstate() {
    let master = Server::start();
    let replica = master.start_replica();
    let mut r = replica.conn();
    r.cmd_str("CONFIG SET notify-keyspace-events Ed").ok();
    let mut sub = subscriber(&replica, "PSUBSCRIBE", "__keyevent@0__:*");
    let mut c = master.conn();
    assert!(c.allow("k", "3 1h").allowed);
    master.wait_replicas(&mut c, 1);
    let msgs = drain(&mut sub);
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0][2], "__keyevent@0__:rl.setstate");
    assert_eq!(msgs[0][3], "k");
}

#[test]
fn key_specs_route_every_command() {
    let s = Server::start();
    let mut c = s.conn();
    let keys = |c: &mut Conn, line: &str| -> Vec<String> {
        let args: Vec<&str> = line.split_whitespace().collect();
        let mut v = vec!["COMMAND", "GETKEYS"];
        v.extend(args);
        c.cmd(&v).flat()
    };
    assert_eq!(keys(&mut c, "RL.ALLOW user:1 10 1m"), ["user:1"]);
    assert_eq!(keys(&mut c, "RL.PEEK user:1 10 1m ALGO gcra"), ["user:1"]);
    assert_eq!(keys(&mut c, "RL.INSPECT user:1"), ["user:1"]);
    assert_eq!(keys(&mut c, "RL.SETSTATE user:1 payload"), ["user:1"]);
}

#[test]
fn debug_panic_open_declares_its_key() {
    let s = common::NodeConfig::new()
        .module_args(&["enable-debug-command", "yes"])
        .start();
    let mut c = s.conn();
    let r = c.cmd_str("COMMAND GETKEYS RL.DEBUG PANIC-OPEN other:1");
    assert_eq!(r.flat(), ["other:1"]);
    // A user limited to user:* may not open other:1 — the ACL checks the key, not the
    // subcommand.
    c.cmd_str("ACL SETUSER app on >pw ~user:* +@all").ok();
    let mut app = s.conn();
    app.cmd_str("AUTH app pw").ok();
    let e = app.cmd_str("RL.DEBUG PANIC-OPEN other:1");
    assert!(e.error().is_some_and(|e| e.starts_with("NOPERM")), "{e:?}");
    let e = app.cmd_str("RL.DEBUG PANIC-OPEN user:1");
    assert!(
        e.error()
            .is_some_and(|e| e.starts_with("ERR internal error")),
        "{e:?}"
    );
    s.assert_alive();
}

#[test]
fn move_and_copy_keep_the_caller_s_database() {
    // A module subscribed to generic keyspace events must not move its callers between
    // databases (valkey-io/valkey#4024): MOVE and COPY … DB leave the connection where it was,
    // by default and with `ttl-hook yes` (which Valkey 8.1 – 9.1 refuse for that reason).
    move_and_copy_keep_the_database(common::NodeConfig::new().start());
    let s = common::NodeConfig::new()
        .module_args(&["ttl-hook", "yes"])
        .start();
    let mut c = s.conn();
    let valkey = c.info("server").contains("valkey_version:");
    assert_eq!(c.stat("keyspace_hook"), i64::from(!valkey));
    move_and_copy_keep_the_database(s);
}

fn move_and_copy_keep_the_database(s: Server) {
    let mut c = s.conn();
    c.allow("lim", "5 1h");
    c.cmd_str("SET str v").ok();
    assert_eq!(c.cmd_str("MOVE lim 3").int(), 1);
    assert_eq!(c.cmd_str("MOVE str 3").int(), 1);
    assert_eq!(c.cmd_str("COPY lim:none x DB 4").int(), 0);
    c.cmd_str("SET other v").ok();
    assert_eq!(c.cmd_str("COPY other other2 DB 4").int(), 1);
    // Still on db 0: the keys left behind and created here are visible, the moved ones not.
    assert_eq!(c.cmd_str("EXISTS other").int(), 1);
    assert_eq!(c.cmd_str("EXISTS lim").int(), 0);
    let info = c.cmd_str("CLIENT INFO").text();
    assert!(info.contains(" db=0 "), "{info}");
}
