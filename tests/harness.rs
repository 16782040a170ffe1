//! Checks of the test harness itself (no module commands needed): start, PING, restart from RDB,
//! replica sync, digests.

mod common;

use common::{NodeConfig, Server};

#[test]
fn starts_answers_and_loads_the_module() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(c.cmd(&["PING"]).text(), "PONG");
    let modules = c.cmd(&["MODULE", "LIST"]).flat();
    assert!(
        modules.iter().any(|m| m == "ratelimit"),
        "module not loaded: {modules:?}"
    );
    assert!(s.is_alive());
}

#[test]
fn two_servers_get_distinct_ports_and_dirs() {
    let a = Server::start();
    let b = Server::start();
    assert_ne!(a.port(), b.port());
    assert_ne!(a.dir(), b.dir());
}

#[test]
fn restart_keeps_the_rdb() {
    let mut s = Server::start();
    let mut c = s.conn();
    c.cmd(&["SET", "k", "v"]).ok();
    c.cmd(&["SAVE"]).ok();
    let before = s.digest();
    s.restart();
    assert_eq!(s.digest(), before);
    assert_eq!(s.conn().cmd(&["GET", "k"]).text(), "v");
}

#[test]
fn replica_syncs_and_digests_match() {
    let m = Server::start();
    let r = m.start_replica();
    let mut c = m.conn();
    for i in 0..50 {
        c.cmd(&["SET", &format!("k{i}"), &i.to_string()]).ok();
    }
    m.wait_replicas(&mut c, 1);
    assert_eq!(m.digest(), r.digest());
    let err = r.conn().cmd(&["SET", "x", "1"]);
    assert!(err.expect_err().starts_with("READONLY"), "{err:?}");
}

#[test]
fn dir_is_removed_on_drop() {
    let s = NodeConfig::new().set("appendonly", "yes").start();
    let dir = s.dir().to_path_buf();
    assert!(dir.is_dir());
    drop(s);
    assert!(!dir.exists());
}
