//! State survives DEBUG RELOAD, an RDB restart, an AOF restart and an AOF rewrite: same digest,
//! same absolute expiry, and the next request continues counting (nothing charged twice, nothing
//! forgotten). RL.SETSTATE (what replicas and the AOF receive) rejects garbage.

mod common;

use std::fs;
use std::time::Duration;

use common::{Conn, NodeConfig, Reply, Rl, Rng, Server, ALGOS};

/// The keys each test writes: (key, args). Every algorithm, COST, BURST, a binary key name.
fn workload() -> Vec<(Vec<u8>, String)> {
    let mut v = Vec::new();
    for algo in ALGOS {
        v.push((
            format!("p:{algo}:a").into_bytes(),
            format!("5 1h ALGO {algo}"),
        ));
        v.push((
            format!("p:{algo}:b").into_bytes(),
            format!("10 2h ALGO {algo} COST 3"),
        ));
    }
    v.push((
        b"p:gcra:burst".to_vec(),
        "4 1h ALGO gcra BURST 9".to_string(),
    ));
    v.push((
        b"p:\xff\x00bin".to_vec(),
        "3 1d ALGO fixed-window".to_string(),
    ));
    v
}

/// Writes the workload: two charges per key (the second may be denied for COST 3 keys: fine).
/// Returns how many were allowed (= writes).
fn populate(c: &mut Conn) -> usize {
    let mut allowed = 0;
    for (k, args) in workload() {
        allowed += c.allow(&k, &args).allowed as usize;
        allowed += c.allow(&k, &args).allowed as usize;
    }
    // A denial and a peek in between change nothing, but keep them in the stream.
    c.allow(b"p:fixed-window:a", "5 1h ALGO fixed-window COST 9");
    c.peek(b"p:gcra:a", "5 1h ALGO gcra");
    allowed
}

/// Everything a key's state determines: digest, expiry, type, and what a peek would say.
#[derive(Debug)]
struct KeyState {
    snapshot: (String, i64, String),
    peek: Rl,
}

fn capture(c: &mut Conn) -> (String, Vec<KeyState>) {
    let digest = c.cmd(&["DEBUG", "DIGEST"]).ok().text();
    let states = workload()
        .into_iter()
        .map(|(k, args)| KeyState {
            snapshot: c.snapshot(&k),
            peek: c.peek(&k, &args),
        })
        .collect();
    (digest, states)
}

/// The state after a reload/restart equals `before`, and each key's next ALLOW continues from
/// where it was (its remaining is what the peek before the restart said).
fn assert_same_and_continues(c: &mut Conn, before: &(String, Vec<KeyState>), what: &str) {
    let after = capture(c);
    assert_eq!(after.0, before.0, "{what}: DEBUG DIGEST differs");
    for ((k, args), (b, a)) in workload().iter().zip(before.1.iter().zip(&after.1)) {
        let name = String::from_utf8_lossy(k);
        assert_eq!(a.snapshot, b.snapshot, "{what}: key {name} changed");
        assert!(a.snapshot.1 > 0, "{what}: key {name} lost its expiry");
        assert_eq!(a.peek.acr(), b.peek.acr(), "{what}: key {name} peek");
        let r = c.allow(k, args);
        assert_eq!(r.acr(), b.peek.acr(), "{what}: key {name}: next ALLOW");
    }
}

#[test]
fn debug_reload_keeps_state() {
    let s = Server::start();
    let mut c = s.conn();
    populate(&mut c);
    let before = capture(&mut c);
    c.cmd(&["DEBUG", "RELOAD"]).ok();
    assert_same_and_continues(&mut c, &before, "DEBUG RELOAD");
}

#[test]
fn rdb_restart_keeps_state_and_ttl() {
    let mut s = Server::start();
    let mut c = s.conn();
    populate(&mut c);
    let before = capture(&mut c);
    c.cmd(&["SAVE"]).ok();
    s.restart();
    let mut c = s.conn();
    assert_same_and_continues(&mut c, &before, "RDB restart");
    // And once more after the post-restart writes.
    let before = capture(&mut c);
    c.cmd(&["SAVE"]).ok();
    s.restart();
    assert_same_and_continues(&mut s.conn(), &before, "second RDB restart");
}

fn aof_server() -> Server {
    // `always`: every write is in the file before the reply. With `everysec` a busy machine may
    // postpone the write by up to 2 s, and the tests read the file right away.
    NodeConfig::new()
        .set("appendonly", "yes")
        .set("appendfsync", "always")
        .start()
}

fn wait_for_rewrite(c: &mut Conn) {
    common::wait_until(Duration::from_secs(20), "BGREWRITEAOF", || {
        let info = c.info("persistence");
        common::info_field(&info, "aof_rewrite_in_progress").as_deref() == Some("0")
            && common::info_field(&info, "aof_rewrite_scheduled").as_deref() == Some("0")
    });
}

#[test]
fn aof_restart_keeps_state_and_ttl() {
    let mut s = aof_server();
    let mut c = s.conn();
    populate(&mut c);
    let before = capture(&mut c);
    s.restart();
    let mut c = s.conn();
    assert_same_and_continues(&mut c, &before, "AOF restart");
    let before = capture(&mut c);
    s.restart();
    assert_same_and_continues(&mut s.conn(), &before, "second AOF restart");
}

#[test]
fn aof_rewrite_then_restart_keeps_state_and_ttl() {
    let mut s = aof_server();
    let mut c = s.conn();
    populate(&mut c);
    c.cmd(&["BGREWRITEAOF"]).ok();
    wait_for_rewrite(&mut c);
    // Writes after the rewrite land in the new incremental file on top of the rewritten base.
    c.allow(b"p:gcra:burst", "4 1h ALGO gcra BURST 9");
    c.allow(b"p:sliding-window:a", "5 1h ALGO sliding-window");
    let before = capture(&mut c);
    s.restart();
    let mut c = s.conn();
    assert_same_and_continues(&mut c, &before, "BGREWRITEAOF + restart");
    // A rewrite with nothing after it.
    c.cmd(&["BGREWRITEAOF"]).ok();
    wait_for_rewrite(&mut c);
    let before = capture(&mut c);
    s.restart();
    assert_same_and_continues(&mut s.conn(), &before, "second rewrite + restart");
}

/// The replicated effects in the server's AOF (incremental files), in order, as
/// (command, key, payload): RL.SETSTATE for the counters, RL.APPLY for moving-window logs.
fn setstate_commands(s: &Server) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let dir = s.dir().join("appendonlydir");
    let mut out = Vec::new();
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".incr.aof"))
        .collect();
    files.sort();
    for f in files {
        let data = fs::read(&f).unwrap();
        let mut pos = 0;
        while pos < data.len() {
            let argv = parse_resp_command(&data, &mut pos);
            let name = String::from_utf8_lossy(&argv[0]).to_ascii_uppercase();
            if name == "RL.SETSTATE" || name == "RL.APPLY" {
                assert_eq!(argv.len(), 3, "{name} takes key and payload");
                out.push((name, argv[1].clone(), argv[2].clone()));
            }
        }
    }
    out
}

fn parse_resp_command(data: &[u8], pos: &mut usize) -> Vec<Vec<u8>> {
    let line = |pos: &mut usize| -> String {
        let start = *pos;
        while &data[*pos..*pos + 2] != b"\r\n" {
            *pos += 1;
        }
        let s = String::from_utf8(data[start..*pos].to_vec()).unwrap();
        *pos += 2;
        s
    };
    let head = line(pos);
    let n: usize = head
        .strip_prefix('*')
        .expect("AOF command")
        .parse()
        .unwrap();
    (0..n)
        .map(|_| {
            let len: usize = line(pos).strip_prefix('$').unwrap().parse().unwrap();
            let arg = data[*pos..*pos + len].to_vec();
            *pos += len + 2;
            arg
        })
        .collect()
}

#[test]
fn setstate_reproduces_a_state_and_rejects_every_truncation() {
    let s = aof_server();
    let mut c = s.conn();
    let expected = populate(&mut c);
    let cmds = setstate_commands(&s);
    // One effect per allowed charge: never for the denial, the peek or cost > capacity.
    assert_eq!(
        cmds.len(),
        expected,
        "RL.SETSTATE + RL.APPLY count in the AOF"
    );
    for (k, _) in workload() {
        // A key's effects, applied in order under another name, rebuild it exactly, expiry
        // included (SETSTATE carries the state, APPLY the master's hit).
        let copy = [b"copy:".as_slice(), &k].concat();
        let mine: Vec<_> = cmds.iter().filter(|(_, key, _)| *key == k).collect();
        assert!(!mine.is_empty(), "key in AOF");
        for (name, _, payload) in &mine {
            let r = c.cmd(&[name.as_bytes(), &copy, payload]);
            assert!(r.error().is_none(), "{name} of a real payload: {r:?}");
        }
        assert_eq!(
            c.snapshot(&copy),
            c.snapshot(&k),
            "the effects of {} do not rebuild it",
            String::from_utf8_lossy(&k)
        );
        // Every strict prefix and a trailing byte are refused; the target key is untouched.
        let (name, _, payload) = mine[mine.len() - 1];
        let refusal = if name == "RL.SETSTATE" {
            "ERR invalid ratelimit state payload"
        } else {
            "ERR invalid ratelimit hit payload"
        };
        for target in [&k, &copy, &b"fresh".to_vec()] {
            let before = c.snapshot(target);
            let mut bad: Vec<Vec<u8>> = (0..payload.len()).map(|n| payload[..n].to_vec()).collect();
            bad.push([payload.as_slice(), b"\x00"].concat());
            for p in bad {
                let r = c.cmd(&[name.as_bytes(), target, &p]);
                let e = r.error().unwrap_or_else(|| {
                    panic!("{name} accepted a corrupt payload of {} bytes", p.len())
                });
                assert!(e.starts_with(refusal), "{e}");
                assert_eq!(c.snapshot(target), before);
            }
        }
    }
    assert!(!c.exists("fresh"));
    s.assert_alive();
}

#[test]
fn setstate_rejects_garbage() {
    let s = Server::start();
    let mut c = s.conn();
    populate(&mut c);
    let mut rng = Rng::from_env("setstate_rejects_garbage");
    let mut payloads: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"x".to_vec(),
        b"garbage".to_vec(),
        b"RL.SETSTATE".to_vec(),
        b"5 1h".to_vec(),
        vec![0u8; 64],
        vec![0xffu8; 64],
        vec![1u8; 1000],
    ];
    for n in [1usize, 2, 3, 5, 7, 11, 13, 100, 1000, 100_000] {
        payloads.push(rng.bytes(n));
    }
    let mut keys: Vec<Vec<u8>> = workload().into_iter().map(|(k, _)| k).collect();
    keys.push(b"nonexistent".to_vec());
    c.cmd_str("SET str v").ok();
    for k in &keys {
        for p in &payloads {
            let before = c.snapshot(k);
            let r = c.cmd(&[b"RL.SETSTATE".as_slice(), k, p]);
            match &r {
                Reply::Error(e) => assert!(
                    e.starts_with("ERR invalid ratelimit state payload"),
                    "{} bytes: {e}",
                    p.len()
                ),
                other => panic!("RL.SETSTATE accepted {} garbage bytes: {other:?}", p.len()),
            }
            assert_eq!(
                c.snapshot(k),
                before,
                "garbage changed {}",
                String::from_utf8_lossy(k)
            );
        }
    }
    assert!(!c.exists("nonexistent"));
    s.assert_alive();
    // The keys still work.
    let before = capture(&mut c);
    assert_same_and_continues(&mut c, &before, "after garbage");
}

#[test]
fn copy_dump_restore_rename_keep_the_state() {
    let s = Server::start();
    let mut c = s.conn();
    populate(&mut c);
    for (k, args) in workload() {
        let snap = c.snapshot(&k);
        let peek = c.peek(&k, &args);
        let name = String::from_utf8_lossy(&k).into_owned();
        // COPY: same value and expiry, independent afterwards.
        let copy = [b"copy:".as_slice(), &k].concat();
        assert_eq!(
            c.cmd(&[b"COPY".as_slice(), &k, &copy]).int(),
            1,
            "COPY {name}"
        );
        assert_eq!(c.snapshot(&copy), snap, "COPY {name}");
        c.allow(&copy, &args);
        assert_eq!(c.snapshot(&k), snap, "charging the copy changed {name}");
        // DUMP + RESTORE with the absolute expiry.
        let dump = match c.cmd(&[b"DUMP".as_slice(), &k]) {
            Reply::Bulk(b) => b,
            other => panic!("DUMP {name}: {other:?}"),
        };
        let restored = [b"restored:".as_slice(), &k].concat();
        let at = snap.1.to_string();
        c.cmd(&[
            b"RESTORE".as_slice(),
            &restored,
            at.as_bytes(),
            &dump,
            b"ABSTTL",
        ])
        .ok();
        assert_eq!(c.snapshot(&restored), snap, "DUMP/RESTORE {name}");
        assert_eq!(c.peek(&restored, &args).acr(), peek.acr());
        // RENAME keeps value and expiry.
        let renamed = [b"renamed:".as_slice(), &k].concat();
        c.cmd(&[b"RENAME".as_slice(), &restored, &renamed]).ok();
        assert_eq!(c.snapshot(&renamed), snap, "RENAME {name}");
        let usage = c.cmd(&[b"MEMORY".as_slice(), b"USAGE", &k]).int();
        assert!(usage > 0, "MEMORY USAGE {name}: {usage}");
    }
    // MOVE to another database and back.
    let k = b"p:gcra:a".as_slice();
    let snap = c.snapshot(k);
    assert_eq!(c.cmd(&[b"MOVE".as_slice(), k, b"1"]).int(), 1);
    assert!(!c.exists(k));
    c.cmd_str("SELECT 1").ok();
    assert_eq!(c.snapshot(k), snap);
    assert_eq!(c.cmd(&[b"MOVE".as_slice(), k, b"0"]).int(), 1);
    c.cmd_str("SELECT 0").ok();
    assert_eq!(c.snapshot(k), snap);
    s.assert_alive();
}

#[test]
fn state_that_expired_while_down_does_not_come_back() {
    for aof in [false, true] {
        let mut s = if aof { aof_server() } else { Server::start() };
        let mut c = s.conn();
        for algo in ALGOS {
            let k = format!("short:{algo}");
            c.allow(&k, &format!("1 150ms ALGO {algo}"));
            c.allow(format!("long:{algo}"), &format!("1 1h ALGO {algo}"));
        }
        if !aof {
            c.cmd(&["SAVE"]).ok();
        }
        s.shutdown();
        std::thread::sleep(Duration::from_millis(400));
        s.restart();
        let mut c = s.conn();
        for algo in ALGOS {
            let k = format!("short:{algo}");
            assert!(!c.exists(&k), "aof={aof}: {k} came back");
            let p = c.peek(&k, &format!("1 150ms ALGO {algo}"));
            assert_eq!(p.acr(), (true, 1, 0), "aof={aof} {algo}");
            let p = c.peek(format!("long:{algo}"), &format!("1 1h ALGO {algo}"));
            assert_eq!(p.acr(), (false, 1, 0), "aof={aof} {algo}: long key lost");
        }
    }
}
