//! A panic inside a command is contained: an `ERR internal error …` reply, a line in the server
//! log, an open key closed during unwinding, and a server that goes on serving.
//! Uses `RL.DEBUG`, which exists only when the module is loaded with `enable-debug-command yes`.

mod common;

use common::{NodeConfig, Server};

fn debug_server() -> Server {
    NodeConfig::new()
        .module_args(&["enable-debug-command", "yes"])
        .start()
}

#[test]
fn a_panic_is_an_error_reply_and_the_server_stays_up() {
    let s = debug_server();
    let mut c = s.conn();
    for _ in 0..3 {
        let err = c.cmd(&["RL.DEBUG", "PANIC"]).expect_err().to_string();
        assert!(
            err.starts_with("ERR internal error in ratelimit: RL.DEBUG PANIC was called"),
            "{err}"
        );
        s.assert_alive();
    }
    let log = s.log();
    assert!(
        log.contains("ratelimit: internal error (panic)") && log.contains("RL.DEBUG PANIC"),
        "the panic must be in the server log:\n{log}"
    );
    // The module still works.
    assert!(c.allow("k", "2 1m").allowed);
}

#[test]
fn a_panic_with_a_key_open_closes_it() {
    let s = debug_server();
    let mut c = s.conn();
    c.allow("k", "2 1m");
    let before = c.digest_value("k");
    let err = c
        .cmd(&["RL.DEBUG", "PANIC-OPEN", "k"])
        .expect_err()
        .to_string();
    assert!(err.starts_with("ERR internal error in ratelimit"), "{err}");
    s.assert_alive();
    assert_eq!(c.digest_value("k"), before);
    let r = c.allow("k", "2 1m");
    assert_eq!((r.allowed, r.remaining), (true, 0));
    // Transactions and scripts on the same key still work after the unwinding.
    c.cmd(&["MULTI"]).ok();
    c.cmd(&["RL.PEEK", "k", "2", "1m"]);
    let exec = c.cmd(&["EXEC"]);
    assert_eq!(exec.array().len(), 1);
}

#[test]
fn the_debug_command_is_absent_by_default() {
    let s = Server::start();
    let err = s
        .conn()
        .cmd(&["RL.DEBUG", "PANIC"])
        .expect_err()
        .to_string();
    assert!(err.starts_with("ERR unknown command"), "{err}");
    s.assert_alive();
}

#[test]
fn unknown_module_arguments_refuse_to_load() {
    // The module must not start half-configured; the harness sees the server exit.
    let result = std::panic::catch_unwind(|| {
        NodeConfig::new()
            .module_args(&["enable-debug-command", "maybe"])
            .start()
    });
    assert!(result.is_err(), "a bad module argument must stop the load");
}
