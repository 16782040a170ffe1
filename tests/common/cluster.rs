//! Redis Cluster harness: `masters` × (1 + `replicas`) real servers with the module, each on a
//! free port with an explicit free cluster-bus port (`port + 10000` may not exist or be taken),
//! formed directly with `CLUSTER ADDSLOTSRANGE` / `MEET` / `REPLICATE` (what
//! `redis-cli --cluster create` sends, without its fixed sleeps); plus a small cluster client that
//! routes by key slot (CRC16/XMODEM, hash tags) from `CLUSTER SLOTS` and follows MOVED and ASK.
//!
//! Nodes are [`Server`]s: killed on drop, logs printed when a test fails, `restart` keeps port
//! and bus port (so the node rejoins from its `nodes.conf`).

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::{free_port, server_bin, unique_dir, LaunchError, NodeConfig, Server};
use super::{info_field, Conn, Reply, Rl};

/// Number of hash slots.
pub const SLOTS: u16 = 16384;

/// How long formation, failover and rejoin may take before a test gives up (a busy 2-core
/// machine is slow; nothing in a passing run waits this long).
pub const CLUSTER_TIMEOUT: Duration = Duration::from_secs(90);

/// `cluster-node-timeout` while the cluster forms (ms).
const FORMATION_NODE_TIMEOUT_MS: u64 = 1000;

/// CRC16/XMODEM (polynomial 0x1021, initial value 0), the checksum Redis Cluster hashes keys with.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The hash slot of a key: only the part between the first `{` and the next `}` counts when that
/// part is not empty (a hash tag).
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16(hashed) % SLOTS
}

/// One key per slot: `{prefix}`-free names `<prefix><n>` chosen so that entry `s` hashes to slot
/// `s`.
pub fn one_key_per_slot(prefix: &str) -> Vec<String> {
    let mut keys: Vec<Option<String>> = vec![None; SLOTS as usize];
    let mut missing = SLOTS as usize;
    let mut n = 0u64;
    while missing > 0 {
        let k = format!("{prefix}{n}");
        let slot = key_slot(k.as_bytes()) as usize;
        if keys[slot].is_none() {
            keys[slot] = Some(k);
            missing -= 1;
        }
        n += 1;
    }
    keys.into_iter().map(Option::unwrap).collect()
}

/// How to build a cluster.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// Masters (each gets an equal share of the slots).
    pub masters: usize,
    /// Replicas per master.
    pub replicas: usize,
    /// `cluster-node-timeout` in ms: how long a silent node takes to be declared failed.
    pub node_timeout_ms: u64,
    /// The config every node starts from (cluster directives are added to it).
    pub node: NodeConfig,
}

impl ClusterConfig {
    /// `masters` × `replicas`, a 15 s node timeout (no spurious failover on a busy machine).
    pub fn new(masters: usize, replicas: usize) -> ClusterConfig {
        ClusterConfig {
            masters,
            replicas,
            node_timeout_ms: 15_000,
            node: NodeConfig::new(),
        }
    }

    /// Sets `cluster-node-timeout` (failover tests use a short one).
    pub fn node_timeout_ms(mut self, ms: u64) -> ClusterConfig {
        self.node_timeout_ms = ms;
        self
    }

    /// Adds arguments after the module path on every node's `loadmodule` line.
    pub fn module_args(mut self, args: &[&str]) -> ClusterConfig {
        self.node = self.node.module_args(args);
        self
    }

    /// Sets a directive on every node.
    pub fn set(mut self, name: &str, value: &str) -> ClusterConfig {
        self.node = self.node.set(name, value);
        self
    }

    /// Starts and forms the cluster; returns once every node agrees on the slot map, every slot
    /// is served and every replica's link is up.
    pub fn start(self) -> Cluster {
        let started = Instant::now();
        let node_cfg = self
            .node
            .clone()
            .set("cluster-enabled", "yes")
            .set("cluster-config-file", "nodes.conf")
            .set("cluster-node-timeout", &self.node_timeout_ms.to_string())
            // A replica may always take over, however long its link was down.
            .set("cluster-replica-validity-factor", "0");
        let total = self.masters * (1 + self.replicas);
        let nodes: Vec<Server> = (0..total).map(|_| start_node(node_cfg.clone())).collect();
        let mut cluster = Cluster {
            nodes,
            masters: self.masters,
            replicas: self.replicas,
            ids: Vec::new(),
        };
        cluster.form();
        eprintln!(
            "cluster {}×{} ({}) formed in {:.1} s: ports {:?}",
            self.masters,
            self.replicas,
            server_bin(),
            started.elapsed().as_secs_f64(),
            cluster.ports()
        );
        cluster
    }
}

/// Starts one cluster node with its own bus port; retries on other ports if either is taken.
fn start_node(cfg: NodeConfig) -> Server {
    let dir = unique_dir();
    fs::create_dir_all(&dir).unwrap();
    let mut s = Server {
        cfg,
        dir,
        port: 0,
        child: None,
    };
    s.launch_cluster_node(false);
    s
}

impl Server {
    /// The node's cluster-bus port.
    pub fn bus_port(&self) -> u16 {
        self.cfg
            .directives
            .iter()
            .find(|(k, _)| k == "cluster-port")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0)
    }

    /// Like `launch`, but picks the bus port too (`keep_ports`: try the current port and bus
    /// port first, for a restart).
    fn launch_cluster_node(&mut self, keep_ports: bool) {
        let mut last_log = String::new();
        for attempt in 0..10 {
            let (port, bus) = if attempt == 0 && keep_ports {
                (self.port, self.bus_port())
            } else {
                (free_port(), free_port())
            };
            if port == bus {
                continue;
            }
            self.cfg = self.cfg.clone().set("cluster-port", &bus.to_string());
            match self.spawn_on(port) {
                Ok(()) => return,
                Err(LaunchError::PortTaken) => last_log = self.log(),
            }
        }
        panic!("could not start a cluster node on free ports; last log:\n{last_log}");
    }

    /// Orderly stop and start again on the same dir, port and bus port: the node reloads its
    /// RDB or AOF and its `nodes.conf`, and rejoins.
    pub fn restart_cluster_node(&mut self) {
        self.shutdown();
        self.launch_cluster_node(true);
    }

    /// Sets a directive for the next (re)start of this node.
    pub fn set_directive(&mut self, name: &str, value: &str) {
        self.cfg = self.cfg.clone().set(name, value);
    }
}

/// A running cluster. `nodes[..masters]` started as masters (master `i` owns the `i`-th equal
/// share of the slots); the replicas of master `i` are `nodes[masters + i * replicas ..][..replicas]`.
/// Roles change on failover: ask [`Cluster::master_port_of_slot`] and [`Cluster::role`].
pub struct Cluster {
    /// Every node, by start index.
    pub nodes: Vec<Server>,
    masters: usize,
    replicas: usize,
    ids: Vec<String>,
}

/// One entry of `CLUSTER SLOTS`: slots `start..=end`, master port, replica ports.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SlotRange {
    /// First slot.
    pub start: u16,
    /// Last slot.
    pub end: u16,
    /// The master's port.
    pub master: u16,
    /// The replicas' ports, sorted.
    pub replicas: Vec<u16>,
}

/// Parses a `CLUSTER SLOTS` reply.
pub fn parse_cluster_slots(r: &Reply) -> Vec<SlotRange> {
    let mut out: Vec<SlotRange> = r
        .array()
        .iter()
        .map(|e| {
            let a = e.array();
            let port = |n: &Reply| n.array()[1].int() as u16;
            let mut replicas: Vec<u16> = a[3..].iter().map(port).collect();
            replicas.sort_unstable();
            SlotRange {
                start: a[0].int() as u16,
                end: a[1].int() as u16,
                master: port(&a[2]),
                replicas,
            }
        })
        .collect();
    out.sort();
    out
}

/// `CLUSTER SLOTS` of the node on `port`, or `None` if it does not answer.
pub fn cluster_slots(port: u16) -> Option<Vec<SlotRange>> {
    let mut c = Conn::connect(port).ok()?;
    c.set_read_timeout(Duration::from_secs(5));
    c.send(&["CLUSTER", "SLOTS"]).ok()?;
    match c.read().ok()? {
        r @ Reply::Array(_) => Some(parse_cluster_slots(&r)),
        _ => None,
    }
}

/// `CLUSTER INFO`'s `cluster_state` of the node on `port`.
pub fn cluster_state(port: u16) -> Option<String> {
    let mut c = Conn::connect(port).ok()?;
    c.set_read_timeout(Duration::from_secs(5));
    c.send(&["CLUSTER", "INFO"]).ok()?;
    let info = c.read().ok()?;
    match info {
        Reply::Bulk(b) => info_field(&String::from_utf8_lossy(&b), "cluster_state"),
        _ => None,
    }
}

impl Cluster {
    /// 3 masters × 1 replica with the default [`ClusterConfig`].
    pub fn start() -> Cluster {
        ClusterConfig::new(3, 1).start()
    }

    /// Every node's port, by start index.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(Server::port).collect()
    }

    /// The start index of the node on `port`.
    pub fn index_of_port(&self, port: u16) -> usize {
        self.nodes
            .iter()
            .position(|n| n.port() == port)
            .unwrap_or_else(|| panic!("no node on port {port}"))
    }

    /// The node on `port`.
    pub fn node_on(&self, port: u16) -> &Server {
        &self.nodes[self.index_of_port(port)]
    }

    /// The node id of node `i`.
    pub fn id(&self, i: usize) -> &str {
        &self.ids[i]
    }

    /// Ports of the nodes that answer PING.
    pub fn live_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(Server::port)
            .collect()
    }

    fn form(&mut self) {
        // Formation goes at the pace of the node timeout (a master waits up to 5 s before it
        // declares the cluster ok, a peer hears of a new replica within timeout/2): form with a
        // short one, then restore the configured value.
        self.set_node_timeout(Some(FORMATION_NODE_TIMEOUT_MS));
        let per = SLOTS as usize / self.masters;
        for i in 0..self.masters {
            let start = i * per;
            let end = if i + 1 == self.masters {
                SLOTS as usize - 1
            } else {
                (i + 1) * per - 1
            };
            let mut c = self.nodes[i].conn();
            c.cmd(&[
                "CLUSTER",
                "ADDSLOTSRANGE",
                &start.to_string(),
                &end.to_string(),
            ])
            .ok();
        }
        // Distinct config epochs up front, as redis-cli does: no epoch collisions to resolve.
        for (i, n) in self.nodes.iter().enumerate() {
            n.conn()
                .cmd(&["CLUSTER", "SET-CONFIG-EPOCH", &(i + 1).to_string()])
                .ok();
        }
        self.ids = self
            .nodes
            .iter()
            .map(|n| n.conn().cmd(&["CLUSTER", "MYID"]).ok().text())
            .collect();
        // Every node meets every other: gossip alone spreads new nodes slowly (a node pings a
        // given peer every node-timeout/2 at worst).
        for (i, a) in self.nodes.iter().enumerate() {
            let mut c = a.conn();
            for b in &self.nodes[i + 1..] {
                c.cmd(&[
                    "CLUSTER",
                    "MEET",
                    "127.0.0.1",
                    &b.port().to_string(),
                    &b.bus_port().to_string(),
                ])
                .ok();
            }
        }
        let total = self.nodes.len();
        self.wait_for("every node to know every other", || {
            self.nodes.iter().all(|n| {
                let nodes = n.conn().cmd(&["CLUSTER", "NODES"]).ok().text();
                let known: Vec<&str> = nodes.lines().filter(|l| !l.trim().is_empty()).collect();
                known.len() == total
                    && known
                        .iter()
                        .all(|l| !l.contains("handshake") && !l.contains("noaddr"))
            })
        });
        for m in 0..self.masters {
            for r in 0..self.replicas {
                let i = self.masters + m * self.replicas + r;
                let master_id = self.ids[m].clone();
                self.nodes[i]
                    .conn()
                    .cmd(&["CLUSTER", "REPLICATE", &master_id])
                    .ok();
            }
        }
        self.wait_for("replica links up and every node ok", || {
            self.nodes[self.masters..].iter().all(|n| {
                n.conn()
                    .info("replication")
                    .contains("master_link_status:up")
            }) && self
                .nodes
                .iter()
                .all(|n| cluster_state(n.port()).as_deref() == Some("ok"))
        });
        // CLUSTER SLOTS lists a replica only once its replication offset is above 0: give each
        // shard one write (and take it back) rather than wait for the master's periodic PING.
        let keys = one_key_per_slot("formation:");
        for i in 0..self.masters {
            let key = &keys[i * per];
            let mut c = self.nodes[i].conn();
            c.cmd(&["SET", key, "1"]).ok();
            c.cmd(&["DEL", key]).ok();
        }
        self.wait_stable();
        self.set_node_timeout(None);
    }

    /// `CONFIG SET cluster-node-timeout` on every live node: `Some(ms)`, or `None` for the
    /// configured value.
    fn set_node_timeout(&self, ms: Option<u64>) {
        for n in &self.nodes {
            if n.child.is_none() {
                continue;
            }
            let v = match ms {
                Some(ms) => ms.to_string(),
                None => n
                    .cfg
                    .directives
                    .iter()
                    .find(|(k, _)| k == "cluster-node-timeout")
                    .map(|(_, v)| v.clone())
                    .unwrap(),
            };
            n.conn()
                .cmd(&["CONFIG", "SET", "cluster-node-timeout", &v])
                .ok();
        }
    }

    fn wait_for(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        while !cond() {
            if Instant::now() > deadline {
                let mut report = String::new();
                for n in &self.nodes {
                    if let Ok(mut c) = Conn::connect(n.port()) {
                        c.set_read_timeout(Duration::from_secs(5));
                        if c.send(&["CLUSTER", "NODES"]).is_ok() {
                            if let Ok(r) = c.read() {
                                report.push_str(&format!("node {}:\n{:?}\n", n.port(), r));
                            }
                        }
                    }
                }
                panic!("timed out after {CLUSTER_TIMEOUT:?} waiting for {what}\n{report}");
            }
            sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every live node says `cluster_state:ok`, all live nodes return the same
    /// `CLUSTER SLOTS` covering every slot with `replicas` live replicas per master (fewer once
    /// a node is dead), and every live replica's link to its master is up.
    pub fn wait_stable(&self) {
        let live = self.live_ports();
        let want_replicas = if live.len() == self.nodes.len() {
            Some(self.replicas)
        } else {
            None
        };
        self.wait_for("a stable cluster", || {
            let mut views = Vec::new();
            for &p in &live {
                if cluster_state(p).as_deref() != Some("ok") {
                    return false;
                }
                match cluster_slots(p) {
                    Some(v) => views.push(v),
                    None => return false,
                }
            }
            let first = &views[0];
            if views.iter().any(|v| v != first) {
                return false;
            }
            let covered: usize = first.iter().map(|r| usize::from(r.end - r.start) + 1).sum();
            if covered != SLOTS as usize {
                return false;
            }
            if let Some(n) = want_replicas {
                if first.iter().any(|r| r.replicas.len() != n) {
                    return false;
                }
            }
            // Replicas that CLUSTER SLOTS lists must have a live link.
            first.iter().flat_map(|r| r.replicas.iter()).all(|&p| {
                !live.contains(&p) || {
                    let info = Conn::connect(p).ok().map(|mut c| c.info("replication"));
                    info.is_some_and(|i| i.contains("master_link_status:up"))
                }
            })
        });
    }

    /// The current slot map as the node on a live port reports it.
    pub fn slots(&self) -> Vec<SlotRange> {
        for p in self.live_ports() {
            if let Some(v) = cluster_slots(p) {
                return v;
            }
        }
        panic!("no live node answers CLUSTER SLOTS");
    }

    /// The port of the master serving `slot` now.
    pub fn master_port_of_slot(&self, slot: u16) -> u16 {
        self.slots()
            .iter()
            .find(|r| r.start <= slot && slot <= r.end)
            .map(|r| r.master)
            .unwrap_or_else(|| panic!("slot {slot} is not served"))
    }

    /// The ports of the current masters (sorted) and, for each, its replicas' ports.
    pub fn shards(&self) -> BTreeMap<u16, Vec<u16>> {
        self.slots()
            .into_iter()
            .map(|r| (r.master, r.replicas))
            .collect()
    }

    /// `master` or `slave`, from `ROLE` of the node on `port`.
    pub fn role(&self, port: u16) -> String {
        let r = self.node_on(port).conn().cmd(&["ROLE"]).ok();
        r.array()[0].text()
    }

    /// A cluster client seeded with every node.
    pub fn client(&self) -> ClusterClient {
        ClusterClient::new(self.ports())
    }

    /// Waits until each replica of the master on `port` has acknowledged the master's whole
    /// replication stream (compares offsets; independent of any client connection).
    pub fn wait_replicated(&self, port: u16) {
        let node = self.node_on(port);
        self.wait_for("replicas to catch up", || {
            let info = node.conn().info("replication");
            let master_off: i64 = info_field(&info, "master_repl_offset")
                .and_then(|v| v.parse().ok())
                .unwrap_or(-1);
            let slaves: Vec<String> = info
                .lines()
                .filter(|l| l.starts_with("slave") && l.contains("offset="))
                .map(str::to_string)
                .collect();
            !slaves.is_empty()
                && slaves.iter().all(|l| {
                    l.contains("state=online")
                        && l.split(',')
                            .find_map(|kv| kv.strip_prefix("offset="))
                            .and_then(|v| v.parse::<i64>().ok())
                            == Some(master_off)
                })
        });
    }
}

/// Counters of what a [`ClusterClient`] had to do.
#[derive(Clone, Copy, Debug, Default)]
pub struct Redirects {
    /// `MOVED` replies followed.
    pub moved: u64,
    /// `ASK` replies followed.
    pub ask: u64,
}

/// A routing client: sends each command to the master of its key's slot (the key is the
/// command's second argument, as in every RL command), updates its slot map on `MOVED`, sends
/// `ASKING` first on `ASK`. Connection errors drop the connection and are returned, so callers
/// that count outcomes decide themselves whether a request whose reply was lost is retried.
pub struct ClusterClient {
    seeds: Vec<u16>,
    owner: Vec<u16>,
    conns: HashMap<u16, Conn>,
    /// Redirects followed so far.
    pub redirects: Redirects,
}

/// A redirect parsed from an error reply: (slot, port).
pub fn parse_redirect(e: &str, kind: &str) -> Option<(u16, u16)> {
    let rest = e.strip_prefix(kind)?.strip_prefix(' ')?;
    let (slot, addr) = rest.split_once(' ')?;
    let port = addr.rsplit(':').next()?.parse().ok()?;
    Some((slot.parse().ok()?, port))
}

impl ClusterClient {
    /// A client that learns the slot map from the first of `seeds` that answers.
    pub fn new(seeds: Vec<u16>) -> ClusterClient {
        let mut c = ClusterClient {
            seeds,
            owner: vec![0; SLOTS as usize],
            conns: HashMap::new(),
            redirects: Redirects::default(),
        };
        c.refresh();
        c
    }

    /// Reloads the slot map from any node that answers (known masters first, then the seeds);
    /// false if none did.
    pub fn refresh(&mut self) -> bool {
        let mut candidates: Vec<u16> = self.owner.iter().copied().filter(|&p| p != 0).collect();
        candidates.sort_unstable();
        candidates.dedup();
        candidates.extend(self.seeds.iter().copied());
        for p in candidates {
            if let Some(ranges) = cluster_slots(p) {
                if ranges.is_empty() {
                    continue;
                }
                for r in ranges {
                    for s in r.start..=r.end {
                        self.owner[s as usize] = r.master;
                    }
                }
                return true;
            }
        }
        false
    }

    /// The port this client would send `key` to.
    pub fn port_for(&self, key: &[u8]) -> u16 {
        self.port_for_slot(key_slot(key))
    }

    /// The port of the master serving `slot`, as far as this client knows.
    pub fn port_for_slot(&self, slot: u16) -> u16 {
        self.owner[slot as usize]
    }

    /// The connection to `port` (opened on first use).
    pub fn conn_to(&mut self, port: u16) -> io::Result<&mut Conn> {
        match self.conns.entry(port) {
            Entry::Occupied(e) => Ok(e.into_mut()),
            Entry::Vacant(e) => Ok(e.insert(Conn::connect(port)?)),
        }
    }

    /// Sends one command to the node on `port` as is (no routing, no redirects followed).
    pub fn try_cmd_on<A: AsRef<[u8]>>(&mut self, port: u16, args: &[A]) -> io::Result<Reply> {
        self.exchange(port, false, args)
    }

    fn exchange<A: AsRef<[u8]>>(
        &mut self,
        port: u16,
        asking: bool,
        args: &[A],
    ) -> io::Result<Reply> {
        let result = (|| {
            let c = self.conn_to(port)?;
            if asking {
                c.send(&["ASKING"])?;
            }
            c.send(args)?;
            if asking {
                c.read()?;
            }
            c.read()
        })();
        if result.is_err() {
            self.conns.remove(&port);
        }
        result
    }

    /// Sends one command to the owner of its key and follows up to 5 redirects. Returns the
    /// reply (errors such as `CLUSTERDOWN` included) and the port that answered, or the I/O error
    /// (the connection is dropped; the command may or may not have run).
    pub fn try_cmd_at<A: AsRef<[u8]>>(&mut self, args: &[A]) -> io::Result<(Reply, u16)> {
        let key = args[1].as_ref();
        let mut port = self.port_for(key);
        if port == 0 {
            self.refresh();
            port = self.port_for(key);
        }
        let mut asking = false;
        for _ in 0..5 {
            let reply = self.exchange(port, asking, args)?;
            asking = false;
            if let Reply::Error(e) = &reply {
                if let Some((slot, to)) = parse_redirect(e, "MOVED") {
                    self.redirects.moved += 1;
                    self.owner[slot as usize] = to;
                    port = to;
                    continue;
                }
                if let Some((_, to)) = parse_redirect(e, "ASK") {
                    self.redirects.ask += 1;
                    port = to;
                    asking = true;
                    continue;
                }
            }
            return Ok((reply, port));
        }
        Err(io::Error::other("too many redirects"))
    }

    /// [`ClusterClient::try_cmd_at`] without the port.
    pub fn try_cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> io::Result<Reply> {
        self.try_cmd_at(args).map(|(r, _)| r)
    }

    /// Sends a command until it gets an answer other than a transient cluster error (connection
    /// lost, `CLUSTERDOWN`, `TRYAGAIN`, `LOADING`), refreshing the slot map in between; panics
    /// after [`CLUSTER_TIMEOUT`]. Only for commands that may safely run twice.
    pub fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Reply {
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        loop {
            let transient = match self.try_cmd(args) {
                Ok(Reply::Error(e))
                    if ["CLUSTERDOWN", "TRYAGAIN", "LOADING"]
                        .iter()
                        .any(|p| e.starts_with(p)) =>
                {
                    e
                }
                Ok(r) => return r,
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                panic!("cluster command kept failing: {transient}");
            }
            sleep(Duration::from_millis(50));
            self.refresh();
        }
    }

    /// `cmd` for a command given as one whitespace-separated string.
    pub fn cmd_str(&mut self, line: &str) -> Reply {
        let args: Vec<&str> = line.split_whitespace().collect();
        self.cmd(&args)
    }

    /// `RL.ALLOW key <args…>` (retried on transient errors: not for counting admissions).
    pub fn allow(&mut self, key: &str, args: &str) -> Rl {
        let r = self.cmd_str(&format!("RL.ALLOW {key} {args}"));
        Rl::from_reply(&r)
    }

    /// `RL.PEEK key <args…>`.
    pub fn peek(&mut self, key: &str, args: &str) -> Rl {
        let r = self.cmd_str(&format!("RL.PEEK {key} {args}"));
        Rl::from_reply(&r)
    }

    /// Sends many commands, pipelined per node, and returns their replies in order. Commands
    /// answered with a redirect are re-sent one by one through [`ClusterClient::cmd`]; an I/O
    /// error panics (for workloads on a healthy cluster).
    pub fn pipeline(&mut self, cmds: &[Vec<Vec<u8>>]) -> Vec<Reply> {
        let mut by_port: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
        for (i, c) in cmds.iter().enumerate() {
            let mut port = self.port_for(&c[1]);
            if port == 0 {
                self.refresh();
                port = self.port_for(&c[1]);
            }
            by_port.entry(port).or_default().push(i);
        }
        let mut replies: Vec<Option<Reply>> = vec![None; cmds.len()];
        for (port, idx) in by_port {
            let sent = (|| {
                let c = self.conn_to(port)?;
                for &i in &idx {
                    c.send(&cmds[i])?;
                }
                idx.iter()
                    .map(|_| c.read())
                    .collect::<io::Result<Vec<Reply>>>()
            })();
            match sent {
                Ok(rs) => {
                    for (&i, r) in idx.iter().zip(rs) {
                        replies[i] = Some(r);
                    }
                }
                Err(e) => panic!("pipeline to port {port}: {e}"),
            }
        }
        replies
            .into_iter()
            .enumerate()
            .map(|(i, r)| match r {
                Some(Reply::Error(e)) if e.starts_with("MOVED") || e.starts_with("ASK") => {
                    self.cmd(&cmds[i])
                }
                Some(r) => r,
                None => unreachable!("every command was sent"),
            })
            .collect()
    }
}
