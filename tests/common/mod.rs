//! Integration-test harness: real `redis-server` processes with the module loaded, each on a free
//! port in its own temp dir, killed (SIGKILL) and cleaned up on drop.
//!
//! Environment:
//! - `RL_SERVER_BIN`: server binary (default `redis-server`; Valkey can be plugged in).
//! - `RL_MODULE`: module path (default `<crate>/target/release/libredis_ratelimit.so`).
//! - `RL_KEEP_DIRS`: keep the temp dirs of failed tests (the path is printed).
//! - `RL_SEED`: seed for the randomized tests (the seed used is always printed).

#![allow(dead_code)]

pub mod cluster;
pub mod resp;

use std::fs::{self, OpenOptions};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use resp::{Conn, Reply};

/// How long a server may take to answer PING after being started.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a replica may take to report `master_link_status:up`.
const SYNC_TIMEOUT: Duration = Duration::from_secs(20);

static DIR_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The module under test.
pub fn module_path() -> PathBuf {
    let path = match std::env::var_os("RL_MODULE") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/libredis_ratelimit.so"),
    };
    if !path.is_file() {
        panic!(
            "module not found at {}: run `cargo build --release` first (scripts/test does), \
             or point RL_MODULE at the built module",
            path.display()
        );
    }
    path
}

/// The server binary.
pub fn server_bin() -> String {
    std::env::var("RL_SERVER_BIN").unwrap_or_else(|_| "redis-server".to_string())
}

/// A port nobody listens on right now (the server may still lose a race for it: start retries).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

fn unique_dir() -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let n = DIR_COUNTER.fetch_add(1, Ordering::SeqCst);
    std::env::temp_dir().join(format!("rl-test-{}-{n}-{nanos}", std::process::id()))
}

/// How to start one node. Directives are config-file lines (`name value`); a directive set with
/// [`NodeConfig::set`] replaces an earlier one of the same name. Cluster options can be added
/// here later (`cluster-enabled yes`, `cluster-config-file …`, a bus port) without touching the
/// tests.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    directives: Vec<(String, String)>,
    replica_of: Option<u16>,
    module_args: Vec<String>,
    module: Option<PathBuf>,
    server: Option<String>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl NodeConfig {
    /// Defaults: no RDB save points, DEBUG enabled, no diskless-sync delay, module loaded.
    pub fn new() -> NodeConfig {
        let d = |k: &str, v: &str| (k.to_string(), v.to_string());
        NodeConfig {
            directives: vec![
                d("bind", "127.0.0.1"),
                d("save", "\"\""),
                d("appendonly", "no"),
                d("enable-debug-command", "yes"),
                d("repl-diskless-sync-delay", "0"),
                d("dbfilename", "dump.rdb"),
                d("loglevel", "notice"),
            ],
            replica_of: None,
            module_args: Vec::new(),
            module: None,
            server: None,
        }
    }

    /// Runs this server binary instead of [`server_bin`].
    pub fn server(mut self, bin: &str) -> NodeConfig {
        self.server = Some(bin.to_string());
        self
    }

    /// Loads this module file instead of [`module_path`] (e.g. the previous release's).
    pub fn module(mut self, path: PathBuf) -> NodeConfig {
        self.module = Some(path);
        self
    }

    /// Drops the arguments given so far after the module path.
    pub fn no_module_args(mut self) -> NodeConfig {
        self.module_args.clear();
        self
    }

    /// Adds arguments after the module path on the `loadmodule` line.
    pub fn module_args(mut self, args: &[&str]) -> NodeConfig {
        self.module_args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Sets (or replaces) a config directive, e.g. `.set("appendonly", "yes")`.
    pub fn set(mut self, name: &str, value: &str) -> NodeConfig {
        self.directives
            .retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.directives.push((name.to_string(), value.to_string()));
        self
    }

    /// Starts as a replica of `master`.
    pub fn replica_of(mut self, master: &Server) -> NodeConfig {
        self.replica_of = Some(master.port);
        self
    }

    /// Starts the server and waits until it answers PING.
    pub fn start(self) -> Server {
        let dir = unique_dir();
        fs::create_dir_all(&dir).unwrap();
        let mut s = Server {
            cfg: self,
            dir,
            port: 0,
            child: None,
        };
        s.launch(None);
        s
    }

    /// The config file this node would be started with (for tests that start it by hand).
    pub fn render_for_test(&self, dir: &Path, port: u16, module: &Path) -> String {
        self.render(dir, port, module)
    }

    fn render(&self, dir: &Path, port: u16, module: &Path) -> String {
        let mut out = String::new();
        out.push_str(&format!("port {port}\n"));
        out.push_str(&format!("dir \"{}\"\n", dir.display()));
        for (k, v) in &self.directives {
            out.push_str(&format!("{k} {v}\n"));
        }
        if let Some(p) = self.replica_of {
            out.push_str(&format!("replicaof 127.0.0.1 {p}\n"));
        }
        out.push_str(&format!("loadmodule \"{}\"", module.display()));
        for a in &self.module_args {
            out.push_str(&format!(" {a}"));
        }
        out.push('\n');
        out
    }
}

/// A running server (or one between stop and start during `restart`).
pub struct Server {
    cfg: NodeConfig,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

pub(crate) enum LaunchError {
    PortTaken,
}

impl Server {
    /// A standalone server with the default config.
    pub fn start() -> Server {
        NodeConfig::new().start()
    }

    /// A standalone server with extra directives.
    pub fn start_with(directives: &[(&str, &str)]) -> Server {
        let mut cfg = NodeConfig::new();
        for (k, v) in directives {
            cfg = cfg.set(k, v);
        }
        cfg.start()
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// The server's log (stdout and stderr of every start).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn launch(&mut self, preferred_port: Option<u16>) {
        let mut last_log = String::new();
        for attempt in 0..10 {
            let port = match (attempt, preferred_port) {
                (0, Some(p)) => p,
                _ => free_port(),
            };
            match self.spawn_on(port) {
                Ok(()) => return,
                Err(LaunchError::PortTaken) => last_log = self.log(),
            }
        }
        panic!("could not start a server on a free port; last log:\n{last_log}");
    }

    /// Writes the config for `port`, starts the server (the configured module and binary) and
    /// waits until it answers; `PortTaken` when another process got the port first.
    pub(crate) fn spawn_on(&mut self, port: u16) -> Result<(), LaunchError> {
        let module = self.cfg.module.clone().unwrap_or_else(module_path);
        let conf = self.dir.join("redis.conf");
        fs::write(&conf, self.cfg.render(&self.dir, port, &module)).unwrap();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let bin = self.cfg.server.clone().unwrap_or_else(server_bin);
        let child = Command::new(&bin)
            .arg(&conf)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `{bin}`: {e}"));
        self.child = Some(child);
        self.port = port;
        let ready = self.wait_ready();
        if ready.is_err() {
            self.child = None;
        }
        ready
    }

    /// Waits until our process (not some other server that owns the port) answers PING.
    fn wait_ready(&mut self) -> Result<(), LaunchError> {
        let deadline = Instant::now() + START_TIMEOUT;
        let pid = self.child.as_ref().unwrap().id();
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let log = self.log();
                if log.contains("Address already in use") {
                    return Err(LaunchError::PortTaken);
                }
                panic!(
                    "{} exited during start ({status}); log {}:\n{log}",
                    server_bin(),
                    self.log_path().display()
                );
            }
            if let Ok(mut c) = Conn::connect(self.port) {
                c.set_read_timeout(Duration::from_millis(500));
                if c.send(&["PING"]).is_ok() {
                    if let Ok(Reply::Status(s)) = c.read() {
                        if s == "PONG" && server_pid(&mut c) == Some(pid) {
                            return Ok(());
                        }
                    }
                }
            }
            if Instant::now() > deadline {
                self.kill();
                panic!(
                    "server on port {} did not answer PING within {START_TIMEOUT:?}; log:\n{}",
                    self.port,
                    self.log()
                );
            }
            sleep(Duration::from_millis(20));
        }
    }

    /// A new connection.
    pub fn conn(&self) -> Conn {
        Conn::connect(self.port)
            .unwrap_or_else(|e| panic!("connect to port {}: {e}\nlog:\n{}", self.port, self.log()))
    }

    /// True if the server answers PING.
    pub fn is_alive(&self) -> bool {
        if self.child.is_none() {
            return false;
        }
        match Conn::connect(self.port) {
            Ok(mut c) => {
                c.set_read_timeout(Duration::from_secs(5));
                c.send(&["PING"]).is_ok() && matches!(c.read(), Ok(Reply::Status(s)) if s == "PONG")
            }
            Err(_) => false,
        }
    }

    /// Panics (with the log) unless the server answers PING.
    pub fn assert_alive(&self) {
        if !self.is_alive() {
            panic!(
                "server on port {} is not alive; log:\n{}",
                self.port,
                self.log()
            );
        }
    }

    /// SIGKILL and reap (no chance to save or flush anything).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Orderly stop: `SHUTDOWN NOSAVE` (the AOF is flushed, no RDB is written), then SIGKILL if it
    /// does not exit within 10 s.
    pub fn shutdown(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(mut c) = Conn::connect(self.port) {
            let _ = c.send(&["SHUTDOWN", "NOSAVE"]);
            let _ = c.read();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Stops the server (orderly, see [`Server::shutdown`]) and starts it again on the same dir
    /// (so it loads its RDB / AOF), on the same port if that is still free.
    pub fn restart(&mut self) {
        self.shutdown();
        let port = self.port;
        self.launch(Some(port));
    }

    /// Stops the server (orderly), changes its config with `change` (another binary, other
    /// module arguments…) and starts it again on the same dir, so it loads its RDB / AOF.
    pub fn restart_with(&mut self, change: impl FnOnce(NodeConfig) -> NodeConfig) {
        self.shutdown();
        self.cfg = change(self.cfg.clone());
        let port = self.port;
        self.launch(Some(port));
    }

    /// Starts a replica of this server and waits until its link is up.
    pub fn start_replica(&self) -> Server {
        self.start_replica_with(NodeConfig::new())
    }

    /// Starts a replica of this server from `config` (another module, say) and waits until its
    /// link is up.
    pub fn start_replica_with(&self, config: NodeConfig) -> Server {
        let replica = config.replica_of(self).start();
        let deadline = Instant::now() + SYNC_TIMEOUT;
        let mut c = replica.conn();
        loop {
            let info = c.cmd(&["INFO", "replication"]).text();
            if info.contains("master_link_status:up") {
                return replica;
            }
            if Instant::now() > deadline {
                panic!(
                    "replica did not sync within {SYNC_TIMEOUT:?}\nreplica log:\n{}\nmaster log:\n{}",
                    replica.log(),
                    self.log()
                );
            }
            sleep(Duration::from_millis(20));
        }
    }

    /// `WAIT n` until `n` replicas acknowledged everything written so far (on `conn`'s stream, so
    /// pass the connection that wrote).
    pub fn wait_replicas(&self, c: &mut Conn, n: i64) {
        let got = c.cmd(&["WAIT", &n.to_string(), "10000"]).int();
        assert!(got >= n, "WAIT {n}: only {got} replicas acknowledged");
    }

    /// `DEBUG DIGEST` of the whole dataset.
    pub fn digest(&self) -> String {
        self.conn().cmd(&["DEBUG", "DIGEST"]).ok().text()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!(
                "--- log tail of server on port {} ({}):",
                self.port,
                self.dir.display()
            );
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
            if std::env::var_os("RL_KEEP_DIRS").is_some() {
                eprintln!("--- kept {}", self.dir.display());
                return;
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn server_pid(c: &mut Conn) -> Option<u32> {
    c.send(&["INFO", "server"]).ok()?;
    let info = match c.read().ok()? {
        Reply::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
        _ => return None,
    };
    info_field(&info, "process_id")?.parse().ok()
}

/// A field of an INFO reply.
pub fn info_field(info: &str, name: &str) -> Option<String> {
    info.lines().find_map(|l| {
        l.trim_end()
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::to_string)
    })
}

/// One `RL.ALLOW` / `RL.PEEK` reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rl {
    pub allowed: bool,
    pub capacity: i64,
    pub remaining: i64,
    pub retry_ms: i64,
    pub reset_ms: i64,
}

impl Rl {
    /// Parses a 5-integer reply; panics on anything else.
    pub fn from_reply(r: &Reply) -> Rl {
        let v = match r {
            Reply::Array(_) => r.ints(),
            other => panic!("expected a 5-integer array, got {other:?}"),
        };
        assert_eq!(v.len(), 5, "reply has {} elements: {v:?}", v.len());
        assert!(v[0] == 0 || v[0] == 1, "allowed must be 0 or 1: {v:?}");
        Rl {
            allowed: v[0] == 1,
            capacity: v[1],
            remaining: v[2],
            retry_ms: v[3],
            reset_ms: v[4],
        }
    }

    /// Shorthand for tests: `(allowed, capacity, remaining)`.
    pub fn acr(&self) -> (bool, i64, i64) {
        (self.allowed, self.capacity, self.remaining)
    }
}

/// Asserts `lo <= v <= hi` with a readable message.
#[track_caller]
pub fn assert_between(v: i64, lo: i64, hi: i64, what: &str) {
    assert!(lo <= v && v <= hi, "{what}: {v} not in [{lo}, {hi}]");
}

impl Conn {
    /// `RL.<cmd> key <args…>`; `args` is whitespace-separated. Panics on an error reply.
    pub fn rl(&mut self, cmd: &str, key: impl AsRef<[u8]>, args: &str) -> Rl {
        let r = self.rl_raw(cmd, key.as_ref(), args);
        if let Reply::Error(e) = &r {
            panic!(
                "RL.{cmd} {} {args}: error {e}",
                String::from_utf8_lossy(key.as_ref())
            );
        }
        Rl::from_reply(&r)
    }

    /// `RL.<cmd> key <args…>`, the raw reply.
    pub fn rl_raw(&mut self, cmd: &str, key: impl AsRef<[u8]>, args: &str) -> Reply {
        let mut v: Vec<Vec<u8>> = vec![format!("RL.{cmd}").into_bytes(), key.as_ref().to_vec()];
        v.extend(args.split_whitespace().map(|a| a.as_bytes().to_vec()));
        self.cmd(&v)
    }

    /// `RL.<cmd> key <args…>` that must fail; the error line.
    pub fn rl_err(&mut self, cmd: &str, key: impl AsRef<[u8]>, args: &str) -> String {
        let r = self.rl_raw(cmd, key.as_ref(), args);
        match r {
            Reply::Error(e) => e,
            other => panic!(
                "RL.{cmd} {} {args}: expected an error, got {other:?}",
                String::from_utf8_lossy(key.as_ref())
            ),
        }
    }

    /// Sends `n` copies of `RL.<cmd> key <args…>` in one pipeline (the server handles them
    /// back to back, so timing-sensitive sequences don't depend on round trips), then reads them.
    pub fn rl_pipeline(
        &mut self,
        cmd: &str,
        key: impl AsRef<[u8]>,
        args: &str,
        n: usize,
    ) -> Vec<Rl> {
        let mut v: Vec<Vec<u8>> = vec![format!("RL.{cmd}").into_bytes(), key.as_ref().to_vec()];
        v.extend(args.split_whitespace().map(|a| a.as_bytes().to_vec()));
        for _ in 0..n {
            self.send(&v).unwrap();
        }
        (0..n)
            .map(|_| {
                let r = self.read().unwrap();
                if let Reply::Error(e) = &r {
                    panic!("RL.{cmd} {args}: error {e}");
                }
                Rl::from_reply(&r)
            })
            .collect()
    }

    /// `RL.ALLOW key <args…>`.
    pub fn allow(&mut self, key: impl AsRef<[u8]>, args: &str) -> Rl {
        self.rl("ALLOW", key, args)
    }

    /// `RL.PEEK key <args…>`.
    pub fn peek(&mut self, key: impl AsRef<[u8]>, args: &str) -> Rl {
        self.rl("PEEK", key, args)
    }

    /// `PTTL key`.
    pub fn pttl(&mut self, key: impl AsRef<[u8]>) -> i64 {
        self.cmd(&[b"PTTL".as_slice(), key.as_ref()]).int()
    }

    /// `PEXPIRETIME key`.
    pub fn pexpiretime(&mut self, key: impl AsRef<[u8]>) -> i64 {
        self.cmd(&[b"PEXPIRETIME".as_slice(), key.as_ref()]).int()
    }

    /// `EXISTS key`.
    pub fn exists(&mut self, key: impl AsRef<[u8]>) -> bool {
        self.cmd(&[b"EXISTS".as_slice(), key.as_ref()]).int() == 1
    }

    /// `TYPE key`.
    pub fn type_of(&mut self, key: impl AsRef<[u8]>) -> String {
        self.cmd(&[b"TYPE".as_slice(), key.as_ref()]).text()
    }

    /// `DEL key`.
    pub fn del(&mut self, key: impl AsRef<[u8]>) -> i64 {
        self.cmd(&[b"DEL".as_slice(), key.as_ref()]).int()
    }

    /// `DEBUG DIGEST-VALUE key` (all zeros for a missing key).
    pub fn digest_value(&mut self, key: impl AsRef<[u8]>) -> String {
        let r = self
            .cmd(&[b"DEBUG".as_slice(), b"DIGEST-VALUE", key.as_ref()])
            .ok();
        r.array()[0].text()
    }

    /// Server time (`TIME`) in µs.
    pub fn time_us(&mut self) -> i64 {
        let r = self.cmd(&["TIME"]).ok();
        let a = r.array();
        a[0].text().parse::<i64>().unwrap() * 1_000_000 + a[1].text().parse::<i64>().unwrap()
    }

    /// `INFO <section>` as text.
    pub fn info(&mut self, section: &str) -> String {
        self.cmd(&["INFO", section]).ok().text()
    }

    /// A snapshot of everything observable about a key: digest, expiry time, type.
    pub fn snapshot(&mut self, key: impl AsRef<[u8]>) -> (String, i64, String) {
        let k = key.as_ref();
        (self.digest_value(k), self.pexpiretime(k), self.type_of(k))
    }
}

/// Polls `cond` every 10 ms until it holds; panics with `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        sleep(Duration::from_millis(10));
    }
}

/// splitmix64: small, deterministic, good enough for workloads.
pub struct Rng(u64);

impl Rng {
    /// Seeded from `RL_SEED` or the clock; prints the seed so a failure can be replayed.
    pub fn from_env(test: &str) -> Rng {
        let seed = std::env::var("RL_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("{test}: RL_SEED={seed}");
        Rng(seed)
    }

    /// A fixed seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// A random element.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// The four algorithms, as `ALGO` option strings.
pub const ALGOS: [&str; 4] = ["sliding-window", "fixed-window", "gcra", "moving-window"];

impl Conn {
    /// `RL.INSPECT key` as field → value text; `None` for a missing key.
    pub fn inspect(
        &mut self,
        key: impl AsRef<[u8]>,
    ) -> Option<std::collections::BTreeMap<String, String>> {
        match self.cmd(&[b"RL.INSPECT".as_slice(), key.as_ref()]) {
            Reply::Nil => None,
            Reply::Array(items) => {
                assert!(items.len() % 2 == 0, "odd field/value list: {items:?}");
                Some(
                    items
                        .chunks(2)
                        .map(|kv| {
                            let value = match &kv[1] {
                                Reply::Int(i) => i.to_string(),
                                other => other.text(),
                            };
                            (kv[0].text(), value)
                        })
                        .collect(),
                )
            }
            other => panic!("RL.INSPECT: unexpected reply {other:?}"),
        }
    }

    /// A field of `RL.INSPECT key` as an integer.
    pub fn inspect_int(&mut self, key: impl AsRef<[u8]>, field: &str) -> i64 {
        let fields = self.inspect(key).expect("RL.INSPECT: the key exists");
        fields
            .get(field)
            .unwrap_or_else(|| panic!("RL.INSPECT has no field {field}: {fields:?}"))
            .parse()
            .unwrap()
    }

    /// A counter of `INFO ratelimit`.
    pub fn stat(&mut self, name: &str) -> i64 {
        let info = self.info("ratelimit");
        info_field(&info, &format!("ratelimit_{name}"))
            .unwrap_or_else(|| panic!("INFO ratelimit lacks {name}:\n{info}"))
            .parse()
            .unwrap()
    }
}

/// CRC-64/Jones (reflected, as the server computes it over DUMP payloads and RDB files).
pub fn crc64(data: &[u8]) -> u64 {
    const POLY: u64 = 0x95ac_9329_ac4b_c9b5; // 0xad93d23594c935a9 bit-reversed
    let mut crc = 0u64;
    for &b in data {
        crc ^= u64::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// A DUMP payload split into (value bytes, 2-byte RDB version); the CRC is dropped.
pub fn split_dump(dump: &[u8]) -> (Vec<u8>, [u8; 2]) {
    assert!(dump.len() > 10, "too short for a DUMP payload");
    let body = &dump[..dump.len() - 10];
    let version = [dump[dump.len() - 10], dump[dump.len() - 9]];
    (body.to_vec(), version)
}

/// A DUMP payload from value bytes and RDB version, with a correct CRC.
pub fn make_dump(body: &[u8], version: [u8; 2]) -> Vec<u8> {
    let mut out = body.to_vec();
    out.extend_from_slice(&version);
    let crc = crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// One random, checksum-valid damage to the module part of `dump`.
pub fn mutate_dump(rng: &mut Rng, dump: &[u8]) -> Vec<u8> {
    let (mut body, version) = split_dump(dump);
    // body[0] is the object type; the module id and the value follow.
    let n = body.len();
    match rng.below(7) {
        0 => {
            let i = 1 + rng.below(n as u64 - 1) as usize;
            body[i] ^= 1 << rng.below(8);
        }
        1 => {
            let i = 1 + rng.below(n as u64 - 1) as usize;
            let random = rng.next_u64() as u8;
            body[i] = *rng.pick(&[0, 1, 0x7f, 0x80, 0xff, random]);
        }
        2 => body.truncate(1 + rng.below(n as u64 - 1) as usize),
        3 => {
            let i = 1 + rng.below(n as u64) as usize;
            let len = 1 + rng.below(8) as usize;
            let extra = rng.bytes(len);
            body.splice(i..i, extra);
        }
        4 => {
            let i = 1 + rng.below(n as u64 - 1) as usize;
            let len = (1 + rng.below(6) as usize).min(n - i);
            body.drain(i..i + len);
        }
        5 => {
            // Damage inside the payload string itself (after the 10-byte type id and opcode).
            let start = 11.min(n - 1);
            for _ in 0..1 + rng.below(4) {
                let i = start + rng.below((n - start) as u64) as usize;
                body[i] = rng.next_u64() as u8;
            }
        }
        _ => {
            // A wrong payload length byte, a different type id, or an early end marker.
            let i = 1 + rng.below(n as u64 - 1) as usize;
            body.truncate(i);
            body.push(0);
        }
    }
    make_dump(&body, version)
}

/// The previous release's module (the one before this; see scripts/prev-module), built by
/// scripts/test from git history (never committed):
/// `RL_PREV_MODULE`, else `target/prev/release/libredis_ratelimit.so`.
pub fn prev_module_path() -> PathBuf {
    let path = match std::env::var_os("RL_PREV_MODULE") {
        Some(p) => PathBuf::from(p),
        None => {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/prev/release/libredis_ratelimit.so")
        }
    };
    if !path.is_file() {
        panic!(
            "the previous release's module is not at {}: scripts/test builds it (scripts/prev-module)",
            path.display()
        );
    }
    path
}
