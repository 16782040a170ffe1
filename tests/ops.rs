//! Operations: the `ratelimit.*` module configs (arguments, CONFIG GET / SET / REWRITE, bounds
//! refused with an error naming the config, lowering a bound keeps existing keys) and the
//! `INFO ratelimit` metrics (exact counters and gauges, a format a scraper parses).

mod common;

use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::resp::{Conn, Reply};
use common::{info_field, server_bin, NodeConfig, Server};

fn config_get(c: &mut Conn, pattern: &str) -> Vec<(String, String)> {
    let flat = c.cmd(&["CONFIG", "GET", pattern]).ok().flat();
    let mut pairs: Vec<(String, String)> = flat
        .chunks(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect();
    pairs.sort();
    pairs
}

fn one(c: &mut Conn, name: &str) -> String {
    config_get(c, name)
        .first()
        .unwrap_or_else(|| panic!("no config {name}"))
        .1
        .clone()
}

#[test]
fn every_config_with_its_default() {
    let s = NodeConfig::new().no_module_args().start();
    let mut c = s.conn();
    let got = config_get(&mut c, "ratelimit.*");
    let want: Vec<(String, String)> = [
        ("ratelimit.compat-commands", "cl.throttle,gcra"),
        ("ratelimit.enable-debug-command", "no"),
        ("ratelimit.max-keys", "16"),
        ("ratelimit.max-leases", "10000"),
        ("ratelimit.max-runs", "100000"),
        ("ratelimit.max-window-ms", "31536000000"),
        ("ratelimit.ttl-hook", "no"),
        ("ratelimit.ttl-sweep-rate", "5000"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(got, want);
}

#[test]
fn module_arguments_keep_working_and_become_the_configs() {
    let s = NodeConfig::new()
        .module_args(&[
            "enable-debug-command",
            "yes",
            "compat-commands",
            "gcra",
            "max-runs",
            "500",
            "MAX-KEYS",
            "4",
            "ttl-sweep-rate",
            "0",
        ])
        .start();
    let mut c = s.conn();
    assert_eq!(one(&mut c, "ratelimit.enable-debug-command"), "yes");
    assert_eq!(one(&mut c, "ratelimit.compat-commands"), "gcra");
    assert_eq!(one(&mut c, "ratelimit.max-runs"), "500");
    assert_eq!(one(&mut c, "ratelimit.max-keys"), "4");
    assert_eq!(one(&mut c, "ratelimit.ttl-sweep-rate"), "0");
    // What they did: RL.DEBUG exists, CL.THROTTLE does not, GCRA does.
    assert!(c
        .cmd(&["COMMAND", "INFO", "rl.debug"])
        .flat()
        .contains(&"rl.debug".into()));
    assert!(c
        .cmd(&["CL.THROTTLE", "k", "1", "1", "1"])
        .error()
        .is_some());
    assert!(c.cmd(&["GCRA", "g", "1", "1", "1"]).error().is_none());
}

#[test]
fn a_bad_argument_or_config_line_fails_the_load() {
    for cfg in [
        NodeConfig::new().module_args(&["max-runs", "1"]),
        NodeConfig::new().set("ratelimit.max-keys", "0"),
    ] {
        let dir = std::env::temp_dir().join(format!("rl-ops-bad-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Started by hand: the harness treats an exit during start as a failure.
        let conf = dir.join("redis.conf");
        let port = common::free_port();
        std::fs::write(
            &conf,
            cfg.render_for_test(&dir, port, &common::module_path()),
        )
        .unwrap();
        let out = Command::new(server_bin())
            .arg(&conf)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success(), "the server started");
        let log = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            log.contains("max-runs takes an integer from 2 to 1000000")
                || log.contains("ratelimit.max-keys"),
            "{log}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn config_set_validates_and_load_time_configs_are_immutable() {
    let s = Server::start();
    let mut c = s.conn();
    for (name, bad) in [
        ("ratelimit.max-runs", "1"),
        ("ratelimit.max-runs", "1000001"),
        ("ratelimit.max-keys", "0"),
        ("ratelimit.max-keys", "257"),
        ("ratelimit.max-leases", "10001"),
        ("ratelimit.max-window-ms", "0"),
        ("ratelimit.max-window-ms", "31536000001"),
        ("ratelimit.ttl-sweep-rate", "-1"),
        ("ratelimit.max-keys", "many"),
    ] {
        let r = c.cmd(&["CONFIG", "SET", name, bad]);
        let e = r.expect_err();
        assert!(e.starts_with("ERR"), "{name} {bad}: {e}");
        assert!(e.contains(name), "{name} {bad}: {e}");
    }
    for (name, value) in [
        ("ratelimit.compat-commands", "none"),
        ("ratelimit.enable-debug-command", "no"),
        ("ratelimit.ttl-hook", "yes"),
    ] {
        let e = c
            .cmd(&["CONFIG", "SET", name, value])
            .expect_err()
            .to_string();
        assert!(e.contains("can't set immutable config"), "{name}: {e}");
    }
    assert_eq!(config_get(&mut c, "ratelimit.max-keys")[0].1, "16");
}

#[test]
fn bounds_refuse_requests_with_an_error_naming_the_config() {
    let s = Server::start();
    let mut c = s.conn();
    c.cmd_str("CONFIG SET ratelimit.max-keys 2").ok();
    let e = c.cmd_str("RL.ALLOWALL 3 a b d 1 1m 1 1m 1 1m");
    assert_eq!(
        e.expect_err(),
        "ERR numkeys must be an integer from 1 to 2 (ratelimit.max-keys)"
    );
    assert!(c.cmd_str("RL.PEEKALL 2 a b 1 1m 1 1m").error().is_none());
    c.cmd_str("CONFIG SET ratelimit.max-window-ms 60000").ok();
    let too_long = |what: &str| {
        format!(
            "ERR {what} is longer than ratelimit.max-window-ms (60000 ms), the longest this \
             server allows"
        )
    };
    assert_eq!(
        c.cmd_str("RL.ALLOW w 1 61s").expect_err(),
        too_long("window")
    );
    assert_eq!(c.cmd_str("RL.PEEK w 1 2m").expect_err(), too_long("window"));
    assert_eq!(
        c.cmd_str("RL.ALLOW w 1 1m BLOCK 1h").expect_err(),
        too_long("BLOCK")
    );
    assert_eq!(
        c.cmd_str("RL.ALLOWALL 1 w 1 1h").expect_err(),
        format!("ERR group 1: {}", &too_long("window")[4..])
    );
    assert_eq!(
        c.cmd_str("RL.CHARGE w 1 1h 1").expect_err(),
        too_long("window")
    );
    assert_eq!(
        c.cmd_str("RL.ACQUIRE l 1 2m").expect_err(),
        too_long("lease")
    );
    assert_eq!(
        c.cmd_str("RL.THROTTLE t 1 1 61").expect_err(),
        too_long("period")
    );
    assert_eq!(c.cmd_str("GCRA t 1 1 61").expect_err(), too_long("period"));
    assert!(c.cmd_str("RL.ALLOW w 1 1m").error().is_none());
    assert!(!c.exists("t"), "a refused request created nothing");

    // Leases: a key holding more than a lowered max-leases keeps them.
    for i in 0..8 {
        c.cmd(&["RL.ACQUIRE", "l", "10", "30s", "ID", &format!("w{i}")])
            .ok();
    }
    c.cmd_str("CONFIG SET ratelimit.max-leases 5").ok();
    assert_eq!(
        c.cmd_str("RL.ACQUIRE l 10 30s").expect_err(),
        "ERR limit must be an integer from 1 to 5 (the most leases one key holds: \
         ratelimit.max-leases)"
    );
    assert_eq!(c.inspect_int("l", "in_flight"), 8);
    assert_eq!(c.cmd_str("RL.RELEASE l w0").int(), 1);
    // Under the new bound the key is served like any other: 7 held ≥ 5, denied.
    let r = c.cmd_str("RL.ACQUIRE l 5 30s ID w9");
    assert_eq!(r.array()[0].int(), 0, "{r:?}");
    assert_eq!(c.inspect_int("l", "in_flight"), 7);
}

#[test]
fn lowering_max_runs_stops_a_log_from_growing() {
    let s = Server::start();
    let mut c = s.conn();
    for _ in 0..40 {
        c.allow("mw", "1000 1h ALGO moving-window");
        sleep(Duration::from_micros(200));
    }
    let runs = c.inspect_int("mw", "runs");
    assert!(runs >= 30, "runs {runs}");
    c.cmd_str("CONFIG SET ratelimit.max-runs 10").ok();
    for _ in 0..20 {
        assert!(c.allow("mw", "1000 1h ALGO moving-window").allowed);
        sleep(Duration::from_micros(200));
    }
    // Every later hit joined the newest run: the key kept its runs, grew no more, counted all.
    assert_eq!(c.inspect_int("mw", "runs"), runs);
    assert_eq!(
        c.peek("mw", "1000 1h ALGO moving-window COST 0").remaining,
        940
    );
    // A new key is capped at 10.
    for _ in 0..40 {
        c.allow("mw2", "1000 1h ALGO moving-window");
        sleep(Duration::from_micros(200));
    }
    assert!(c.inspect_int("mw2", "runs") <= 10);
}

#[test]
fn config_rewrite_persists_and_a_config_line_wins_over_the_argument() {
    let mut s = NodeConfig::new()
        .module_args(&["max-runs", "500"])
        .set("ratelimit.max-keys", "8")
        .start();
    let mut c = s.conn();
    assert_eq!(one(&mut c, "ratelimit.max-keys"), "8");
    c.cmd_str("CONFIG SET ratelimit.max-runs 1000").ok();
    c.cmd_str("CONFIG SET ratelimit.ttl-sweep-rate 100").ok();
    c.cmd_str("CONFIG REWRITE").ok();
    let conf_path = s.dir().join("redis.conf");
    let conf = std::fs::read_to_string(&conf_path).unwrap();
    assert!(conf.contains("ratelimit.max-runs 1000"), "{conf}");
    assert!(conf.contains("ratelimit.ttl-sweep-rate 100"), "{conf}");
    assert!(conf.contains("ratelimit.max-keys 8"), "{conf}");
    let port = s.port();
    drop(c);
    s.kill();
    // Start the rewritten file as it is (the harness would write its own).
    let mut child = Command::new(server_bin())
        .arg(&conf_path)
        .current_dir(s.dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut c = loop {
        if let Ok(mut c) = Conn::connect(port) {
            if c.cmd(&["PING"]) == Reply::Status("PONG".into()) {
                break c;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the rewritten config did not start"
        );
        sleep(Duration::from_millis(50));
    };
    let got = (
        one(&mut c, "ratelimit.max-runs"),
        one(&mut c, "ratelimit.ttl-sweep-rate"),
        one(&mut c, "ratelimit.max-keys"),
    );
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(got, ("1000".into(), "100".into(), "8".into()));
}

/// Every line of `INFO ratelimit` is a `# section` header, empty, or `name:value` with a
/// decimal integer value: what Prometheus exporters parse.
fn parse_info(info: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for line in info.lines().map(str::trim_end) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line.split_once(':').unwrap_or_else(|| panic!("{line:?}"));
        assert!(name.starts_with("ratelimit_"), "{line:?}");
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{line:?}"
        );
        let v = value
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("not a number: {line:?}"));
        out.push((name.to_string(), v));
    }
    out
}

#[test]
fn info_counts_per_command_and_per_algorithm() {
    let s = Server::start();
    let mut c = s.conn();
    for _ in 0..4 {
        c.allow("a", "3 1m");
    }
    c.peek("a", "3 1m");
    c.cmd_str("RL.ALLOW a 3 nonsense").expect_err();
    c.cmd_str("RL.ALLOW a 3 1m ALGO gcra").expect_err(); // another algorithm
    c.cmd_str("RL.ALLOWALL 2 x y 5 1m 5 1m ALGO fixed-window")
        .ok();
    c.cmd_str("RL.THROTTLE t 1 10 60").ok();
    c.cmd_str("GCRA g 1 10 60").ok();
    c.cmd_str("CL.THROTTLE t 1 10 60").ok();
    c.cmd_str("RL.ACQUIRE l 1 1m").ok();
    c.cmd_str("RL.ACQUIRE l 1 1m").ok();
    c.cmd_str("RL.INSPECT a").ok();
    let info = c.info("ratelimit");
    let fields = parse_info(&info);
    let get = |n: &str| {
        fields
            .iter()
            .find(|(k, _)| k == &format!("ratelimit_{n}"))
            .unwrap_or_else(|| panic!("no {n} in\n{info}"))
            .1
    };
    assert_eq!(
        (
            get("rl_allow_calls"),
            get("rl_allow_allowed"),
            get("rl_allow_denied"),
            get("rl_allow_errors")
        ),
        (6, 3, 1, 2)
    );
    assert_eq!((get("rl_peek_calls"), get("rl_peek_denied")), (1, 1));
    assert_eq!(
        (get("rl_allowall_calls"), get("rl_allowall_allowed")),
        (1, 1)
    );
    assert_eq!(
        (get("rl_throttle_calls"), get("rl_throttle_allowed")),
        (1, 1)
    );
    assert_eq!(
        (get("cl_throttle_calls"), get("cl_throttle_allowed")),
        (1, 1)
    );
    assert_eq!((get("gcra_calls"), get("gcra_allowed")), (1, 1));
    assert_eq!(
        (get("rl_acquire_allowed"), get("rl_acquire_denied")),
        (1, 1)
    );
    assert_eq!((get("rl_inspect_calls"), get("rl_inspect_errors")), (1, 0));
    // Per algorithm: one decision per key; the parse error named no algorithm.
    assert_eq!(
        (
            get("sliding_window_calls"),
            get("sliding_window_allowed"),
            get("sliding_window_denied"),
            get("sliding_window_errors")
        ),
        (6, 4, 2, 0)
    );
    assert_eq!(
        (get("gcra_calls") - 1, get("fixed_window_calls")),
        (0, 1),
        "gcra_calls is the command's; see the algorithm below"
    );
    let algos = info.split("# ratelimit_algorithms").nth(1).unwrap();
    let algo = |n: &str| info_field(algos, &format!("ratelimit_{n}")).unwrap();
    assert_eq!(algo("gcra_calls"), "4"); // the failed RL.ALLOW, RL.THROTTLE, GCRA, CL.THROTTLE
    assert_eq!(algo("gcra_errors"), "1");
    assert_eq!(algo("fixed_window_calls"), "1");
    assert_eq!(algo("leases_allowed"), "1");
    assert_eq!(algo("leases_denied"), "1");
    // Keys created: a, x, y, t, g, l.
    assert_eq!(get("keys_created"), 6);
}

#[test]
fn gauges_follow_writes_deletes_and_reloads() {
    let s = Server::start();
    let mut c = s.conn();
    for _ in 0..25 {
        c.allow("mw", "1000 1h ALGO moving-window");
        sleep(Duration::from_micros(300));
    }
    let runs = c.inspect_int("mw", "runs");
    assert_eq!(c.stat("moving_window_runs"), runs);
    c.cmd_str("COPY mw mw2").ok();
    assert_eq!(c.stat("moving_window_runs"), 2 * runs);
    c.cmd_str("RL.REFUND mw 1000 1h 1000 ALGO moving-window")
        .ok();
    assert!(!c.exists("mw"));
    assert_eq!(c.stat("moving_window_runs"), runs);
    for i in 0..3 {
        c.cmd(&["RL.ACQUIRE", "l", "5", "1m", "ID", &format!("w{i}")])
            .ok();
    }
    assert_eq!(c.stat("leases_stored"), 3);
    c.cmd_str("RL.RELEASE l w1").ok();
    assert_eq!(c.stat("leases_stored"), 2);
    c.cmd_str("DEBUG RELOAD").ok();
    assert_eq!(c.stat("moving_window_runs"), runs);
    assert_eq!(c.stat("leases_stored"), 2);
    c.cmd_str("FLUSHALL ASYNC").ok();
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.stat("moving_window_runs") + c.stat("leases_stored") != 0 {
        assert!(Instant::now() < deadline, "gauges not back to 0");
        sleep(Duration::from_millis(20));
    }
    // Debt: 15 charged against 10 available.
    c.cmd_str("RL.CHARGE d 10 1m 15").ok();
    c.cmd_str("RL.CHARGE d 10 1m 0").ok();
    assert_eq!((c.stat("debt_charges"), c.stat("debt_charged")), (1, 5));
}

#[test]
fn the_prometheus_script_returns_every_field() {
    let s = Server::start();
    let mut c = s.conn();
    c.allow("a", "3 1m");
    let script = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/ratelimit-metrics.lua"),
    )
    .unwrap();
    let r = c.cmd(&["EVAL_RO", &script, "0"]).ok().flat();
    let info = parse_info(&c.info("ratelimit"));
    assert_eq!(r.len(), 2 * info.len());
    for (pair, (name, value)) in r.chunks(2).zip(&info) {
        assert_eq!(&pair[0], name);
        // The counters moved only by the script's own INFO call (none counts it).
        assert_eq!(pair[1].parse::<u64>().unwrap(), *value, "{name}");
    }
}
