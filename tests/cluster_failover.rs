//! Failover under traffic (3 masters × 1 replica, 2 s node timeout): client threads keep sending
//! `RL.ALLOW` to three limiter keys (one per algorithm, limit L, a 365-day window, one shard) while
//! that shard's master is SIGKILLed; its replica is promoted and the limits go on from the state
//! it had replicated. Over-admission = requests the clients saw admitted − L, per key.
//!
//! - after a pause in which the replica acknowledged the whole stream: exactly L each (0 over);
//! - without a pause: replication is asynchronous, the writes the replica had not received when
//!   the master died are lost, and the new master admits them again; the count is printed;
//! - with `WAIT 1 <ms>` after each `RL.ALLOW`, counting only admissions the replica acknowledged:
//!   never more than L.
//!
//! Afterwards the killed node restarts, rejoins as a replica of the promoted one and ends with its
//! dataset. The numbers are printed (`cargo test --test cluster_failover -- --nocapture`).

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::cluster::{key_slot, ClusterConfig, CLUSTER_TIMEOUT};
use common::{wait_until, Reply, Rl, Rng, ALGOS};

const WINDOW: &str = "365d";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Clients stop, the replica catches up, then the kill.
    Pause,
    /// The kill lands in the middle of the traffic.
    NoPause,
    /// Like `NoPause`, but every `RL.ALLOW` is followed by `WAIT 1 <WAIT_MS>` and only
    /// acknowledged admissions count.
    Wait,
}

/// `WAIT` timeout in ms: an admission the replica did not acknowledge within it counts as
/// unconfirmed (the caller would fail closed: treat it as denied).
const WAIT_MS: u64 = 200;

#[derive(Default)]
struct Shared {
    admitted: [AtomicU64; 3],
    unconfirmed: [AtomicU64; 3],
    denied: AtomicU64,
    errors: AtomicU64,
    sent: AtomicU64,
    stop: AtomicBool,
    pause: AtomicBool,
    paused: AtomicUsize,
    killed: AtomicBool,
    /// When the master was killed, ms after the test's epoch.
    killed_at_ms: AtomicU64,
    /// When the first reply came after the kill, ms after the test's epoch (0 until then).
    first_reply_after_kill_ms: AtomicU64,
}

fn key(i: usize) -> String {
    format!("{{fo}}:{}", ALGOS[i])
}

fn client_loop(
    ports: Vec<u16>,
    mode: Mode,
    limit: u64,
    shared: Arc<Shared>,
    seed: u64,
    epoch: Instant,
) {
    let mut client = common::cluster::ClusterClient::new(ports);
    let mut rng = Rng::new(seed);
    let mut is_paused = false;
    while !shared.stop.load(Ordering::SeqCst) {
        if shared.pause.load(Ordering::SeqCst) {
            if !is_paused {
                is_paused = true;
                shared.paused.fetch_add(1, Ordering::SeqCst);
            }
            thread::sleep(Duration::from_millis(5));
            continue;
        }
        if is_paused {
            is_paused = false;
            shared.paused.fetch_sub(1, Ordering::SeqCst);
        }
        let i = rng.below(3) as usize;
        let k = key(i);
        let killed = shared.killed.load(Ordering::SeqCst);
        let args = ["RL.ALLOW", &k, &limit.to_string(), WINDOW, "ALGO", ALGOS[i]];
        shared.sent.fetch_add(1, Ordering::SeqCst);
        let outcome = client.try_cmd_at(&args).and_then(|(r, port)| {
            let confirmed = match (&r, mode) {
                (Reply::Array(_), Mode::Wait) => {
                    let w = client.try_cmd_on(port, &["WAIT", "1", &WAIT_MS.to_string()])?;
                    Some(w.int() >= 1)
                }
                _ => None,
            };
            Ok((r, confirmed))
        });
        match outcome {
            Ok((r @ Reply::Array(_), confirmed)) => {
                if killed {
                    let _ = shared.first_reply_after_kill_ms.compare_exchange(
                        0,
                        epoch.elapsed().as_millis() as u64,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    );
                }
                if Rl::from_reply(&r).allowed {
                    match confirmed {
                        Some(false) => &shared.unconfirmed[i],
                        _ => &shared.admitted[i],
                    }
                    .fetch_add(1, Ordering::SeqCst);
                } else {
                    shared.denied.fetch_add(1, Ordering::SeqCst);
                }
            }
            Ok((Reply::Error(e), _)) => {
                assert!(
                    e.starts_with("CLUSTERDOWN") || e.starts_with("TRYAGAIN"),
                    "unexpected error from RL.ALLOW: {e}"
                );
                shared.errors.fetch_add(1, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(20));
                client.refresh();
            }
            Ok((other, _)) => panic!("unexpected reply {other:?}"),
            Err(_) => {
                shared.errors.fetch_add(1, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(20));
                client.refresh();
            }
        }
    }
}

struct Outcome {
    admitted: [u64; 3],
    unconfirmed: [u64; 3],
}

fn failover_under_traffic(mode: Mode, limit: u64, clients: usize) -> Outcome {
    let mut cluster = ClusterConfig::new(3, 1).node_timeout_ms(2000).start();
    let slot = key_slot(key(0).as_bytes());
    let master = cluster.master_port_of_slot(slot);
    let replica = cluster.shards()[&master][0];
    let shared = Arc::new(Shared::default());
    let mut seed_rng = Rng::from_env(&format!("failover {mode:?}"));
    let epoch = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (ports, shared, seed) = (cluster.ports(), Arc::clone(&shared), seed_rng.next_u64());
            thread::spawn(move || client_loop(ports, mode, limit, shared, seed, epoch))
        })
        .collect();
    let total = |a: &[AtomicU64; 3]| a.iter().map(|x| x.load(Ordering::SeqCst)).sum::<u64>();

    // Kill once half of the allowance is used up.
    wait_until(CLUSTER_TIMEOUT, "half the limit admitted", || {
        total(&shared.admitted) + total(&shared.unconfirmed) >= 3 * limit / 2
    });
    if mode == Mode::Pause {
        shared.pause.store(true, Ordering::SeqCst);
        wait_until(CLUSTER_TIMEOUT, "every client to pause", || {
            shared.paused.load(Ordering::SeqCst) == clients
        });
        cluster.wait_replicated(master);
    }
    let before_kill = (total(&shared.admitted), total(&shared.unconfirmed));
    let killed_at = Instant::now();
    let idx = cluster.index_of_port(master);
    cluster.nodes[idx].kill();
    shared
        .killed_at_ms
        .store(epoch.elapsed().as_millis() as u64, Ordering::SeqCst);
    shared.killed.store(true, Ordering::SeqCst);
    shared.pause.store(false, Ordering::SeqCst);

    wait_until(CLUSTER_TIMEOUT, "the replica to be promoted", || {
        cluster.master_port_of_slot(slot) == replica
    });
    let promoted_after = killed_at.elapsed();
    // Run until the promoted master denies every key.
    let mut on_new = cluster.node_on(replica).conn();
    wait_until(CLUSTER_TIMEOUT, "every key to reach its limit", || {
        (0..3).all(|i| {
            let p = on_new.peek(key(i), &format!("{limit} {WINDOW} ALGO {}", ALGOS[i]));
            p.remaining == 0
        })
    });
    shared.stop.store(true, Ordering::SeqCst);
    for h in handles {
        h.join().unwrap();
    }
    let load = |a: &[AtomicU64; 3]| [0, 1, 2].map(|i| a[i].load(Ordering::SeqCst));
    let result = Outcome {
        admitted: load(&shared.admitted),
        unconfirmed: load(&shared.unconfirmed),
    };
    let over: Vec<i64> = result
        .admitted
        .iter()
        .map(|&a| a as i64 - limit as i64)
        .collect();
    eprintln!(
        "FAILOVER {mode:?} ({}): limit {limit} per key ({ALGOS:?}), {clients} clients; \
         killed after {} admitted ({} unconfirmed); promoted after {:.1} s, first reply after {:.1} s; \
         sent {}, admitted {:?}, unconfirmed {:?}, denied {}, errors {}; OVER-ADMISSION {:?} (total {})",
        common::server_bin(),
        before_kill.0,
        before_kill.1,
        promoted_after.as_secs_f64(),
        shared
            .first_reply_after_kill_ms
            .load(Ordering::SeqCst)
            .saturating_sub(shared.killed_at_ms.load(Ordering::SeqCst)) as f64
            / 1000.0,
        shared.sent.load(Ordering::SeqCst),
        result.admitted,
        result.unconfirmed,
        shared.denied.load(Ordering::SeqCst),
        shared.errors.load(Ordering::SeqCst),
        over,
        over.iter().sum::<i64>()
    );

    // The killed node comes back (empty: no RDB, no AOF), learns that its slots moved on,
    // becomes a replica of the promoted node and copies its dataset.
    cluster.nodes[idx].restart_cluster_node();
    wait_until(
        CLUSTER_TIMEOUT,
        "the old master to rejoin as a replica",
        || {
            cluster
                .shards()
                .get(&replica)
                .is_some_and(|r| r.contains(&master))
        },
    );
    cluster.wait_stable();
    cluster.wait_replicated(replica);
    assert_eq!(cluster.role(master), "slave");
    assert_eq!(
        cluster.node_on(master).digest(),
        cluster.node_on(replica).digest(),
        "the rejoined node differs from the promoted master"
    );
    result
}

#[test]
fn failover_after_a_pause_admits_exactly_the_limit() {
    let limit = 1000;
    let r = failover_under_traffic(Mode::Pause, limit, 8);
    // Every admission before the kill had reached the replica; none was lost, none repeated.
    assert_eq!(r.admitted, [limit; 3], "admitted per key ({ALGOS:?})");
}

#[test]
fn failover_without_a_pause_loses_at_most_the_unreplicated_tail() {
    let limit = 1000;
    let clients = 8;
    let r = failover_under_traffic(Mode::NoPause, limit, clients);
    for (i, &a) in r.admitted.iter().enumerate() {
        // A reply lost with the killed master may hide an admission the replica did get: at
        // most one per client. Anything above the limit was admitted twice (reported above).
        assert!(
            a + clients as u64 >= limit,
            "{}: only {a} of {limit} admitted",
            ALGOS[i]
        );
    }
}

#[test]
fn failover_with_wait_admits_no_more_than_the_limit() {
    let limit = 200;
    let clients = 16;
    let r = failover_under_traffic(Mode::Wait, limit, clients);
    for (algo, (&acked, &unconfirmed)) in ALGOS.iter().zip(r.admitted.iter().zip(&r.unconfirmed)) {
        assert!(
            acked <= limit,
            "{algo}: {acked} acknowledged admissions over a limit of {limit}"
        );
        // Lost replies hide at most one admission per client.
        assert!(
            acked + unconfirmed + clients as u64 >= limit,
            "{algo}: {acked} acknowledged + {unconfirmed} unconfirmed of {limit}"
        );
    }
}
