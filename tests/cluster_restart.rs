//! Restarts in a cluster: one master restarted from its RDB, another from its AOF (written by the
//! module's AOF rewrite, `RL.SETSTATE` per key, plus the effects appended after it), rejoin as
//! masters of the same slots with the limiter state they had: same `DEBUG DIGEST`, same absolute
//! expiry per key, and the next request continues counting. Their replicas are told not to take
//! over meanwhile (`cluster-replica-no-failover`), so the state can only come from the file; once
//! back, the replicas resync to the same dataset.

mod common;

use std::fs;

use common::cluster::{Cluster, ClusterClient};
use common::{wait_until, Rl, ALGOS};

const KEYS_PER_SHARD: usize = 300;

fn rule(i: usize) -> String {
    let algo = ALGOS[i % ALGOS.len()];
    let limit = [3, 10, 50][(i / 3) % 3];
    let window = ["1h", "6h", "365d"][(i / 9) % 3];
    let burst = if algo == "gcra" && i.is_multiple_of(2) {
        " BURST 7"
    } else {
        ""
    };
    format!("{limit} {window} ALGO {algo}{burst}")
}

/// Keys on the master on `port`.
fn keys_on(client: &ClusterClient, port: u16, prefix: &str) -> Vec<String> {
    (0..)
        .map(|n| format!("{prefix}:{n}"))
        .filter(|k| client.port_for(k.as_bytes()) == port)
        .take(KEYS_PER_SHARD)
        .collect()
}

/// Charges every key `1 + i % 3`.
fn charge(client: &mut ClusterClient, keys: &[String]) {
    for (i, k) in keys.iter().enumerate() {
        client.allow(k, &format!("{} COST {}", rule(i), 1 + i % 3));
    }
}

/// Everything observable about a master's limiters: its digest, and per key the digest, expiry,
/// type and what a cost-1 request would get.
type State = (String, Vec<((String, i64, String), Rl)>);

fn capture(cluster: &Cluster, port: u16, keys: &[String]) -> State {
    let node = cluster.node_on(port);
    let mut c = node.conn();
    let per_key = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (c.snapshot(k), c.peek(k, &rule(i))))
        .collect();
    (node.digest(), per_key)
}

fn info_has(cluster: &Cluster, port: u16, field: &str) -> bool {
    cluster
        .node_on(port)
        .conn()
        .info("persistence")
        .lines()
        .any(|l| l.trim_end() == field)
}

#[test]
fn masters_restarted_from_rdb_and_aof_rejoin_with_their_state() {
    let mut cluster = Cluster::start();
    let shards = cluster.shards();
    let masters: Vec<u16> = shards.keys().copied().collect();
    let (rdb_master, aof_master) = (masters[0], masters[1]);
    let mut client = cluster.client();
    let rdb_keys = keys_on(&client, rdb_master, "rdb");
    let aof_keys = keys_on(&client, aof_master, "aof");
    charge(&mut client, &rdb_keys);
    charge(&mut client, &aof_keys);

    // AOF on, rewritten by the module (RL.SETSTATE per key: no RDB preamble), then more writes
    // that only the appended part of the AOF holds.
    {
        let mut c = cluster.node_on(aof_master).conn();
        for (k, v) in [
            ("aof-use-rdb-preamble", "no"),
            ("appendfsync", "always"),
            ("appendonly", "yes"),
        ] {
            c.cmd(&["CONFIG", "SET", k, v]).ok();
        }
    }
    wait_until(common::cluster::CLUSTER_TIMEOUT, "the AOF rewrite", || {
        info_has(&cluster, aof_master, "aof_enabled:1")
            && info_has(&cluster, aof_master, "aof_rewrite_in_progress:0")
            && info_has(&cluster, aof_master, "aof_rewrite_scheduled:0")
    });
    charge(&mut client, &aof_keys);
    charge(&mut client, &rdb_keys);
    cluster.node_on(rdb_master).conn().cmd(&["SAVE"]).ok();

    for (master, keys, from) in [
        (rdb_master, &rdb_keys, "RDB"),
        (aof_master, &aof_keys, "AOF"),
    ] {
        let replica = shards[&master][0];
        cluster
            .node_on(replica)
            .conn()
            .cmd(&["CONFIG", "SET", "cluster-replica-no-failover", "yes"])
            .ok();
        cluster.wait_replicated(master);
        let slots_before = cluster.slots();
        let before = capture(&cluster, master, keys);
        let idx = cluster.index_of_port(master);
        let node = &mut cluster.nodes[idx];
        if from == "AOF" {
            node.set_directive("appendonly", "yes");
            node.set_directive("appendfsync", "always");
            node.set_directive("aof-use-rdb-preamble", "no");
            // Nothing else to load from.
            let _ = fs::remove_file(node.dir().join("dump.rdb"));
        } else {
            assert!(node.dir().join("dump.rdb").is_file());
            assert!(!node.dir().join("appendonlydir").exists());
        }
        node.restart_cluster_node();
        let log = node.log();
        let loaded: &[&str] = if from == "AOF" {
            &[
                "DB loaded from base file",
                "DB loaded from incr file",
                "DB loaded from append only file",
            ]
        } else {
            &["DB loaded from disk"]
        };
        for line in loaded {
            assert!(log.contains(line), "{from}: the log lacks '{line}':\n{log}");
        }
        cluster.wait_stable();
        assert_eq!(cluster.role(master), "master", "{from}");
        assert_eq!(cluster.slots(), slots_before, "{from}: slot map changed");

        let after = capture(&cluster, master, keys);
        assert_eq!(
            after.0, before.0,
            "{from}: DEBUG DIGEST of the restarted master"
        );
        for (i, (b, a)) in before.1.iter().zip(&after.1).enumerate() {
            let k = &keys[i];
            assert_eq!(a.0, b.0, "{from}: {k} ({}) digest, expiry, type", rule(i));
            assert!(a.0 .1 > 0, "{from}: {k} has no expiry");
            assert_eq!(a.1.acr(), b.1.acr(), "{from}: {k} ({}) peek", rule(i));
        }
        cluster.wait_replicated(master);
        assert_eq!(
            cluster.node_on(replica).digest(),
            before.0,
            "{from}: the replica after resyncing"
        );
        // Counting goes on where it stood.
        let mut client = cluster.client();
        for (i, k) in keys.iter().enumerate() {
            let r = client.allow(k, &rule(i));
            assert_eq!(
                r.acr(),
                before.1[i].1.acr(),
                "{from}: {k} ({}) next request",
                rule(i)
            );
        }
        cluster
            .node_on(replica)
            .conn()
            .cmd(&["CONFIG", "SET", "cluster-replica-no-failover", "no"])
            .ok();
        eprintln!(
            "{from}: master {master} restarted with {} keys intact",
            keys.len()
        );
    }
}
