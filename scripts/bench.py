"""The driver of scripts/bench: read the top of scripts/bench for what it measures and its options.

Throughput is `redis-benchmark` against real servers; every figure that matters is a ratio to a
baseline measured in the same round (INCR for RL.*, the same command on a server without the
module for unrelated traffic), and each round alternates the commands (reversed every other
round), so a machine that gets busier or quieter during the run moves both sides of a ratio.
Markdown goes to stdout, progress to stderr, everything measured to $BENCH_JSON.
"""

from __future__ import annotations

import csv
import importlib.resources
import io
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

# --- what is measured: adding a row is one line --------------------------------------------------

# Throughput rows: (name, tags, command). In a command `{r}` is a random key: among KEYS keys
# written once before the rounds ("existing" tag) or among 10^9 in a database emptied before the
# run ("fresh" tag: FLUSHDB, then keys never seen). A command without `{r}` is one key ("hot").
# Tag `p1`: also at -P 1; `replica`: also on a server with one replica attached; `cell`: only
# with RL_CELL_SO; `reads`: writes nothing, reads the keys another row writes.
# `{fixed_lua}` `{sliding_lua}` `{moving_lua}`: the SHA of limits' own scripts, `{now}`: the
# bench's start in seconds, `{hot_window}`: the window that holds ~10,000 runs.
# The random-key rules admit every hit of the run (1000 per key) and keep every key alive.
ROWS: list[tuple[str, str, str]] = [
    ("incr", "fresh existing p1 replica", "INCR k:{r}"),
    ("sliding", "fresh existing p1 replica", "RL.ALLOW s:{r} 1000 1h"),
    ("fixed", "fresh existing p1 replica", "RL.ALLOW f:{r} 1000 1h ALGO fixed-window"),
    # GCRA keys live until the bucket is full again: one emission interval (window / limit) per
    # admitted hit. 10 per day with a burst of 1000 keeps every key alive through the run.
    ("gcra", "fresh existing p1 replica", "RL.ALLOW g:{r} 10 1d ALGO gcra BURST 1000"),
    ("moving", "fresh existing p1 replica", "RL.ALLOW m:{r} 1000 1h ALGO moving-window"),
    ("peek", "existing p1 reads", "RL.PEEK s:{r} 1000 1h"),
    ("inspect", "existing p1 reads", "RL.INSPECT s:{r}"),
    # limits' own scripts with the arguments limits passes (its storage decides fixed-window
    # admission from the returned count). The sliding counter's previous-window key is one that
    # is never written: a limiter in its first window, as every key is during the bench.
    ("limits_fixed", "fresh existing", "EVALSHA {fixed_lua} 1 lf:{r} 3600 1"),
    ("limits_sliding", "fresh existing", "EVALSHA {sliding_lua} 2 lsp:{r} ls:{r} 1000 3600 1"),
    ("limits_moving", "fresh existing", "EVALSHA {moving_lua} 1 lm:{r} {now} 1000 3600 1"),
    # What rl:// sends for limits' sliding window counter instead of limits_sliding.
    ("rl_sliding", "fresh existing", "RL.ALLOW lsw:{r} 1000 1h ALGO limits-sliding-window"),
    ("cell", "fresh existing cell", "CL.THROTTLE c:{r} 999 10 86400 1"),  # gcra's rule
    ("incr_hot", "hot p1", "INCR hot:incr"),
    ("denied_sliding", "hot p1", "RL.ALLOW hot:s 100 1h"),
    ("denied_fixed", "hot", "RL.ALLOW hot:f 100 1h ALGO fixed-window"),
    ("denied_gcra", "hot", "RL.ALLOW hot:g 100 1h ALGO gcra"),
    ("denied_moving", "hot", "RL.ALLOW hot:m 100 1h ALGO moving-window"),
    ("peek_hot", "hot", "RL.PEEK hot:s 100 1h"),
    # One key, every hit admitted, its window sized to hold ~10,000 runs: the log is trimmed at
    # the old end and appended at the new one on every hit.
    ("hot_log", "hot", "RL.ALLOW hot:log 1000000 {hot_window} ALGO moving-window"),
    # limits' moving window on one list of 10,000 entries (its LTRIM keeps `limit` of them).
    ("limits_moving_hot", "hot", "EVALSHA {moving_lua} 1 hot:list {now} 10000 3600 1"),
    # Concurrency leases: a new lease (the server makes the id), and one id's lease taken then
    # renewed on every hit.
    ("acquire", "fresh existing p1 replica", "RL.ACQUIRE a:{r} 1000 1h"),
    ("renew", "fresh existing p1 replica", "RL.ACQUIRE r:{r} 1000 1h ID w"),
    # RL.ACQUIRE + RL.RELEASE of the lease just taken, in one script (the key is created and
    # deleted every time), against INCR + INCR in one script: the scripts' own cost cancels.
    ("lease_pair", "fresh", "EVALSHA {lease_pair} 1 lp:{r}"),
    # Several limits in one call (each key sliding-window 1000 1h), costs settled after the work,
    # a penalty block, the GCRA drop-ins.
    ("allowall1", "fresh existing", "RL.ALLOWALL 1 w1:{r} 1000 1h"),
    ("allowall2", "fresh existing", "RL.ALLOWALL 2 w2a:{r} w2b:{r} 1000 1h 1000 1h"),
    ("allowall4", "existing",
     "RL.ALLOWALL 4 w4a:{r} w4b:{r} w4c:{r} w4d:{r} 1000 1h 1000 1h 1000 1h 1000 1h"),
    ("peekall2", "existing reads", "RL.PEEKALL 2 w2a:{r} w2b:{r} 1000 1h 1000 1h"),
    ("charge", "existing", "RL.CHARGE ch:{r} 1000 1h 1"),
    ("refund", "existing", "RL.REFUND ch:{r} 1000 1h 1"),
    ("block", "fresh existing", "RL.ALLOW b:{r} 1000 1h BLOCK 1m"),
    ("rl_throttle", "fresh existing", "RL.THROTTLE t:{r} 999 10 86400 1"),  # = our CL.THROTTLE
    ("gcra_cmd", "fresh existing", "GCRA gc:{r} 999 10 86400"),
    ("incr_pair", "fresh", "EVALSHA {incr_pair} 1 ip:{r}"),
]

# Scripts of the bench's own (`{name}`: their SHA), loaded at bench time.
OWN_SCRIPTS: dict[str, str] = {
    "lease_pair": "local g = redis.call('RL.ACQUIRE', KEYS[1], 10, '1h') "
                  "return redis.call('RL.RELEASE', KEYS[1], g[2])",
    "incr_pair": "redis.call('INCR', KEYS[1]) return redis.call('INCR', KEYS[1])",
}

# Ratios of two rows of the same setup, per round: (label, numerator, denominator).
COMPARE: list[tuple[str, str, str]] = [
    ("fixed-window ÷ limits' fixed window (Lua)", "fixed", "limits_fixed"),
    ("sliding-window ÷ limits' sliding window counter (Lua)", "sliding", "limits_sliding"),
    ("moving-window ÷ limits' moving window (Lua)", "moving", "limits_moving"),
    ("limits sliding via rl:// ÷ via limits' Lua", "rl_sliding", "limits_sliding"),
    ("gcra ÷ redis-cell CL.THROTTLE", "gcra", "cell"),
    ("RL.THROTTLE (our CL.THROTTLE) ÷ redis-cell CL.THROTTLE", "rl_throttle", "cell"),
    ("RL.ALLOWALL 1 key ÷ RL.ALLOW", "allowall1", "sliding"),
    ("RL.ALLOWALL 2 keys ÷ RL.ALLOW (×2: per limit checked)", "allowall2", "sliding"),
    ("RL.ALLOWALL 4 keys ÷ RL.ALLOW (×4: per limit checked)", "allowall4", "sliding"),
    ("hot moving-window log ÷ limits' hot list", "hot_log", "limits_moving_hot"),
    ("RL.ACQUIRE + RL.RELEASE ÷ INCR + INCR (each pair in one script)", "lease_pair",
     "incr_pair"),
]

# Unrelated traffic: the same command on a server with the module and on one without it, -P 16.
# `u:` keys exist (rewritten with a TTL at each round's start), `d:` keys are rewritten before
# every DEL run (most DELs then delete a key), `c:` are counters.
UNRELATED: list[tuple[str, str]] = [
    ("SET k v EX 100", "SET u:{r} v EX 100"),
    ("EXPIRE k 100", "EXPIRE u:{r} 100"),
    ("DEL k", "DEL d:{r}"),
    ("GET k (control)", "GET u:{r}"),
    ("INCR k (control)", "INCR c:{r}"),
]

# Memory: (label, commands separated by ";", needs redis-cell). `{k}`: a 16-byte key name.
MEMORY_ROWS: list[tuple[str, str, bool]] = [
    ("sliding-window 100 1h", "RL.ALLOW {k} 100 1h", False),
    ("sliding-window 10 1s", "RL.ALLOW {k} 10 1s", False),
    ("sliding-window 1000 1d", "RL.ALLOW {k} 1000 1d", False),
    ("fixed-window 100 1h", "RL.ALLOW {k} 100 1h ALGO fixed-window", False),
    ("fixed-window 10 1s", "RL.ALLOW {k} 10 1s ALGO fixed-window", False),
    ("fixed-window 1000 1d", "RL.ALLOW {k} 1000 1d ALGO fixed-window", False),
    ("gcra 100 1h", "RL.ALLOW {k} 100 1h ALGO gcra", False),
    ("gcra 100 1h BURST 10", "RL.ALLOW {k} 100 1h ALGO gcra BURST 10", False),
    ("gcra 10 1s", "RL.ALLOW {k} 10 1s ALGO gcra", False),
    ("gcra 1000 1d", "RL.ALLOW {k} 1000 1d ALGO gcra", False),
    ("limits-sliding-window 100 1h", "RL.ALLOW {k} 100 1h ALGO limits-sliding-window", False),
    ("fixed-window 10000 1d (a 16-byte block)", "RL.ALLOW {k} 10000 1d ALGO fixed-window", False),
    ("moving-window 100 1h, one entry", "RL.ALLOW {k} 100 1h ALGO moving-window", False),
    ("moving-window 100 1h, two entries (boxed)",
     "RL.ALLOW {k} 100 1h ALGO moving-window; RL.ALLOW {k} 100 1h ALGO moving-window COST 2",
     False),
    ("gcra 100 1h in debt (RL.CHARGE 150)", "RL.CHARGE {k} 100 1h 150 ALGO gcra", False),
    ("gcra 1000 1d in debt (RL.CHARGE 1500, a 16-byte block)",
     "RL.CHARGE {k} 1000 1d 1500 ALGO gcra", False),
    ("fixed-window 100 1h in debt (RL.CHARGE 150, boxed)",
     "RL.CHARGE {k} 100 1h 150 ALGO fixed-window", False),
    ("sliding-window 100 1h in debt (RL.CHARGE 150, boxed)", "RL.CHARGE {k} 100 1h 150", False),
    ("fixed-window 1 1h under BLOCK 1h (boxed)",
     "RL.ALLOW {k} 1 1h ALGO fixed-window; RL.ALLOW {k} 1 1h ALGO fixed-window BLOCK 1h", False),
    ("leases, one lease (server id)", "RL.ACQUIRE {k} 10 1h", False),
    ("leases, 10 leases (server ids)", ";".join(["RL.ACQUIRE {k} 10 1h"] * 10), False),
    ("limits' fixed window: INCRBY + EXPIRE", "INCRBY {k} 1; EXPIRE {k} 3600", False),
    ("a string with a TTL: SET … PX", "SET {k} 1 PX 3600000", False),
    ("redis-cell: CL.THROTTLE 100/h", "CL.THROTTLE {k} 99 100 3600 1", True),
]

# Before/after: with RL_BASELINE_SO (an older build of the module), these rows run on a server
# with this build and on one with that build, in the same run (see baseline_compare).
BASELINE_ROWS = ["incr", "sliding", "fixed", "gcra", "moving", "peek", "denied_sliding",
                 "denied_fixed", "denied_gcra"]
BASELINE_MEMORY_ROWS = ["sliding-window 100 1h", "fixed-window 100 1h", "gcra 100 1h",
                        "moving-window 100 1h, one entry"]

# Fresh keys, where the instructions go: one command at a time with the server under callgrind
# counting inside the server's call() only (the command, its propagation, the server's own
# bookkeeping), split by the functions it calls (see breakdown()). `{i}` numbers the samples.
BREAKDOWN_ROWS: list[tuple[str, str]] = [
    ("INCR", "INCR bd:i:{i}"),
    ("sliding-window", "RL.ALLOW bd:s:{i} 1000 1h"),
    ("fixed-window", "RL.ALLOW bd:f:{i} 1000 1h ALGO fixed-window"),
    ("gcra", "RL.ALLOW bd:g:{i} 10 1d ALGO gcra BURST 1000"),
]

# --- options -------------------------------------------------------------------------------------

ENV = os.environ
ROUNDS = int(ENV.get("ROUNDS", "3"))
N = int(ENV.get("N", "200000"))
N1 = int(ENV.get("N1", str(max(N // 6, 1000))))
KEYS = int(ENV.get("KEYS", "100000"))
MEM_KEYS = int(ENV.get("MEM_KEYS", "100000"))
PAIRS = int(ENV.get("PAIRS", "2"))
INSTR_N = int(ENV.get("INSTR_N", "3000"))
INSTR_KEYS = int(ENV.get("INSTR_KEYS", "5000"))
BREAKDOWN_N = int(ENV.get("BREAKDOWN_N", "7"))
BREAKDOWN_STARTS = int(ENV.get("BREAKDOWN_STARTS", "3"))
BASELINE = ENV.get("RL_BASELINE_SO", "")
SECTIONS = set(ENV.get("SECTIONS", "throughput unrelated instructions breakdown memory logs"
                       + (" baseline" if BASELINE else "")).split())
SERVER = ENV.get("SERVER_BIN", "redis-server")
MEMORY_SERVERS = ENV.get("MEMORY_SERVERS_BIN", SERVER).split()
MODULE = ENV["MODULE_SO"]
# With redis-cell loaded beside it, the module leaves CL.THROTTLE to redis-cell (its own
# CL.THROTTLE is RL.THROTTLE's code: row rl_throttle); loaded after it, redis-cell would find the
# name taken and abort the server.
CELL = ENV.get("RL_CELL_SO", "")
OURS = f"{MODULE} compat-commands gcra" if CELL else MODULE
JSON_OUT = ENV.get("BENCH_JSON", "target/bench/results.json")
FRESH_RANGE = 1_000_000_000
CLIENTS = 50

if CELL and not os.path.exists(CELL):
    sys.exit(f"RL_CELL_SO={CELL}: no such file")
if "baseline" in SECTIONS and not os.path.exists(BASELINE):
    sys.exit(f"SECTIONS has baseline: RL_BASELINE_SO={BASELINE!r} is no module file")

TWO_CORES = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
PIN_SERVER = ["taskset", "-c", "0"] if TWO_CORES else []
PIN_CLIENT = ["taskset", "-c", "1"] if TWO_CORES else []


T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[{time.monotonic() - T0:5.0f} s] {msg}", file=sys.stderr, flush=True)


# --- servers -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def version_of(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True,
                         check=False).stdout
    name = "Valkey" if "valkey" in out.lower() else "Redis"
    for word in out.split():
        if word.startswith("v="):
            return f"{name} {word[2:]}"
    return out.strip()


@dataclass
class Server:
    name: str
    binary: str
    modules: list[str]
    pin: list[str] = field(default_factory=lambda: PIN_SERVER)
    extra: list[str] = field(default_factory=list)
    callgrind: bool = False  # run under valgrind --tool=callgrind: instruction counts
    callgrind_args: list[str] = field(default_factory=list)
    port: int = 0
    dir: str = ""

    def start(self, root: str) -> Server:
        self.port = free_port()
        self.dir = os.path.join(root, self.name)
        os.makedirs(self.dir)
        wrap = ["valgrind", "--tool=callgrind", "-q", *self.callgrind_args,
                f"--callgrind-out-file={self.dir}/callgrind.%p"] if self.callgrind else []
        args = [*self.pin, *wrap, self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", self.dir, "--daemonize", "yes",
                "--logfile", os.path.join(self.dir, "log"),
                "--pidfile", os.path.join(self.dir, "pid"), "--enable-debug-command", "local",
                "--enable-module-command", "local"]
        for m in self.modules:
            args += ["--loadmodule", *m.split()]  # a path, then the module's arguments
        if self.callgrind:  # a daemonized child escapes callgrind_control: in the background
            args[args.index("--daemonize") + 1] = "no"
            subprocess.Popen(args + self.extra, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        else:
            subprocess.run(args + self.extra, check=True, stdout=subprocess.DEVNULL)
        STARTED.append(self)
        self.r = redis.Redis(port=self.port, socket_timeout=600, protocol=2)
        for _ in range(600):
            try:
                self.r.ping()
                return self
            except redis.ConnectionError:
                time.sleep(0.1)
        with open(os.path.join(self.dir, "log")) as f:
            sys.exit(f"{self.name} did not start:\n{f.read()}")

    def stop(self) -> None:
        try:
            self.r.shutdown(nosave=True)
        except (redis.ConnectionError, redis.ResponseError):
            pass  # stopped already, or stopping (redis-py reads the closed socket as an error)
        pidfile = os.path.join(self.dir, "pid")
        for _ in range(50):
            if not os.path.exists(pidfile):
                return
            time.sleep(0.1)

    def pid(self) -> int:
        with open(os.path.join(self.dir, "pid")) as f:
            return int(f.read())

    def used_memory(self) -> int:
        return int(self.r.info("memory")["used_memory"])

    def settled_memory(self) -> int:
        """used_memory once it stops moving: a keyspace table still being rehashed holds its old
        and its new bucket array (seen on Valkey 8.1 right after a fill)."""
        last = self.used_memory()
        for _ in range(50):
            time.sleep(0.2)
            now = self.used_memory()
            if now == last:
                return now
            last = now
        return last

    def usec(self, *cmd: Any) -> tuple[Any, float]:
        """One call, its reply and its server time from INFO commandstats (µs)."""
        self.r.config_resetstat()
        reply = self.r.execute_command(*cmd)
        stats = self.r.info("commandstats")
        return reply, float(stats[f"cmdstat_{str(cmd[0]).lower()}"]["usec"])


STARTED: list[Server] = []


def resp(args: list[bytes | str]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def pipe(server: Server, payload: bytes, db: int = 0) -> None:
    """Sends a stream of commands with redis-cli --pipe; any error reply stops the bench."""
    out = subprocess.run(["redis-cli", "-p", str(server.port), "-n", str(db), "--pipe"],
                         input=payload, capture_output=True, check=True).stdout.decode()
    if "errors: 0," not in out:
        sys.exit(f"{server.name}: error replies while filling:\n{out}")


def keyed_payload(commands: list[str], placeholder: str, key_format: str, n: int) -> bytes:
    """RESP for `commands` (space-separated templates) for i in range(n), with `placeholder` as
    `key_format % i`. Every key has the same width, so one pattern serves them all."""
    width = len(key_format % 0)
    pattern = b""
    for command in commands:
        parts = command.split()
        pattern += b"*%d\r\n" % len(parts)
        for p in parts:
            length = len(p.encode()) + p.count(placeholder) * (width - len(placeholder))
            body = p.replace("%", "%%").replace(placeholder, key_format).encode()
            pattern += b"$%d\r\n" % length + body + b"\r\n"
    keys = sum(c.count(placeholder) for c in commands)
    return b"".join(pattern % ((i,) * keys) for i in range(n))


def fill_random_keys(server: Server, template: str, keys: int = KEYS) -> None:
    """Writes once every key redis-benchmark -r `keys` can pick for `template`."""
    pipe(server, keyed_payload([template], "__rand_int__", "%012d", keys))


# --- redis-benchmark -----------------------------------------------------------------------------


def server_cpu(server: Server) -> float:
    """CPU seconds of the server's main thread (user + system)."""
    info = server.r.info("cpu")
    if "used_cpu_user_main_thread" in info:
        return float(info["used_cpu_user_main_thread"]) + float(info["used_cpu_sys_main_thread"])
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


# One measurement: (requests per second, server CPU µs per request). Throughput moves with
# whatever else the machine runs; the server's own CPU time per request much less.
Sample = tuple[float, float]


def rps(server: Server, cmd: str, pipeline: int, n: int, keyspace: int = 0, db: int = 0) -> Sample:
    args = [*PIN_CLIENT, "redis-benchmark", "-p", str(server.port), "-P", str(pipeline),
            "-c", str(CLIENTS), "-n", str(n), "--csv"]
    if keyspace:
        args += ["-r", str(keyspace)]
    if db:
        args += ["--dbnum", str(db)]
    cpu = server_cpu(server)
    out = subprocess.run(args + cmd.split(), capture_output=True, text=True, check=True).stdout
    cpu_us = (server_cpu(server) - cpu) * 1e6 / n
    rows = list(csv.reader(io.StringIO(out.strip())))
    return float(rows[-1][1]), cpu_us


def instructions(server: Server, cmd: str, n: int, keyspace: int = 0, db: int = 0) -> float:
    """Instructions the server (under callgrind) executes per request of `cmd` at -P 16: a
    warm-up run, then counters zeroed, n requests, a dump. Whatever else runs on the machine,
    the count stays the same."""
    return instructions_of(server, cmd, n, keyspace, db)[0]


def instructions_of(server: Server, cmd: str, n: int, keyspace: int = 0, db: int = 0,
                    module: str = "") -> tuple[float, float]:
    """`instructions`, and of them those executed in `module`'s own code (0 without one): the
    share the server's hash seed and keyspace layout cannot move."""
    ctl = ["callgrind_control", str(server.pid())]
    rps(server, cmd, 16, max(n // 5, 100), keyspace, db)
    subprocess.run([*ctl[:1], "-z", ctl[1]], check=True, capture_output=True)
    rps(server, cmd, 16, n, keyspace, db)
    before = set(os.listdir(server.dir))
    subprocess.run([*ctl[:1], "-d", ctl[1]], check=True, capture_output=True)
    for _ in range(100):
        dumps = [f for f in set(os.listdir(server.dir)) - before if f.startswith("callgrind.")]
        if dumps:
            dump = os.path.join(server.dir, dumps[0])
            own = 0
            if module:
                own = sum(c for _, obj, c in function_counts(dump, False)
                          if os.path.realpath(obj) == os.path.realpath(module))
            with open(dump) as f:
                for line in f:
                    if line.startswith("totals:"):
                        return int(line.split()[1]) / n, own / n
        time.sleep(0.1)
    sys.exit(f"{server.name}: no callgrind dump")


def check_command(server: Server, cmd: str, db: int = 0) -> None:
    """redis-benchmark counts error replies as answers: make sure the command is one that works."""
    args = cmd.replace("__rand_int__", "0" * 12).split()
    try:
        server.r.execute_command("SELECT", db)
        server.r.execute_command(*args)
    except redis.ResponseError as e:
        sys.exit(f"{server.name}: `{cmd}` fails: {e}")
    finally:
        server.r.execute_command("SELECT", 0)


# --- statistics ----------------------------------------------------------------------------------


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def ratio_text(xs: list[float], digits: int) -> str:
    if not xs:
        return "—"
    text = f"{med(xs):.{digits}f}"
    return text + (f" ({min(xs):.{digits}f}–{max(xs):.{digits}f})" if len(xs) > 1 else "")


def summarize(a: dict[int, Sample], b: dict[int, Sample], digits: int) -> dict[str, Any]:
    """Medians of `a` and of its per-round ratios to `b` (the rounds both have)."""
    both = [r for r in a if r in b]
    ops = [a[r][0] / b[r][0] for r in both]
    cpu = [a[r][1] / b[r][1] for r in both if b[r][1] > 0]
    return {"ops": med([v[0] for v in a.values()]), "cpu_us": med([v[1] for v in a.values()]),
            "ops_ratio": med(ops) if ops else None,
            "ops_ratio_range": [min(ops), max(ops)] if ops else None,
            "cpu_ratio": med(cpu) if cpu else None,
            "cpu_ratio_range": [min(cpu), max(cpu)] if cpu else None,
            "ops_ratio_text": ratio_text(ops, digits), "cpu_ratio_text": ratio_text(cpu, digits)}


# --- throughput ----------------------------------------------------------------------------------


@dataclass
class Setup:
    label: str
    server: Server
    kind: str  # fresh | existing | hot
    pipeline: int
    n: int

    def baseline(self) -> str:
        return "incr_hot" if self.kind == "hot" else "incr"


@dataclass
class Run:
    setup: Setup
    row: str
    cmd: str
    shown: str  # the command as the table shows it
    reads: bool  # writes nothing: its existing keys are written by another row


SCRIPT_NAMES = {"fixed_lua": "<incr_expire.lua>", "sliding_lua": "<acquire_sliding_window.lua>",
                "moving_lua": "<acquire_moving_window.lua>",
                "lease_pair": "<RL.ACQUIRE + RL.RELEASE>", "incr_pair": "<INCR + INCR>"}


def expand(template: str, subst: dict[str, str]) -> str:
    out = template.replace("{r}", "__rand_int__")
    for k, v in subst.items():
        out = out.replace("{" + k + "}", v)
    return out


def lua_sha(server: Server, name: str) -> str:
    script = importlib.resources.files("limits").joinpath(f"resources/redis/lua_scripts/{name}")
    return str(server.r.script_load(script.read_text()))


def throughput(root: str, result: dict[str, Any]) -> list[Run]:
    """Starts the servers, writes the existing keys, and returns the runs of one round."""
    mods = [OURS] + ([CELL] if CELL else [])
    main = Server("main", SERVER, mods).start(root)
    servers = [main]
    with_replica = None
    if any("replica" in tags for _, tags, _ in ROWS):
        with_replica = Server("with-replica", SERVER, mods).start(root)
        # On the client's core: the master's core does only the master's work.
        replica = Server("replica", SERVER, mods, pin=PIN_CLIENT).start(root)
        replica.r.execute_command("REPLICAOF", "127.0.0.1", with_replica.port)
        for _ in range(300):
            if replica.r.info("replication").get("master_link_status") == "up":
                break
            time.sleep(0.1)
        else:
            sys.exit("the replica did not connect")
        servers.append(with_replica)

    subst = {"now": str(int(time.time()))}
    for key, script in (("fixed_lua", "incr_expire.lua"),
                        ("sliding_lua", "acquire_sliding_window.lua"),
                        ("moving_lua", "acquire_moving_window.lua")):
        for s in servers:
            subst[key] = lua_sha(s, script)  # the same SHA on every server
    for key, text in OWN_SCRIPTS.items():
        for s in servers:
            subst[key] = str(s.r.script_load(text))
    # The hot log's window: 10,000 runs at the rate one key is hit (measured here).
    calib, _ = rps(main, "RL.ALLOW calib 1000000 20ms ALGO moving-window", 16, N)
    subst["hot_window"] = f"{10_000 / calib * 1000:.3f}ms"
    result["hot_window"] = subst["hot_window"]

    setups: list[Setup] = []
    runs: list[Run] = []
    for name, tags, template in ROWS:
        tagset = set(tags.split())
        if "cell" in tagset and not CELL:
            continue
        cmd = expand(template, subst)
        kinds = [k for k in ("fresh", "existing") if k in tagset] or ["hot"]
        variants: list[tuple[Server, int, str]] = [(main, 16, "")]
        if "p1" in tagset:
            variants.append((main, 1, ""))
        if "replica" in tagset and with_replica:
            variants.append((with_replica, 16, ", 1 replica"))
        for kind in kinds:
            for server, pipeline, suffix in variants:
                keys = {"fresh": "fresh keys", "existing": "existing keys", "hot": "one key"}[kind]
                label = f"{keys}, -P {pipeline}{suffix}"
                setup = next((s for s in setups if s.label == label), None)
                if setup is None:
                    n = N if pipeline > 1 else N1
                    setup = Setup(label, server, kind, pipeline, n)
                    setups.append(setup)
                shown = expand(template, {**subst, **SCRIPT_NAMES}).replace("__rand_int__", "…")
                runs.append(Run(setup, name, cmd, shown, "reads" in tagset))

    # A setup's runs side by side, so its baseline is measured close in time to its rows.
    order = {s.label: i for i, s in enumerate(setups)}
    runs.sort(key=lambda run: order[run.setup.label])
    for run in runs:
        check_command(run.setup.server, run.cmd, db=1 if run.setup.kind == "fresh" else 0)
    # Existing keys: every key the rounds can pick, written once, on each server that runs it.
    filled: set[tuple[int, str]] = set()
    for run in runs:
        if run.reads or run.setup.kind != "existing":
            continue
        if (run.setup.server.port, run.cmd) not in filled:
            log(f"  writing {KEYS:,} keys for {run.row} on {run.setup.server.name}")
            fill_random_keys(run.setup.server, run.cmd)
            filled.add((run.setup.server.port, run.cmd))
    if with_replica:
        with_replica.r.execute_command("WAIT", 1, 60000)
    for s in servers:  # warm-up, not measured
        rps(s, "INCR warm:__rand_int__", 16, N, KEYS)
    return runs


def measure(run: Run) -> Sample:
    s = run.setup
    return measure_on(s.server, s.kind, run.cmd, s.pipeline, s.n)


def measure_on(server: Server, kind: str, cmd: str, pipeline: int, n: int) -> Sample:
    """One redis-benchmark run of `cmd` on `server`: fresh keys (FLUSHDB first, database 1),
    existing keys (KEYS written before) or one key."""
    if kind == "fresh":
        server.r.execute_command("SELECT", 1)
        server.r.execute_command("FLUSHDB", "SYNC")
        server.r.execute_command("SELECT", 0)
        if server.name == "with-replica":
            server.r.execute_command("WAIT", 1, 60000)
        v = rps(server, cmd, pipeline, n, FRESH_RANGE, db=1)
    elif kind == "existing":
        v = rps(server, cmd, pipeline, n, KEYS)
    else:
        v = rps(server, cmd, pipeline, n)
    if server.name == "with-replica":
        server.r.execute_command("WAIT", 1, 60000)  # the replica has caught up before the next
    return v


# --- unrelated traffic ---------------------------------------------------------------------------


def unrelated_servers(root: str) -> tuple[Server, Server, bytes, bytes]:
    mod = Server("unrelated-module", SERVER, [MODULE]).start(root)
    plain = Server("unrelated-plain", SERVER, []).start(root)
    pool_u = keyed_payload(["SET {k} v EX 3600"], "{k}", "u:%012d", KEYS)
    pool_d = keyed_payload(["SET {k} v EX 3600"], "{k}", "d:%012d", N)
    for _, template in UNRELATED:
        for s in (mod, plain):
            check_command(s, expand(template, {}))
    for s in (mod, plain):
        rps(s, "INCR warm:__rand_int__", 16, N, KEYS)
    return mod, plain, pool_u, pool_d


def unrelated_round(mod: Server, plain: Server, pool_u: bytes, pool_d: bytes, rnd: int,
                    out: dict[str, list[tuple[Sample, Sample]]]) -> None:
    for s in (mod, plain):
        pipe(s, pool_u)
    for name, template in UNRELATED:
        cmd = expand(template, {})
        # DEL: N / 3 of the N keys just written, so that most DELs delete one (86 %).
        n, keyspace = (N // 3, N) if "d:" in cmd else (N, KEYS)
        for k in range(PAIRS):  # ABBA ABBA …: adjacent pairs, each side first as often
            v = {}
            for s in (mod, plain) if (rnd + k) % 2 == 0 else (plain, mod):
                if "d:" in cmd:
                    pipe(s, pool_d)
                v[s.name] = rps(s, cmd, 16, n, keyspace)
            out.setdefault(name, []).append((v[mod.name], v[plain.name]))


# --- instruction counts --------------------------------------------------------------------------

Key = tuple[str, str]  # (setup label, row)


def instruction_counts(root: str) -> tuple[dict[Key, float], dict[Key, str],
                                            dict[str, tuple[float, float]]]:
    """Instructions per request under callgrind for every -P 16 row (the hot log excepted: its
    window follows the wall-clock rate) and for the unrelated commands with and without the
    module. Deterministic where throughput and CPU time are not."""
    # Counts are of the whole process: keep its timer work (cron, active expiry, active rehash)
    # small and out of the commands' figures, so that a slower run does not count more.
    quiet = ["--hz", "1", "--activerehashing", "no"]
    rl = Server("callgrind-module", SERVER, [OURS] + ([CELL] if CELL else []), extra=quiet,
                callgrind=True).start(root)
    plain = Server("callgrind-plain", SERVER, [], extra=quiet, callgrind=True).start(root)
    for s in (rl, plain):
        s.r.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", 0)
    subst = {"now": str(int(time.time()))}
    for key, script in (("fixed_lua", "incr_expire.lua"),
                        ("sliding_lua", "acquire_sliding_window.lua"),
                        ("moving_lua", "acquire_moving_window.lua")):
        subst[key] = lua_sha(rl, script)
    for key, text in OWN_SCRIPTS.items():
        subst[key] = str(rl.r.script_load(text))
    todo: list[tuple[str, str, str, str]] = []  # (kind, row, command, shown)
    for name, tags, template in ROWS:
        tagset = set(tags.split())
        if "{hot_window}" in template or ("cell" in tagset and not CELL):
            continue
        cmd = expand(template, subst)
        shown = expand(template, {**subst, **SCRIPT_NAMES}).replace("__rand_int__", "…")
        for kind in [k for k in ("fresh", "existing") if k in tagset] or ["hot"]:
            todo.append((kind, name, cmd, shown))
            if kind == "existing" and "reads" not in tagset:
                fill_random_keys(rl, cmd, INSTR_KEYS)
    counts: dict[Key, float] = {}
    shown_cmds: dict[Key, str] = {}
    for kind, name, cmd, shown in todo:
        label = {"fresh": "fresh keys", "existing": "existing keys", "hot": "one key"}[kind]
        key = (f"{label}, -P 16", name)
        log(f"  {name}, {label}")
        if kind == "fresh":
            rl.r.execute_command("SELECT", 1)
            rl.r.execute_command("FLUSHDB", "SYNC")
            rl.r.execute_command("SELECT", 0)
            counts[key] = instructions(rl, cmd, INSTR_N, FRESH_RANGE, db=1)
        else:
            counts[key] = instructions(rl, cmd, INSTR_N, INSTR_KEYS if kind == "existing" else 0)
        shown_cmds[key] = shown
    # Before each command both servers hold the same keys: a dict being rehashed costs every
    # command that touches it. redis-cell, when loaded, subscribes to no event.
    unrelated: dict[str, tuple[float, float]] = {}
    pool_u = keyed_payload(["SET {k} v EX 3600"], "{k}", "u:%012d", INSTR_KEYS)
    pool_d = keyed_payload(["SET {k} v EX 3600"], "{k}", "d:%012d", 3 * INSTR_N)
    for name, template in UNRELATED:
        cmd = expand(template, {})
        got = []
        for s in (rl, plain):
            s.r.flushall(asynchronous=False)
            pipe(s, pool_u)
            if "d:" in cmd:
                pipe(s, pool_d)
            got.append(instructions(s, cmd, INSTR_N, 3 * INSTR_N if "d:" in cmd else INSTR_KEYS))
        unrelated[name] = (got[0], got[1])
        log(f"  {name}: {got[0]:,.0f} vs {got[1]:,.0f} instructions per request")
    rl.stop()
    plain.stop()
    return counts, shown_cmds, unrelated


# --- before/after: this build against an older one -----------------------------------------------


def works(server: Server, cmd: str, db: int) -> bool:
    """Whether `cmd` (a row's command, one key picked) succeeds on `server`."""
    args = cmd.replace("__rand_int__", "0" * 12).split()
    try:
        server.r.execute_command("SELECT", db)
        server.r.execute_command(*args)
        return True
    except redis.ResponseError:
        return False
    finally:
        server.r.execute_command("SELECT", 0)


def baseline_compare(root: str) -> dict[str, Any]:
    """This build against the one at RL_BASELINE_SO, in one run: the BASELINE_ROWS rows at -P 16
    on two servers of the same binary, one per module, with the same keys and rules. Every
    round measures each row on both, back to back, the order alternating (ABBA over rows and
    rounds), so both sides of a ratio see the same machine; the ratio new ÷ baseline is taken
    per round and its median reported. Then instructions per request with each module under
    callgrind (the figure load cannot move), and bytes per key of the counters."""
    new = Server("baseline-new", SERVER, [MODULE]).start(root)
    old = Server("baseline-old", SERVER, [BASELINE]).start(root)
    sides = (new, old)
    todo: list[tuple[str, str, str, str]] = []  # (kind, row, command, shown)
    for name, tags, template in ROWS:
        if name not in BASELINE_ROWS:
            continue
        tagset = set(tags.split())
        cmd = expand(template, {})
        shown = cmd.replace("__rand_int__", "…")
        kinds: list[str] = [k for k in ("fresh", "existing") if k in tagset] or ["hot"]
        for kind in kinds:
            db = 1 if kind == "fresh" else 0
            if not all(works(s, cmd, db) for s in sides):
                log(f"  {name} ({kind}): fails on one of the modules, skipped")
                continue
            todo.append((kind, name, cmd, shown))
            if kind == "existing" and "reads" not in tagset:
                for s in sides:
                    log(f"  writing {KEYS:,} keys for {name} on {s.name}")
                    fill_random_keys(s, cmd)
    for s in sides:  # warm-up, not measured
        rps(s, "INCR warm:__rand_int__", 16, N, KEYS)
    samples: dict[tuple[str, str], dict[str, dict[int, Sample]]] = {}
    for rnd in range(ROUNDS):
        log(f"  baseline round {rnd + 1} of {ROUNDS}")
        for i, (kind, name, cmd, _) in enumerate(todo if rnd % 2 == 0 else todo[::-1]):
            for s in sides if (rnd + i) % 2 == 0 else sides[::-1]:
                v = measure_on(s, kind, cmd, 16, N)
                samples.setdefault((kind, name), {}).setdefault(s.name, {})[rnd] = v
    for s in sides:
        s.stop()
        STARTED.remove(s)

    # Instructions per request, each module under callgrind (as in instruction_counts).
    quiet = ["--hz", "1", "--activerehashing", "no"]
    counted: dict[tuple[str, str], dict[str, tuple[float, float]]] = {}
    for module, side in ((MODULE, new.name), (BASELINE, old.name)):
        cg = Server(f"callgrind-{side}", SERVER, [module], extra=quiet, callgrind=True).start(root)
        cg.r.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", 0)
        for kind, name, cmd, _ in todo:
            if kind == "existing" and name != "peek":
                fill_random_keys(cg, cmd, INSTR_KEYS)
        for kind, name, cmd, _ in todo:
            if kind == "fresh":
                cg.r.execute_command("SELECT", 1)
                cg.r.execute_command("FLUSHDB", "SYNC")
                cg.r.execute_command("SELECT", 0)
                count = instructions_of(cg, cmd, INSTR_N, FRESH_RANGE, db=1, module=module)
            else:
                count = instructions_of(cg, cmd, INSTR_N, INSTR_KEYS if kind == "existing" else 0,
                                        module=module)
            counted.setdefault((kind, name), {})[side] = count
        cg.stop()
        STARTED.remove(cg)

    rows = []
    for kind, name, cmd, shown in todo:
        both = samples[(kind, name)]
        entry: dict[str, Any] = {"keys": kind, "row": name, "command": shown}
        entry.update(summarize(both[new.name], both[old.name], digits=3))
        entry["ops_baseline"] = med([v[0] for v in both[old.name].values()])
        entry["cpu_us_baseline"] = med([v[1] for v in both[old.name].values()])
        c = counted.get((kind, name), {})
        if new.name in c and old.name in c:
            (total, own), (total_b, own_b) = c[new.name], c[old.name]
            entry.update({"instructions": total, "instructions_baseline": total_b,
                          "instructions_ratio": total / total_b,
                          "module_instructions": own, "module_instructions_baseline": own_b})
        rows.append(entry)
    mem = [memory(root, SERVER, 100 + i, module, BASELINE_MEMORY_ROWS)
           for i, module in enumerate((MODULE, BASELINE))]
    return {"baseline": BASELINE, "rows": rows, "memory": mem}


def print_baseline(b: dict[str, Any], out: Any) -> None:
    print(file=out)
    print(f"This build ÷ the build at `RL_BASELINE_SO={b['baseline']}`, in the same run: each row "
          f"at -P 16 on two servers of the same binary (one per module, the same keys and "
          f"rules), measured back to back in every round, the order alternating; ratio per "
          f"round, median (range over {ROUNDS} rounds). Above 1 for ops/s, below 1 for CPU and "
          f"instructions: this build is faster. `incr` is the control (the module takes no "
          f"part): its ratio is the noise. Instructions per request: the whole server under "
          f"callgrind, {INSTR_N:,} requests, one server per module (its hash seed moves the "
          f"server's share by ±1–2 %), and of them the module's own code (what no seed "
          f"moves).", file=out)
    print(file=out)
    print("| keys | row | command | ops/s (baseline) | ops/s new ÷ baseline | server CPU µs/request "
          "(baseline) | CPU new ÷ baseline | instructions/request (baseline) | ÷ | "
          "in the module (baseline) |", file=out)
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|", file=out)
    for e in b["rows"]:
        instr = (f"{e['instructions']:,.0f} ({e['instructions_baseline']:,.0f}) | "
                 f"{e['instructions_ratio']:.3f} | {e['module_instructions']:,.0f} "
                 f"({e['module_instructions_baseline']:,.0f}) |"
                 if "instructions" in e else "— | — | — |")
        print(f"| {e['keys']} | `{e['row']}` | `{e['command']}` | {e['ops']:,.0f} "
              f"({e['ops_baseline']:,.0f}) | {e['ops_ratio_text']} | {e['cpu_us']:.2f} "
              f"({e['cpu_us_baseline']:.2f}) | {e['cpu_ratio_text']} | {instr}", file=out)
    new, old = b["memory"]
    print(file=out)
    print(f"| bytes per key ({new['server']}, {MEM_KEYS:,} keys) | new | baseline |", file=out)
    print("|---|---:|---:|", file=out)
    for m in new["rows"]:
        o = next((x for x in old["rows"] if x["row"] == m["row"]), None)
        was = f"{o['bytes_per_key']:.0f}" if o else "—"
        print(f"| {m['row']} | {m['bytes_per_key']:.0f} | {was} |", file=out)


# --- fresh keys: where the instructions go --------------------------------------------------------

# The parts of one command on a fresh key, each the inclusive count of the server functions
# (or the module's) that do it. For RL.ALLOW (module API): finding the key is RM_OpenKey (a
# miss); creating it RM_ModuleTypeSetValue without what it spends on the value objects and on
# the TTL a new key cannot have (setKey's removeExpire); the value is the server's two objects
# (createModuleObject) and the module's own (into_value: a heap value, or packing it into the
# value word); the expiry RM_SetAbsExpire plus that removeExpire; replication RM_Replicate
# (which looks the command up and builds its arguments whether or not a replica or the AOF will
# take them) and the propagation after the command, and apart from it the module encoding the
# state it replicates; the write signal RM_SignalModifiedKey + RM_NotifyKeyspaceEvent; the reply
# RM_ReplyWithArray + RM_ReplyWithLongLong; closing the key RM_CloseKey; the rest of the
# module's dispatch is its own work (arguments, clock, decision, counters) and the API glue
# around it; what call() spends outside the command (stats, latency) last. For INCR the same
# parts are lookupKeyWrite, dbAdd, createStringObjectFromLongLongForValue, none, alsoPropagate
# + propagatePendingCommands, signalModifiedKey + notifyKeyspaceEvent, addReplyLongLong.
BREAKDOWN_PARTS = ["find the key (a miss)", "create the key", "the value",
                   "set the expiry", "replication (server)", "replication (module: encoding)",
                   "write signal + keyspace event", "reply", "close the key",
                   "the command's own work", "call() outside the command", "total",
                   "of the command's own work: the module's code"]


def function_counts(dump: str, inclusive: bool) -> list[tuple[str, str, int]]:
    """(function, object, instructions) per function in one callgrind dump, inclusive or self."""
    out = subprocess.run(["callgrind_annotate", f"--inclusive={'yes' if inclusive else 'no'}",
                          "--threshold=100", dump], capture_output=True, text=True,
                         check=True).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split(None, 2)
        # "1,234 (12.34%)  file:function [object]": a function's own line carries its object.
        if len(parts) < 3 or not parts[0].replace(",", "").isdigit() or "[" not in parts[2]:
            continue
        where, obj = parts[2].rsplit(" [", 1)
        rows.append((where.split(":", 1)[-1].strip(), obj.rstrip("]"),
                     int(parts[0].replace(",", ""))))
    return rows


def inclusive_counts(dump: str, module: str) -> dict[str, int]:
    """Inclusive instructions per function in one callgrind dump, and under "module self" the
    instructions executed in `module`'s own code."""
    counts: dict[str, int] = {}
    for name, _, n in function_counts(dump, True):
        counts[name] = max(counts.get(name, 0), n)
    counts["module self"] = sum(n for _, obj, n in function_counts(dump, False)
                                if os.path.realpath(obj) == os.path.realpath(module))
    return counts


def parts_of(c: dict[str, int]) -> dict[str, int]:
    """A command's instructions split into BREAKDOWN_PARTS (see the comment above)."""
    def get(*names: str) -> int:
        return sum(c.get(n, 0) for n in names)

    def suffix(end: str) -> int:
        return max((v for k, v in c.items() if k.endswith(end)), default=0)

    total = get("call")
    p: dict[str, int] = {}
    if "RedisModuleCommandDispatcher" in c:
        command = get("RedisModuleCommandDispatcher")
        repl = get("RM_Replicate")
        encode = max(max(suffix("::replicate_write"), suffix("::replicate_state")) - repl, 0)
        p["find the key (a miss)"] = get("RM_OpenKey")
        p["create the key"] = get("RM_ModuleTypeSetValue") - get("createModuleObject",
                                                                   "removeExpire")
        p["the value"] = get("createModuleObject") + suffix("::into_value")
        p["set the expiry"] = get("RM_SetAbsExpire", "removeExpire")
        p["replication (server)"] = repl + get("propagatePendingCommands")
        p["replication (module: encoding)"] = encode
        p["write signal + keyspace event"] = get("RM_SignalModifiedKey", "RM_NotifyKeyspaceEvent")
        p["reply"] = get("RM_ReplyWithArray", "RM_ReplyWithLongLong")
        p["close the key"] = get("RM_CloseKey")
        inside = (sum(p.values()) - get("propagatePendingCommands"))
        # The module's code besides encoding and making the value (which may allocate).
        own = get("module self") - encode - (suffix("::into_value") - get("RM_Alloc"))
    else:
        command = get("incrCommand")
        p["find the key (a miss)"] = get("lookupKeyWrite")
        p["create the key"] = get("dbAdd")
        p["the value"] = get("createStringObjectFromLongLongForValue")
        p["set the expiry"] = 0
        p["replication (server)"] = get("alsoPropagate", "propagatePendingCommands")
        p["replication (module: encoding)"] = 0
        p["write signal + keyspace event"] = get("signalModifiedKey", "notifyKeyspaceEvent")
        p["reply"] = get("addReplyLongLong")
        p["close the key"] = 0
        inside = sum(p.values()) - p["replication (server)"]
        own = 0
    p["the command's own work"] = command - inside
    p["call() outside the command"] = total - sum(p.values())
    p["total"] = total
    p["of the command's own work: the module's code"] = own
    return p


def breakdown(root: str, modules: dict[str, str]) -> dict[str, dict[str, dict[str, int]]]:
    """BREAKDOWN_PARTS of each BREAKDOWN_ROWS command on a fresh key with each of `modules`
    (tag → path): the median of each part over BREAKDOWN_N samples on each of BREAKDOWN_STARTS
    servers per module, started in turn. A fresh key's cost moves with the hash tables: with the
    keyspace's layout, and with the hash seed a server draws at start (the lookups of the key
    and of the replicated command's name); the medians of the parts need not add up to the
    median total."""
    samples: dict[str, dict[str, list[dict[str, int]]]] = {}
    for start in range(BREAKDOWN_STARTS):
        for tag, module in modules.items():
            for name, got in breakdown_samples(root, module, f"{tag}-{start}").items():
                samples.setdefault(tag, {}).setdefault(name, []).extend(got)
    result: dict[str, dict[str, dict[str, int]]] = {}
    for tag, rows in samples.items():
        for name, got in rows.items():
            result.setdefault(tag, {})[name] = {
                part: int(med([p[part] for p in got])) for part in BREAKDOWN_PARTS}
            log(f"  {tag}: {name} {result[tag][name]['total']:,} instructions")
    return result


def breakdown_samples(root: str, module: str, tag: str) -> dict[str, list[dict[str, int]]]:
    """BREAKDOWN_N samples of each BREAKDOWN_ROWS command on one server with `module`."""
    quiet = ["--hz", "1", "--activerehashing", "no"]
    s = Server(f"breakdown-{tag}", SERVER, [module], extra=quiet, callgrind=True,
               callgrind_args=["--toggle-collect=call"]).start(root)
    s.r.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", 0)
    # 3,000 keys with a TTL, their tables rehashed: the keyspace and the expires table then have
    # 4,096 buckets, and the samples neither grow them nor pay a rehash step.
    pipe(s, keyed_payload(["SET {k} 1 EX 3600"], "{k}", "bdfill:%08d", 3000))
    s.r.config_set("activerehashing", "yes")
    time.sleep(3)
    s.r.config_set("activerehashing", "no")
    pid = str(s.pid())
    result: dict[str, list[dict[str, int]]] = {}
    for name, template in BREAKDOWN_ROWS:
        s.r.execute_command(*template.replace("{i}", "warm").split())  # first-time work
        samples = []
        for i in range(BREAKDOWN_N):
            subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
            before = set(os.listdir(s.dir))
            s.r.execute_command(*template.replace("{i}", f"{tag}:{i}").split())
            subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
            for _ in range(100):
                dumps = [f for f in set(os.listdir(s.dir)) - before if f.startswith("callgrind.")]
                if dumps:
                    break
                time.sleep(0.1)
            else:
                sys.exit(f"{s.name}: no callgrind dump")
            samples.append(parts_of(inclusive_counts(os.path.join(s.dir, dumps[0]), module)))
        result[name] = samples
    s.stop()
    STARTED.remove(s)
    return result


def print_breakdown(b: dict[str, Any], out: Any) -> None:
    new = b["new"]
    old = b.get("baseline")
    rows = [name for name, _ in BREAKDOWN_ROWS]
    print(file=out)
    print(f"Fresh keys, where the instructions go: one command on a key never seen, the server "
          f"under callgrind counting inside its call() only (the command, its propagation, the "
          f"server's bookkeeping; no replica, no AOF; 3,000 keys in the keyspace), the median "
          f"of each part over {BREAKDOWN_N} samples on each of {BREAKDOWN_STARTS} servers per "
          f"module (they need not add up to the median total)"
          + (f"; `baseline → this build` (RL_BASELINE_SO={BASELINE})" if old else "")
          + ". The parts are defined in scripts/bench.py (BREAKDOWN_PARTS).", file=out)
    print(file=out)
    print("| part | " + " | ".join(f"`{r}`" for r in rows) + " |", file=out)
    print("|---|" + "---:|" * len(rows), file=out)
    for part in BREAKDOWN_PARTS:
        cells = []
        for r in rows:
            v = new[r][part]
            if old and r != "INCR" and r in old:
                cells.append(f"{old[r][part]:,} → {v:,}")
            else:
                cells.append(f"{v:,}")
        line = " | ".join(cells)
        label = {"total": "**total**"}.get(part, part)
        if part.startswith("of "):
            label = f"({part})"
        print(f"| {label} | {line} |", file=out)


# --- memory --------------------------------------------------------------------------------------


def memory(root: str, binary: str, index: int, module: str = "",
           only: list[str] | None = None) -> dict[str, Any]:
    """Bytes per key of every MEMORY_ROWS row (or those in `only`) on `binary` with this module
    (or `module`)."""
    label = version_of(binary)
    mods = [module or OURS]
    server = Server(f"memory-{index}", binary, mods).start(root)
    cell_loaded = False
    if CELL and not module:
        try:
            server.r.execute_command("MODULE", "LOAD", CELL)
            cell_loaded = True
        except redis.ResponseError as e:
            log(f"  {label}: redis-cell does not load ({e}): its memory row is skipped")
    server.r.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", 0)  # keys of 10 1s outlive the fill
    # A throw-away fill first: the first one also pays for allocations that stay (e.g. the
    # clients' buffers), which would count against whichever row came first.
    pipe(server, keyed_payload(["SET {k} 1"], "{k}", "warm:%08d", MEM_KEYS))
    rows = []
    for row, commands, needs_cell in MEMORY_ROWS:
        if (needs_cell and not cell_loaded) or (only is not None and row not in only):
            continue
        server.r.flushall(asynchronous=False)
        cmds = [c.split() for c in commands.split(";")]
        payload = keyed_payload(commands.split(";"), "{k}", "rl:user:%08d", MEM_KEYS)
        before = server.settled_memory()
        pipe(server, payload)
        after = server.settled_memory()
        dbsize = server.r.dbsize()
        # MEMORY USAGE of a key written just now (a 10 1s key written during the fill may have
        # expired already: reading it would delete it).
        p = server.r.pipeline(transaction=False)
        for c in cmds:
            p.execute_command(*[a.replace("{k}", "rl:user:probe000") for a in c])
        p.execute_command("MEMORY", "USAGE", "rl:user:probe000")
        usage = p.execute()[-1]
        rows.append({"row": row, "bytes_per_key": (after - before) / MEM_KEYS,
                     "memory_usage": usage, "keys": dbsize})
        if dbsize != MEM_KEYS:
            log(f"  {label} {row}: {dbsize} keys after writing {MEM_KEYS}")
    server.stop()
    return {"server": label, "rows": rows}


# --- big moving-window logs and the worst single call --------------------------------------------

WINDOW_US = 3_600_000_000


def varint(v: int) -> bytes:
    out = bytearray()
    while True:
        low, v = v & 0x7F, v >> 7
        out.append(low | (0x80 if v else 0))
        if not v:
            return bytes(out)


def hit_payload(limit: int, window_us: int, t_us: int, cost: int) -> bytes:
    """An RL.APPLY hit as the module replicates one (src/datatype/codec.rs `encode_hit`: payload
    version 2, oldest reader 2, algorithm tag 4 = moving-window, then varints). Update this if
    that format changes; the bench checks the first one and says so if it is refused."""
    return bytes([2, 2, 4]) + b"".join(varint(v) for v in (limit, window_us, t_us, cost))


def server_time_us(server: Server) -> int:
    sec, usec = server.r.time()
    return int(sec) * 1_000_000 + int(usec)


def apply_hits(server: Server, key: str, limit: int, times: list[int]) -> float:
    t0 = time.monotonic()
    pipe(server, b"".join(
        resp([b"RL.APPLY", key.encode(), hit_payload(limit, WINDOW_US, t, 1)]) for t in times))
    return time.monotonic() - t0


def inspect(server: Server, key: str, fieldname: str) -> int:
    reply = server.r.execute_command("RL.INSPECT", key)
    fields = dict(zip(reply[::2], reply[1::2], strict=True))
    return int(fields[fieldname.encode()])


# The calls that can happen only once per state (see `logs`): (label, (state, command, args after
# the key, expected admission)).
ONCE_RUNS = 100_000
ONCE_ROUNDS = int(ENV.get("ONCE_ROUNDS", "6"))
ONCE_PER_STATE: dict[str, tuple[str, str, list[Any], int]] = {
    "`RL.PEEK` once all but the newest run left the window":
        ("expired", "RL.PEEK", [1000000, "1h", "ALGO", "moving-window"], 1),
    "`RL.ALLOW` commit once all but the newest run left the window (drops them)":
        ("expired", "RL.ALLOW", [1000000, "1h", "ALGO", "moving-window"], 1),
    "`RL.ALLOW` denied on a log ahead of the clock (stores the clamp)":
        ("ahead", "RL.ALLOW", [1000000, "1h", "ALGO", "moving-window", "COST", 999999], 0),
}


def once_state(s: Server, state: str, keys: dict[int, str], lead_s: float) -> int:
    """Builds, for each `n: key`, a moving-window log of n runs in `state` ("expired": n - 1
    hits 1 µs apart that leave the window together, then one at now; "ahead": n hits a minute
    ahead of the server's clock); returns the server time after which the state holds (the
    same for every key, `lead_s` after now)."""
    now = server_time_us(s)
    start = now - WINDOW_US + int(lead_s * 1e6)
    for n, key in keys.items():
        times = ([now + 60_000_000 + i for i in range(n)] if state == "ahead"
                 else [start + i for i in range(n - 1)] + [now])
        apply_hits(s, key, 1_000_000, times)
    return start + max(keys) + WINDOW_US + 100_000


def cold_lines(root: str, cmd: tuple[str, str, list[Any], int], n: int) -> tuple[int, int]:
    """Cache lines one once-per-state call on an n-run log brings from memory, from empty
    caches: the server under callgrind with its cache simulation, which runs only while
    instrumentation is on, switched on right before the call (so the simulated caches hold only
    what reading the request touched) and off after it; code lines and data lines (LL misses,
    read and write) of the command's dispatch."""
    s = Server(f"cold-{cmd[0]}-{cmd[1].lower()}-{n}", SERVER, [MODULE], callgrind=True,
               callgrind_args=["--instr-atstart=no", "--cache-sim=yes",
                               "--toggle-collect=*RedisModuleCommandDispatcher*"]).start(root)
    lead_s = 2.0 + 3 * apply_hits(s, "timing", 1_000_000,
                                  [server_time_us(s) + i for i in range(n)])
    s.r.delete("timing")
    ready = once_state(s, cmd[0], {n: "k"}, lead_s)
    while server_time_us(s) < ready:
        time.sleep(0.05)
    ctl = ["callgrind_control", str(s.pid())]
    subprocess.run([ctl[0], "-i", "on", ctl[1]], check=True, capture_output=True)
    reply = s.r.execute_command(cmd[1], "k", *cmd[2])
    subprocess.run([ctl[0], "-i", "off", ctl[1]], check=True, capture_output=True)
    if reply[0] != cmd[3]:
        log(f"  unexpected reply to {cmd[1]} under callgrind: {reply}")
    before = set(os.listdir(s.dir))
    subprocess.run([ctl[0], "-d", ctl[1]], check=True, capture_output=True)
    for _ in range(100):
        dumps = [f for f in set(os.listdir(s.dir)) - before if f.startswith("callgrind.")]
        if dumps:
            events: list[str] = []
            with open(os.path.join(s.dir, dumps[0])) as f:
                for line in f:
                    if line.startswith("events:"):
                        events = line.split()[1:]
                    # "totals:" (this dump's "summary:" reads 0 with instrumentation off at
                    # the dump): instrumentation was on for the call alone.
                    if line.startswith("totals:"):
                        counts = [*map(int, line.split()[1:])]  # trailing zeros are left out
                        v = dict(zip(events, counts + [0] * (len(events) - len(counts)),
                                     strict=True))
                        s.stop()
                        return v["ILmr"], v["DLmr"] + v["DLmw"]
        time.sleep(0.1)
    sys.exit(f"{s.name}: no callgrind dump")


def logs(root: str, result: dict[str, Any]) -> list[dict[str, Any]]:
    s = Server("logs", SERVER, [MODULE]).start(root)
    rows: list[dict[str, Any]] = []

    def add(what: str, runs: Any, value: str, note: str = "") -> None:
        rows.append({"what": what, "runs": runs, "value": value, "note": note})

    for n in (1_000, 100_000):
        key = f"log{n}"
        pipe(s, resp(["RL.ALLOW", key, "1000000", "1h", "ALGO", "moving-window"]) * n)
        runs = inspect(s, key, "runs")
        mem = int(s.r.memory_usage(key))
        add(f"{n:,} single hits by `RL.ALLOW … 1000000 1h ALGO moving-window`, pipelined", runs,
            f"MEMORY USAGE {mem:,} B", f"{mem / runs:.2f} B per run")

    try:
        s.r.execute_command("RL.APPLY", "probe", hit_payload(10, WINDOW_US, server_time_us(s), 1))
    except redis.ResponseError as e:
        log(f"  RL.APPLY refuses the bench's hit payload ({e}): update hit_payload() in "
            "scripts/bench.py; the APPLY-built rows are skipped")
        s.stop()
        return rows

    now = server_time_us(s)
    for n in (1_000, 100_000):
        key = f"spread{n}"
        gap = WINDOW_US // n
        apply_hits(s, key, 1_000_000, [now - WINDOW_US + (i + 1) * gap for i in range(n)])
        runs = inspect(s, key, "runs")
        mem = int(s.r.memory_usage(key))
        add(f"{n:,} single hits {gap / 1000:.0f} ms apart over 1h (`RL.APPLY`, as a replica "
            "builds it)", runs, f"MEMORY USAGE {mem:,} B", f"{mem / runs:.2f} B per run")

    _, us = s.usec("RL.ALLOW", "big", "1000000", "1h", "ALGO", "moving-window",
                       "COST", "1000000")
    add("one `RL.ALLOW … moving-window COST 1000000`", inspect(s, "big", "runs"),
        f"{us:,.0f} µs", f"MEMORY USAGE {int(s.r.memory_usage('big')):,} B")
    sha = lua_sha(s, "acquire_moving_window.lua")
    _, us = s.usec("EVALSHA", sha, 1, "biglist", int(time.time()), 1000000, 3600, 999999)
    add("limits' moving window (Lua), one hit of amount 999,999", "—", f"{us:,.0f} µs",
        f"MEMORY USAGE {int(s.r.memory_usage('biglist')):,} B")

    # The worst single call on a 100,000-run log (server time from INFO commandstats).
    key = "spread100000"
    runs = inspect(s, key, "runs")

    def worst(what: str, cmd: list[Any], repeat: int = 3, expect: Callable[[Any], bool] | None
              = None) -> None:
        times = []
        for _ in range(repeat):
            reply, us = s.usec(*cmd)
            if expect and not expect(reply):
                log(f"  unexpected reply to {' '.join(map(str, cmd))}: {reply}")
            times.append(us)
        # The least of a few: a busy machine only ever adds to a call's time.
        note = f"least of {repeat}: {', '.join(f'{t:,.0f}' for t in times)}" if repeat > 1 else ""
        add(f"worst call: {what}", runs_now, f"{min(times):,.0f} µs", note)
        result.setdefault("worst_call_us", {})[what] = min(times)

    runs_now = runs
    worst("`RL.ALLOW` denied, `COST 990000`: 90,000 of the 100,000 runs must leave",
          ["RL.ALLOW", key, 1000000, "1h", "ALGO", "moving-window", "COST", 990000],
          expect=lambda r: r[0] == 0)
    worst("`RL.PEEK`, the same", ["RL.PEEK", key, 1000000, "1h", "ALGO", "moving-window",
                                  "COST", 990000], expect=lambda r: r[0] == 0)
    worst("`RL.PEEK` with a 30m window (the log's is 1h)",
          ["RL.PEEK", key, 1000000, "30m", "ALGO", "moving-window"])
    worst("`RL.ALLOW … COST 0` with a 30m window",
          ["RL.ALLOW", key, 1000000, "30m", "ALGO", "moving-window", "COST", 0])

    # The calls that happen once per state, each as the first call after the server sat idle:
    # a peek and a commit once a burst of 100,000 hits has left the window (the commit drops it),
    # and a denial that stores the clamp of a log ahead of the clock (a replica of a hot key, a
    # clock step back). On this kind of machine the first call of a command after an idle spell
    # is slow on any key: its code comes back from memory (about 450 cache lines over ~70 pages
    # of the server's and the module's code, see `cold_lines`). So each is timed against a
    # control in the same state built the same way, a 2-run key, in the same round: one of the
    # two goes first after the wait (alternating by round), the other right after it.
    lead_s = 2.0 + 3 * apply_hits(s, "timing", 1_000_000,
                                  [server_time_us(s) + i for i in range(100_000)])
    s.r.delete("timing")
    for what, cmd in ONCE_PER_STATE.items():
        first: dict[int, list[float]] = {ONCE_RUNS: [], 2: []}
        second: dict[int, list[float]] = {ONCE_RUNS: [], 2: []}
        for rnd in range(ONCE_ROUNDS):
            keys = {n: f"once-{cmd[0]}-{n}-{rnd}" for n in (ONCE_RUNS, 2)}
            ready = once_state(s, cmd[0], keys, lead_s)
            runs_now = inspect(s, keys[ONCE_RUNS], "runs")  # reading changes nothing yet
            while server_time_us(s) < ready:
                time.sleep(0.05)
            order = (ONCE_RUNS, 2) if rnd % 2 == 0 else (2, ONCE_RUNS)
            for pos, n in enumerate(order):
                reply, us = s.usec(cmd[1], keys[n], *cmd[2])
                if reply[0] != cmd[3]:
                    log(f"  unexpected reply to {cmd[1]} {keys[n]}: {reply}")
                (first if pos == 0 else second)[n].append(us)

        def text(xs: list[float]) -> str:
            return ", ".join(f"{x:,.0f}" for x in xs)
        big, small = med(first[ONCE_RUNS]), med(first[2])
        add(f"worst call: {what}, first call after an idle wait", runs_now,
            f"{big:,.0f} µs ({big / small:.2f}× the 2-run key)",
            f"median of {len(first[ONCE_RUNS])}: {text(first[ONCE_RUNS])}; the same call on a "
            f"2-run key in the same state, first after the wait: {text(first[2])} (median "
            f"{small:,.0f}); each as the second call after the wait: {text(second[ONCE_RUNS])} "
            f"against {text(second[2])} µs")
        result.setdefault("worst_call_us", {})[what] = big
        result.setdefault("once_per_state_us", {})[what] = {
            "first": first[ONCE_RUNS], "control_first": first[2],
            "second": second[ONCE_RUNS], "control_second": second[2]}
    s.stop()
    for what, cmd in ONCE_PER_STATE.items():
        lines = {n: cold_lines(root, cmd, n) for n in (ONCE_RUNS, 2)}
        (ic, dc), (ic2, dc2) = lines[ONCE_RUNS], lines[2]
        add(f"cold cache lines: {what}", f"{ONCE_RUNS:,} vs 2",
            f"{ic - ic2:+d} code, {dc - dc2:+d} data",
            f"{ic:,} code and {dc:,} data lines on the {ONCE_RUNS:,}-run log, {ic2:,} and "
            f"{dc2:,} on the 2-run key (callgrind's cache simulation from empty caches, the "
            "call alone)")
        result.setdefault("cold_lines", {})[what] = {"log": [ic, dc], "control": [ic2, dc2]}
    s = Server("logs-leases", SERVER, [MODULE]).start(root)

    # Leases: one key at the bound, 10,000 leases with 12-byte text ids.
    ids = [f"worker-{i:05d}" for i in range(10_000)]
    pipe(s, b"".join(resp(["RL.ACQUIRE", "leases", "10000", "1h", "ID", i]) for i in ids))
    runs_now = "10,000 leases"
    worst("`RL.ACQUIRE` renewing the lease found last (a scan of all 10,000)",
          ["RL.ACQUIRE", "leases", 10000, "1h", "ID", ids[-1]], expect=lambda r: r[0] == 1)
    worst("`RL.ACQUIRE` denied, an id the key does not hold (a scan of all 10,000)",
          ["RL.ACQUIRE", "leases", 10000, "1h", "ID", "nobody"], expect=lambda r: r[0] == 0)
    worst("`RL.ACQUIRE` renewing the earliest-ending (it moves from first to last)",
          ["RL.ACQUIRE", "leases", 10000, "1h", "ID", ids[0]], expect=lambda r: r[0] == 1)
    # A release in the middle of the order, then a new lease that ends before all the others
    # (inserted first): each a scan for the id and one chunk shifted.
    worst("`RL.RELEASE` of a lease in the middle", ["RL.RELEASE", "leases", ids[5_000]],
          repeat=1, expect=lambda r: r == 1)
    worst("`RL.ACQUIRE` a new lease ending before all the others (inserted first)",
          ["RL.ACQUIRE", "leases", 10000, "30m", "ID", ids[5_000]], repeat=1,
          expect=lambda r: r[0] == 1)
    # 9,999 leases of 1 s and one of 1 h: once the short ones ended, each write drops 64 of them.
    pipe(s, resp(["RL.ACQUIRE", "ended", "10000", "1h", "ID", "keeper"])
         + b"".join(resp(["RL.ACQUIRE", "ended", "10000", "1s", "ID", i]) for i in ids[1:]))
    while inspect(s, "ended", "in_flight") > 1:
        time.sleep(0.1)
    runs_now = "9,999 ended + 1"
    worst("`RL.ACQUIRE`, the first write once 9,999 leases ended (drops 64 of them)",
          ["RL.ACQUIRE", "ended", 10000, "1h", "ID", "x"], repeat=1, expect=lambda r: r[0] == 1)
    runs_now = "~9,935 ended + 2"
    worst("`RL.ACQUIRE`, the writes after it (each drops 64 more)",
          ["RL.ACQUIRE", "ended", 10000, "1h", "ID", "x"], expect=lambda r: r[0] == 1)
    s.stop()
    return rows


# --- report --------------------------------------------------------------------------------------


def main() -> None:
    t_start = time.monotonic()
    load_start = os.getloadavg()
    root = tempfile.mkdtemp(prefix="rl-bench-")
    result: dict[str, Any] = {}
    try:
        run_all(root, result, t_start, load_start)
    finally:
        for s in STARTED:
            s.stop()
        shutil.rmtree(root, ignore_errors=True)


def run_all(root: str, result: dict[str, Any], t_start: float,
            load_start: tuple[float, float, float]) -> None:
    samples: dict[tuple[str, str], dict[int, Sample]] = {}
    setups: dict[str, Setup] = {}
    commands: dict[Key, str] = {}
    unrelated: dict[str, list[tuple[Sample, Sample]]] = {}
    runs: list[Run] = []
    u = None
    if "throughput" in SECTIONS:
        log("throughput: starting servers")
        runs = throughput(root, result)
        for run in runs:
            setups[run.setup.label] = run.setup
            commands[(run.setup.label, run.row)] = run.shown
    instr: dict[Key, float] = {}
    instr_unrelated: dict[str, tuple[float, float]] = {}
    if "instructions" in SECTIONS:
        log("instructions per request: two servers under callgrind")
        instr, instr_cmds, instr_unrelated = instruction_counts(root)
        for key, shown in instr_cmds.items():
            commands.setdefault(key, shown)
    if "unrelated" in SECTIONS:
        log("unrelated traffic: starting a server with the module and one without")
        u = unrelated_servers(root)
    for rnd in range(ROUNDS if runs or u else 0):
        log(f"round {rnd + 1} of {ROUNDS}")
        for run in runs if rnd % 2 == 0 else runs[::-1]:
            v = measure(run)
            samples.setdefault((run.setup.label, run.row), {})[rnd] = v
        if u:
            unrelated_round(*u, rnd, unrelated)
    for s in list(STARTED):
        s.stop()
        STARTED.remove(s)

    memory_tables = []
    if "memory" in SECTIONS:
        for i, binary in enumerate(MEMORY_SERVERS):
            log(f"memory: {binary}")
            memory_tables.append(memory(root, binary, i))
    parts: dict[str, Any] = {}
    if "breakdown" in SECTIONS:
        log("fresh keys, where the instructions go: servers under callgrind")
        parts = breakdown(root, {"new": MODULE, **({"baseline": BASELINE} if BASELINE else {})})
    before_after: dict[str, Any] = {}
    if "baseline" in SECTIONS:
        log(f"before/after: this build against {BASELINE}")
        before_after = baseline_compare(root)
    log_rows: list[dict[str, Any]] = []
    if "logs" in SECTIONS:
        log("big moving-window logs and the worst single call")
        log_rows = logs(root, result)

    elapsed = time.monotonic() - t_start
    load_end = os.getloadavg()
    with open("/proc/cpuinfo") as f:
        cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                   platform.machine())
    options = ("ROUNDS", "N", "N1", "KEYS", "PAIRS", "INSTR_N", "INSTR_KEYS", "MEM_KEYS",
               "MEMORY_SERVERS", "SECTIONS", "SERVER", "RL_CELL_SO", "RL_BASELINE_SO")
    knobs = " ".join(f"{k}={ENV[k]}" for k in options if k in ENV)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": f"{knobs + ' ' if knobs else ''}scripts/bench",
        "server": version_of(SERVER),
        "cpu": cpu, "cores": os.cpu_count(), "pinned": TWO_CORES,
        "rounds": ROUNDS, "n": N, "n1": N1, "keys": KEYS, "clients": CLIENTS,
        "load_start": load_start, "load_end": load_end, "minutes": elapsed / 60,
        "redis_cell": bool(CELL),
    }
    result["meta"] = meta
    out = sys.stdout
    print(f"`{meta['command']}` on {meta['date']}: {meta['server']}, {cpu}, {meta['cores']} "
          f"cores{' (server on core 0, client on core 1)' if TWO_CORES else ''}; "
          f"load average {load_start[0]:.2f} at the start, {load_end[0]:.2f} at the end; "
          f"took {elapsed / 60:.1f} min.", file=out)

    if samples or unrelated or instr or instr_unrelated:
        print(file=out)
        print(f"Throughput: `redis-benchmark -c {CLIENTS}`, -n {N:,} at -P 16 and {N1:,} at -P 1, "
              f"{ROUNDS} rounds; random keys among {KEYS:,} written before the rounds "
              "(existing) or never seen (fresh: FLUSHDB before each run). Each ratio is to "
              "`incr` (`incr_hot` for one key) of the same setup in the same round: median, "
              "then the range over rounds in brackets. ops/s moves with whatever else the "
              "machine runs; the server's CPU time per request (its main thread, INFO cpu) "
              "less; instructions per request (the server under callgrind, -P 16, "
              f"{INSTR_N:,} requests after a warm-up, {INSTR_KEYS:,} existing keys) not at all.",
              file=out)
        print(file=out)
        print("| setup | row | command | ops/s | ops/s ÷ baseline | server CPU µs/request | "
              "CPU ÷ baseline | instructions/request | ÷ baseline |", file=out)
        print("|---|---|---|---:|---:|---:|---:|---:|---:|", file=out)
        table = []
        labels = list(dict.fromkeys([lab for lab, _ in samples] + [lab for lab, _ in instr]))
        for label in labels:
            baseline = "incr_hot" if label.startswith("one key") else "incr"
            base = samples.get((label, baseline), {})
            rows = list(dict.fromkeys([r for lab, r in samples if lab == label]
                                      + [r for lab, r in instr if lab == label]))
            for row in rows:
                key = (label, row)
                entry: dict[str, Any] = {"setup": label, "row": row, "command": commands[key],
                                         "to": baseline}
                if key in samples:
                    entry.update(summarize(samples[key], base, digits=2))
                if key in instr:
                    entry["instructions"] = instr[key]
                    if (label, baseline) in instr:
                        entry["instructions_ratio"] = instr[key] / instr[(label, baseline)]
                table.append(entry)
                print(f"| {label} | `{row}` | `{entry['command']}` | "
                      + (f"{entry['ops']:,.0f} | {entry['ops_ratio_text']} | "
                         f"{entry['cpu_us']:.2f} | {entry['cpu_ratio_text']} | "
                         if key in samples else "— | — | — | — | ")
                      + (f"{entry['instructions']:,.0f} | " if "instructions" in entry else "— | ")
                      + (f"{entry['instructions_ratio']:.2f} |" if "instructions_ratio" in entry
                         else "— |"), file=out)
            for what, a, b in COMPARE:
                ka, kb = (label, a), (label, b)
                entry = {"setup": label, "row": f"{a}/{b}", "command": what, "to": b}
                if ka in samples and kb in samples:
                    entry.update(summarize(samples[ka], samples[kb], digits=2))
                if ka in instr and kb in instr:
                    entry["instructions_ratio"] = instr[ka] / instr[kb]
                if len(entry) == 4:
                    continue
                table.append(entry)
                print(f"| {label} | `{a}` ÷ `{b}` | {what} | — | "
                      f"{entry.get('ops_ratio_text', '—')} | — | "
                      f"{entry.get('cpu_ratio_text', '—')} | — | "
                      + (f"{entry['instructions_ratio']:.2f} |" if "instructions_ratio" in entry
                         else "— |"), file=out)
        result["throughput"] = table
        ur = []
        for name, template in UNRELATED:
            cmd = expand(template, {}).replace("__rand_int__", "…")
            entry = {"row": name, "command": cmd}
            pairs = unrelated.get(name, [])
            if pairs:
                mod = dict(enumerate(m for m, _ in pairs))
                plain = dict(enumerate(p for _, p in pairs))
                entry.update(summarize(mod, plain, digits=3))
                entry.update({"pairs": len(pairs),
                              "ops_plain": med([p[0] for p in plain.values()]),
                              "cpu_us_plain": med([p[1] for p in plain.values()])})
            if name in instr_unrelated:
                with_module, without = instr_unrelated[name]
                entry.update({"instructions": with_module, "instructions_plain": without,
                              "instructions_ratio": with_module / without})
            if len(entry) == 2:
                continue
            ur.append(entry)
            measured = (f"{entry['ops']:,.0f} (without: {entry['ops_plain']:,.0f}) | "
                        f"{entry['ops_ratio_text']} | {entry['cpu_us']:.3f} (without: "
                        f"{entry['cpu_us_plain']:.3f}) | {entry['cpu_ratio_text']} | "
                        if pairs else "— | — | — | — | ")
            counted = (f"{entry['instructions']:,.0f} (without: {entry['instructions_plain']:,.0f})"
                       f" | {entry['instructions_ratio']:.3f} |"
                       if "instructions" in entry else "— | — |")
            setup = "with the module ÷ without, -P 16" + (
                f", {len(pairs)} adjacent pairs" if pairs else "")
            print(f"| {setup} | {name} | `{cmd}` | {measured}{counted}", file=out)
        result["unrelated"] = ur
    if memory_tables:
        result["memory"] = memory_tables
        print(file=out)
        print(f"Memory: real bytes per key = `used_memory` delta over {MEM_KEYS:,} keys named "
              "`rl:user:NNNNNNNN` (16 bytes), TTL included, active expiry paused while "
              "measuring; `MEMORY USAGE` of one such key.", file=out)
        print(file=out)
        head = " | ".join(f"{t['server']} B/key | {t['server']} `MEMORY USAGE`"
                          for t in memory_tables)
        print(f"| key | {head} |", file=out)
        print("|---|" + "---:|---:|" * len(memory_tables), file=out)
        labels = [r for r, _, _ in MEMORY_ROWS]
        for label in labels:
            cells = []
            found = False
            for t in memory_tables:
                m = next((x for x in t["rows"] if x["row"] == label), None)
                if m:
                    found = True
                    cells.append(f"{m['bytes_per_key']:.0f} | {m['memory_usage']}")
                else:
                    cells.append("— | —")
            if found:
                print(f"| {label} | {' | '.join(cells)} |", file=out)
    if parts:
        result["breakdown"] = parts
        print_breakdown(parts, out)
    if before_after:
        result["baseline"] = before_after
        print_baseline(before_after, out)
    if log_rows:
        result["logs"] = log_rows
        print(file=out)
        print("Big moving-window logs (window 1h, limit 1,000,000) and the worst single call on a "
              "100,000-run log: server time of one call from `INFO commandstats`.", file=out)
        print(file=out)
        print("| log or call | runs | measured | note |", file=out)
        print("|---|---:|---:|---|", file=out)
        for r in log_rows:
            n_runs = f"{r['runs']:,}" if isinstance(r["runs"], int) else r["runs"]
            print(f"| {r['what']} | {n_runs} | {r['value']} | {r['note']} |", file=out)

    os.makedirs(os.path.dirname(JSON_OUT) or ".", exist_ok=True)
    with open(JSON_OUT, "w") as f:
        json.dump(result, f, indent=1)
    log(f"wrote {JSON_OUT} ({elapsed / 60:.1f} min)")


if __name__ == "__main__":
    main()
