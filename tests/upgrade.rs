//! Rolling upgrades: this release reads what earlier ones wrote — the first release's RDB file
//! kept as a fixture, a full sync and the replication stream of a master still running the
//! previous release's module (built from git history by scripts/test, never committed) — and
//! the previous release follows this one's moving-window hits while they need nothing new. The
//! upgrade order this supports: replicas first, then fail over to one of them, then the old
//! master (which is briefly a replica of an upgraded one).

mod common;

use std::fs;
use std::path::Path;

use common::{prev_module_path, NodeConfig, Rng, Server, ALGOS};

/// One line of tests/fixtures/first-release.txt.
struct FixtureKey {
    key: String,
    algorithm: String,
    limit: i64,
    window_us: i64,
    burst: i64,
    used: i64,
    pexpiretime_ms: i64,
}

fn fixture_keys() -> Vec<FixtureKey> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/first-release.txt");
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let n = |i: usize| f[i].parse::<i64>().unwrap();
            FixtureKey {
                key: f[0].to_string(),
                algorithm: f[1].to_string(),
                limit: n(2),
                window_us: n(3),
                burst: n(4),
                used: n(5),
                pexpiretime_ms: n(6),
            }
        })
        .collect()
}

#[test]
fn the_first_release_s_dump_loads_unchanged() {
    let s = Server::start();
    fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/first-release.rdb"),
        s.dir().join("dump.rdb"),
    )
    .unwrap();
    let mut s = s;
    s.restart(); // loads the fixture (SHUTDOWN NOSAVE keeps the file)
    let mut c = s.conn();
    let now_ms = c.time_us() / 1000;
    let mut present = 0;
    for k in fixture_keys() {
        if k.pexpiretime_ms <= now_ms {
            assert!(!c.exists(&k.key), "{} outlived its state", k.key);
            continue;
        }
        present += 1;
        assert_eq!(c.pexpiretime(&k.key), k.pexpiretime_ms, "{}", k.key);
        let f = c.inspect(&k.key).unwrap();
        assert_eq!(f["algorithm"], k.algorithm);
        assert_eq!(f["limit"], k.limit.to_string());
        assert_eq!(f["window_us"], k.window_us.to_string());
        assert_eq!(f["burst"], k.burst.to_string());
        let num = |name: &str| f[name].parse::<i64>().unwrap();
        match k.algorithm.as_str() {
            "gcra" => assert_eq!((num("tat_us") + 999) / 1000, k.pexpiretime_ms),
            "fixed-window" => {
                assert_eq!(num("count"), k.used);
                assert_eq!(
                    (num("window_start_us") + k.window_us + 999) / 1000,
                    k.pexpiretime_ms
                );
            }
            _ => assert_eq!(num("current") + num("previous"), k.used),
        }
        // And it limits on: the used amount is still charged.
        let args = format!(
            "{} {}ms ALGO {}{}",
            k.limit,
            k.window_us / 1000,
            k.algorithm,
            if k.algorithm == "gcra" {
                format!(" BURST {}", k.burst)
            } else {
                String::new()
            }
        );
        let r = c.peek(&k.key, &args);
        assert!(r.remaining <= r.capacity - k.used, "{}: {r:?}", k.key);
    }
    assert!(present >= 1, "the 40-year gcra key is always there");
}

/// Rule arguments for a key of the random workload.
fn args_for(rng: &mut Rng, algo: &str) -> String {
    let limit = rng.pick(&[1, 3, 5, 10]);
    let window = rng.pick(&["1h", "2h", "300ms"]);
    let cost = rng.pick(&[1, 1, 2, 3]);
    format!("{limit} {window} ALGO {algo} COST {cost}")
}

#[test]
fn a_replica_of_the_previous_release_follows_its_master() {
    let prev = prev_module_path();
    let master = NodeConfig::new().module(prev).start();
    let mut c = master.conn();
    let mut rng = Rng::from_env("a_replica_of_the_previous_release_follows_its_master");
    let keys: Vec<(String, &str)> = (0..80).map(|i| (format!("u:{i}"), ALGOS[i % 4])).collect();
    // Before the replica exists: reaches it in the full sync.
    for (key, algo) in &keys[..30] {
        let args = args_for(&mut rng, algo);
        c.rl("ALLOW", key, &args);
    }
    let replica = master.start_replica();
    // After: reaches it as RL.SETSTATE, and RL.APPLY hits of payload version 2.
    for _ in 0..600 {
        let (key, algo) = rng.pick(&keys);
        let args = args_for(&mut rng, algo);
        let r = c.rl_raw("ALLOW", key, &args);
        // A rule change to another algorithm cannot happen here; errors would be a bug.
        assert!(r.error().is_none(), "{r:?}");
    }
    master.wait_replicas(&mut c, 1);
    let mut r = replica.conn();
    for (key, _) in &keys {
        assert_eq!(r.exists(key), c.exists(key), "{key}");
        assert_eq!(r.pexpiretime(key), c.pexpiretime(key), "{key}");
    }
    // Same answers, taken at once on both (fixed-window counts are exact integers).
    for (key, algo) in keys.iter().filter(|(_, a)| *a == "fixed-window") {
        let _ = algo;
        if let Some(f) = r.inspect(key) {
            let args = format!(
                "{} {}ms ALGO fixed-window",
                f["limit"],
                f["window_us"].parse::<u64>().unwrap() / 1000
            );
            assert_eq!(
                r.peek(key, &args).remaining,
                c.peek(key, &args).remaining,
                "{key}"
            );
        }
    }
    // Fail over to the upgraded replica: limits go on from the replicated state.
    r.cmd_str("REPLICAOF NO ONE").ok();
    for (key, algo) in &keys {
        if !c.exists(key) {
            continue;
        }
        let f = r.inspect(key).unwrap();
        let args = format!(
            "{} {}ms ALGO {algo}",
            f["limit"],
            f["window_us"].parse::<u64>().unwrap() / 1000
        );
        let old = c.peek(key, &format!("{args} COST 0"));
        let new = r.peek(key, &format!("{args} COST 0"));
        assert!(
            (old.remaining - new.remaining).abs() <= 1,
            "{key}: previous release {old:?}, this one {new:?}"
        );
        if old.remaining == 0 {
            assert!(
                !r.allow(key, &args).allowed,
                "{key} was full on the old master"
            );
        }
    }
    replica.assert_alive();
}

/// Rule arguments for the moving-window workload below.
fn mw_args(rng: &mut Rng) -> String {
    let limit = rng.pick(&[3, 10, 1_000]);
    let window = rng.pick(&["1h", "2h", "300ms"]);
    let cost = rng.pick(&[1, 1, 2, 5]);
    format!("{limit} {window} ALGO moving-window COST {cost}")
}

/// The old master, briefly a replica of an upgraded one: this release writes a moving-window hit
/// in the previous payload version whenever the previous release replays it identically (the
/// default cap, a log below the coalescing threshold), so that replica keeps up.
#[test]
fn a_previous_release_replica_follows_this_release_s_moving_window() {
    let master = Server::start();
    let replica = master.start_replica_with(NodeConfig::new().module(prev_module_path()));
    let mut c = master.conn();
    let mut rng = Rng::from_env("a_previous_release_replica_follows_this_release_s_moving_window");
    let keys: Vec<String> = (0..20).map(|i| format!("m:{i}")).collect();
    for _ in 0..1_500 {
        let key = rng.pick(&keys);
        let args = mw_args(&mut rng);
        let r = c.rl_raw("ALLOW", key, &args);
        assert!(r.error().is_none(), "{r:?}");
    }
    master.wait_replicas(&mut c, 1);
    let mut r = replica.conn();
    for key in &keys {
        assert_eq!(r.pexpiretime(key), c.pexpiretime(key), "{key}");
    }
    assert_eq!(replica.digest(), master.digest());
    assert!(!replica.log().contains("invalid ratelimit hit payload"));
    replica.assert_alive();
}

/// A replica upgraded first replays an old master's hits as the old master made them, up to
/// its cap of 100,000 runs (where it merged the two oldest).
#[test]
fn this_release_replays_the_previous_release_s_hits_at_its_cap() {
    let master = NodeConfig::new().module(prev_module_path()).start();
    let replica = master.start_replica();
    let mut c = master.conn();
    let args = "1000000000 1h ALGO moving-window";
    for _ in 0..13 {
        c.rl_pipeline("ALLOW", "big", args, 10_000);
    }
    assert_eq!(
        c.inspect_int("big", "runs"),
        100_000,
        "the old master's cap"
    );
    master.wait_replicas(&mut c, 1);
    assert_eq!(replica.digest(), master.digest());
    let mut r = replica.conn();
    assert_eq!(r.pexpiretime("big"), c.pexpiretime("big"));
    assert_eq!(r.stat("replica_mismatches"), 0);
}
