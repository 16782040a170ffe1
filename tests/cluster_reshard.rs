//! Resharding under traffic: `redis-cli --cluster reshard` moves 1000 slots holding limiter keys
//! from one master to another (MIGRATE → DUMP/RESTORE of the `ratelimit` type) while client
//! threads keep charging those keys and following MOVED/ASK. Every request gets exactly one
//! reply, so for every key `admitted + remaining == limit` at the end: nothing admitted twice,
//! nothing lost. Keys nobody touched arrive byte-identical (digest) with the same absolute expiry;
//! keys under traffic keep their expiry where the algorithm fixes it (fixed and sliding windows);
//! replicas of both masters end with their master's dataset.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use common::cluster::{key_slot, Cluster, ClusterClient, CLUSTER_TIMEOUT};
use common::{wait_until, Reply, Rl, Rng, ALGOS};

/// Limits: a quarter of the keys run out during the traffic, the rest never do.
const LOW: u64 = 30;
const HIGH: u64 = 100_000;
const WINDOW: &str = "365d";
const MOVE_SLOTS: usize = 1000;
const CLIENTS: usize = 4;

fn limit(i: usize) -> u64 {
    if i.is_multiple_of(4) {
        LOW
    } else {
        HIGH
    }
}

fn rule(i: usize) -> String {
    format!("{} {WINDOW} ALGO {}", limit(i), ALGOS[i % ALGOS.len()])
}

#[derive(Default)]
struct Totals {
    requests: AtomicU64,
    admitted: AtomicU64,
    denied: AtomicU64,
    moved: AtomicU64,
    ask: AtomicU64,
    /// Error replies and lost connections (the test expects none).
    errors: Mutex<Vec<String>>,
}

#[test]
fn resharding_under_traffic_keeps_every_limiter() {
    let cluster = Cluster::start();
    let from = cluster.master_port_of_slot(0);
    let to = cluster.master_port_of_slot(common::cluster::SLOTS - 1);
    let (from_id, to_id) = (
        cluster.id(cluster.index_of_port(from)).to_string(),
        cluster.id(cluster.index_of_port(to)).to_string(),
    );
    let mut client = cluster.client();
    let from_slots: Vec<u16> = (0..common::cluster::SLOTS)
        .filter(|&s| client.port_for_slot(s) == from)
        .collect();

    // 2000 keys on the source master; even ones get traffic, odd ones stay quiet.
    let keys: Vec<String> = (0..)
        .map(|n| format!("rs:{n}"))
        .filter(|k| client.port_for(k.as_bytes()) == from)
        .take(2000)
        .collect();
    let mut rng = Rng::from_env("resharding_under_traffic_keeps_every_limiter");
    for (i, k) in keys.iter().enumerate() {
        let cost = if i % 2 == 0 { 1 } else { 1 + rng.below(3) };
        client.allow(k, &format!("{} COST {cost}", rule(i)));
    }
    let traffic: Vec<usize> = (0..keys.len()).step_by(2).collect();
    let quiet: Vec<usize> = (1..keys.len()).step_by(2).collect();
    let snapshot = |client: &mut ClusterClient, k: &str| {
        let port = client.port_for(k.as_bytes());
        client.conn_to(port).unwrap().snapshot(k)
    };
    let quiet_before: Vec<_> = quiet
        .iter()
        .map(|&i| snapshot(&mut client, &keys[i]))
        .collect();
    let expiry_before: HashMap<usize, i64> = traffic
        .iter()
        .map(|&i| (i, client.conn_to(from).unwrap().pexpiretime(&keys[i])))
        .collect();
    // What each traffic key had admitted before the traffic: its populate call.
    let admitted_before = 1u64;

    let totals = Arc::new(Totals::default());
    let stop = Arc::new(AtomicBool::new(false));
    let keys = Arc::new(keys);
    let traffic = Arc::new(traffic);
    let handles: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (totals, stop, keys, traffic) = (
                Arc::clone(&totals),
                Arc::clone(&stop),
                Arc::clone(&keys),
                Arc::clone(&traffic),
            );
            let ports = cluster.ports();
            let seed = rng.next_u64();
            thread::spawn(move || {
                let mut client = ClusterClient::new(ports);
                let mut rng = Rng::new(seed);
                let mut admitted: HashMap<usize, u64> = HashMap::new();
                while !stop.load(Ordering::SeqCst) {
                    let i = *rng.pick(&traffic);
                    let line = format!("RL.ALLOW {} {}", keys[i], rule(i));
                    let args: Vec<&str> = line.split_whitespace().collect();
                    totals.requests.fetch_add(1, Ordering::SeqCst);
                    match client.try_cmd(&args) {
                        Ok(r @ Reply::Array(_)) => {
                            if Rl::from_reply(&r).allowed {
                                *admitted.entry(i).or_default() += 1;
                                totals.admitted.fetch_add(1, Ordering::SeqCst);
                            } else {
                                totals.denied.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        Ok(other) => totals
                            .errors
                            .lock()
                            .unwrap()
                            .push(format!("{line}: {other:?}")),
                        Err(e) => totals.errors.lock().unwrap().push(format!("{line}: {e}")),
                    }
                }
                totals
                    .moved
                    .fetch_add(client.redirects.moved, Ordering::SeqCst);
                totals.ask.fetch_add(client.redirects.ask, Ordering::SeqCst);
                admitted
            })
        })
        .collect();

    wait_until(CLUSTER_TIMEOUT, "traffic to start", || {
        totals.requests.load(Ordering::SeqCst) >= 200
    });
    let started = Instant::now();
    let requests_at_start = totals.requests.load(Ordering::SeqCst);
    let out = Command::new("redis-cli")
        .args([
            "--cluster",
            "reshard",
            &format!("127.0.0.1:{from}"),
            "--cluster-from",
            &from_id,
            "--cluster-to",
            &to_id,
            "--cluster-slots",
            &MOVE_SLOTS.to_string(),
            "--cluster-yes",
        ])
        .output()
        .expect("run redis-cli (package redis-tools)");
    let took = started.elapsed();
    let requests_during = totals.requests.load(Ordering::SeqCst) - requests_at_start;
    assert!(
        out.status.success(),
        "redis-cli --cluster reshard failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Some more traffic on the new map, then stop.
    let after = totals.requests.load(Ordering::SeqCst);
    wait_until(CLUSTER_TIMEOUT, "traffic after the reshard", || {
        totals.requests.load(Ordering::SeqCst) >= after + 2000
    });
    stop.store(true, Ordering::SeqCst);
    let mut admitted: HashMap<usize, u64> = HashMap::new();
    for h in handles {
        for (i, n) in h.join().unwrap() {
            *admitted.entry(i).or_default() += n;
        }
    }
    let errors = totals.errors.lock().unwrap().clone();
    eprintln!(
        "RESHARD ({}): {MOVE_SLOTS} slots moved in {:.1} s with {CLIENTS} clients on {} keys \
         (limits {LOW} and {HIGH}); {requests_during} requests during the move, {} in all: {} admitted, \
         {} denied, {} errors; redirects followed: {} MOVED, {} ASK",
        common::server_bin(),
        took.as_secs_f64(),
        traffic.len(),
        totals.requests.load(Ordering::SeqCst),
        totals.admitted.load(Ordering::SeqCst),
        totals.denied.load(Ordering::SeqCst),
        errors.len(),
        totals.moved.load(Ordering::SeqCst),
        totals.ask.load(Ordering::SeqCst),
    );
    assert!(errors.is_empty(), "errors during resharding: {errors:?}");
    assert!(requests_during > 0, "no traffic while the slots moved");

    cluster.wait_stable();
    let mut client = cluster.client();
    let moved_slots: Vec<u16> = from_slots
        .iter()
        .copied()
        .filter(|&s| client.port_for_slot(s) == to)
        .collect();
    assert_eq!(moved_slots.len(), MOVE_SLOTS, "slots now on the target");
    let mut src = cluster.node_on(from).conn();
    for &s in &moved_slots {
        let n = src
            .cmd(&["CLUSTER", "COUNTKEYSINSLOT", &s.to_string()])
            .int();
        assert_eq!(n, 0, "slot {s} still has keys on the source");
    }
    let on_target = |k: &str| moved_slots.contains(&key_slot(k.as_bytes()));
    // MIGRATE carries the TTL relative, in ms: the target adds it to its own clock when it
    // restores the key, so a moved key may expire later by up to the time the move took (the
    // state, hence the module's decisions, is unchanged: compared by digest).
    let max_shift = took.as_millis() as i64 + 1;
    let shifts = std::cell::RefCell::new(Vec::new());
    let check_expiry = |k: &str, before: i64, now: i64, moved: bool| {
        assert!(before > 0, "{k}: {before}");
        if moved {
            assert!(
                (0..=max_shift).contains(&(now - before)),
                "{k}: expiry {before} → {now} after the move"
            );
            shifts.borrow_mut().push(now - before);
        } else {
            assert_eq!(now, before, "{k}: expiry changed but the key did not move");
        }
    };

    // Traffic keys: every admission seen by a client is in the state, exactly once.
    let (mut moved_traffic, mut moved_quiet, mut exhausted) = (0, 0, 0);
    for &i in traffic.iter() {
        let k = &keys[i];
        let seen = admitted_before + admitted.get(&i).copied().unwrap_or(0);
        // COST 0: `remaining` is what is left now (a cost-1 peek reports it after the charge).
        let p = client.peek(k, &format!("{} COST 0", rule(i)));
        assert!(seen <= limit(i), "{k} ({}): {seen} admitted", rule(i));
        exhausted += usize::from(seen == limit(i));
        assert_eq!(
            seen + p.remaining as u64,
            limit(i),
            "{k} ({}): {seen} admitted, {p:?}",
            rule(i)
        );
        let port = client.port_for(k.as_bytes());
        assert_eq!(port == to, on_target(k), "{k}");
        moved_traffic += usize::from(port == to);
        let expiry = client.conn_to(port).unwrap().pexpiretime(k);
        if matches!(ALGOS[i % ALGOS.len()], "fixed-window" | "sliding-window") {
            // Traffic does not move these windows' expiry; migration may.
            check_expiry(k, expiry_before[&i], expiry, port == to);
        } else {
            assert!(expiry > 0, "{k}: {expiry}");
        }
    }
    // Quiet keys: identical state and expiry, wherever they are now.
    for (&i, before) in quiet.iter().zip(&quiet_before) {
        let k = &keys[i];
        let port = client.port_for(k.as_bytes());
        assert_eq!(port == to, on_target(k), "{k}");
        moved_quiet += usize::from(port == to);
        let now = client.conn_to(port).unwrap().snapshot(k);
        assert_eq!(
            (&now.0, &now.2),
            (&before.0, &before.2),
            "{k} ({})",
            rule(i)
        );
        check_expiry(k, before.1, now.1, port == to);
    }
    let shifts = shifts.into_inner();
    eprintln!(
        "{exhausted} keys driven to their limit; \
         keys now on the target: {moved_traffic} under traffic, {moved_quiet} quiet; \
         expiry later by 0 ms for {}, 1 ms for {}, more for {} (max {} ms) of {} moved keys checked",
        shifts.iter().filter(|&&d| d == 0).count(),
        shifts.iter().filter(|&&d| d == 1).count(),
        shifts.iter().filter(|&&d| d > 1).count(),
        shifts.iter().max().unwrap_or(&0),
        shifts.len()
    );
    assert!(
        moved_traffic > 50 && moved_quiet > 50,
        "too few keys moved to mean anything"
    );

    for (&m, replicas) in &cluster.shards() {
        cluster.wait_replicated(m);
        for &r in replicas {
            assert_eq!(
                cluster.node_on(r).digest(),
                cluster.node_on(m).digest(),
                "replica {r} of {m}"
            );
        }
    }
}
