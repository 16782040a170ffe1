"""rl+sentinel:// against a real master + replica + sentinel, across SENTINEL FAILOVER.

Also between a server without the module and one with it: the storage follows each failover
(Lua, then the module, then Lua again) without a restart.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import pytest
from harness import Limiter
from limits import parse
from servers import Server, start_server, wait_for, wait_replicated

from redis_ratelimit.limits_storage import ModuleNotLoadedWarning

STRATEGIES = ["fixed-window", "moving-window", "sliding-window-counter"]


@dataclass
class Group:
    master: Server
    replica: Server
    sentinel: Server

    @property
    def uri(self) -> str:
        return f"rl+sentinel://{self.sentinel.url}/mymaster"

    def master_port(self) -> int:
        sentinel: Any = self.sentinel.client()
        _host, port = sentinel.sentinel_get_master_addr_by_name("mymaster")
        return int(port)


def role(server: Server) -> str:
    return str(server.client().info("replication")["role"])


def start_group(flavor: str, master_module: bool, replica_module: bool) -> Iterator[Group]:
    started: list[Server] = []
    try:
        # No 5 s wait for more replicas before a full sync (either server may be the master).
        quick = ["--repl-diskless-sync-delay", "0"]
        master = start_server(flavor, with_module=master_module, extra=quick)
        started.append(master)
        replica = start_server(
            flavor,
            with_module=replica_module,
            extra=[*quick, "--replicaof", "127.0.0.1", str(master.port)],
        )
        started.append(replica)
        wait_for(
            lambda: replica.client().info("replication")["master_link_status"] == "up",
            30,
            "replica link",
        )
        sentinel = start_server(
            flavor,
            sentinel_conf=(
                f"sentinel monitor mymaster 127.0.0.1 {master.port} 1\n"
                "sentinel down-after-milliseconds mymaster 2000\n"
                "sentinel failover-timeout mymaster 20000\n"
            ),
        )
        started.append(sentinel)
        wait_for(
            lambda: len(sentinel.client().sentinel_slaves("mymaster")) == 1,
            30,
            "the sentinel to find the replica",
        )
        yield Group(master, replica, sentinel)
    finally:
        for server in reversed(started):
            server.stop()


@pytest.fixture
def group(flavor: str) -> Iterator[Group]:
    """Master and replica with the module."""
    yield from start_group(flavor, True, True)


@pytest.fixture
def mixed_group(flavor: str) -> Iterator[Group]:
    """A master without the module, its replica with it."""
    yield from start_group(flavor, False, True)


def failover(group: Group, to: Server, old: Server) -> None:
    # NOGOODSLAVE until the sentinel has fresh INFO from the replica: retry until accepted.
    wait_for(
        lambda: bool(
            cast(Any, group.sentinel.client()).execute_command("SENTINEL", "FAILOVER", "mymaster")
        ),
        60,
        "SENTINEL FAILOVER to be accepted",
    )
    wait_for(lambda: group.master_port() == to.port, 60, "the failover")
    wait_for(lambda: role(to) == "master", 60, "the replica to be master")
    wait_for(lambda: role(old) == "slave", 60, "the old master to follow")
    wait_for(
        lambda: old.client().info("replication")["master_link_status"] == "up",
        60,
        "the old master's replication link",
    )


def calls(server: Server, command: str) -> int:
    stats = server.client().info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {"calls": 0})["calls"])


def test_limits_survive_failover(group: Group, prefix: str) -> None:
    item = parse("5/minute")
    limiters = {s: Limiter(group.uri, s, None, key_prefix=prefix) for s in STRATEGIES}
    for strategy, lim in limiters.items():
        assert [lim.hit(item, strategy) for _ in range(3)] == [True] * 3
    assert limiters["fixed-window"].storage.module_support().loaded
    assert group.master.client().info("commandstats")["cmdstat_rl.allow"]["calls"] >= 3
    wait_replicated(group.master, group.replica)  # the replica has every hit
    for strategy, lim in limiters.items():
        assert lim.stats(item, strategy).remaining == 2  # read from the replica

    failover(group, group.replica, group.master)

    for strategy, lim in limiters.items():
        assert [lim.hit(item, strategy) for _ in range(3)] == [True, True, False], strategy
    assert group.replica.client().info("commandstats")["cmdstat_rl.allow"]["calls"] >= 3
    wait_replicated(group.replica, group.master)
    for strategy, lim in limiters.items():
        assert lim.stats(item, strategy).remaining == 0, strategy


def test_async_sentinel(group: Group, prefix: str) -> None:
    """async+rl+sentinel:// on each of limits' asyncio clients."""
    for implementation in ("redispy", "coredis", "valkey"):
        loop = asyncio.new_event_loop()
        try:
            item = parse("2/minute")
            lim = Limiter(group.uri, "fixed-window", loop, implementation, key_prefix=prefix)
            before = calls(group.master, "rl.allow")
            assert [lim.hit(item, implementation) for _ in range(3)] == [True, True, False]
            assert calls(group.master, "rl.allow") - before == 4  # and the probe's COST 0
            wait_replicated(group.master, group.replica)  # stats are read from the replica
            assert lim.stats(item, implementation).remaining == 0
            lim.close()
        finally:
            loop.close()


def test_failover_between_servers_with_and_without_the_module(
    mixed_group: Group, prefix: str
) -> None:
    """Lua on the master without the module; the module after a failover to the replica that has
    it; Lua again after a failover back, with no restart of the storages."""
    group = mixed_group
    item = parse("5/minute")
    limiters = {
        s: Limiter(group.uri, s, None, key_prefix=prefix, probe_interval=0.2) for s in STRATEGIES
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("ignore")  # record this package's warning only
        warnings.simplefilter("always", ModuleNotLoadedWarning)
        for strategy, lim in limiters.items():
            assert [lim.hit(item, strategy, "old") for _ in range(3)] == [True] * 3
            assert not lim.storage.module_support().loaded
        assert [w.category for w in caught] == [ModuleNotLoadedWarning] * 3
        assert calls(group.master, "evalsha") >= 9
        wait_replicated(group.master, group.replica)

        failover(group, group.replica, group.master)
        time.sleep(0.3)  # the storages probe again after probe_interval
        before = calls(group.replica, "rl.allow")
        for strategy, lim in limiters.items():
            # limits' keys from before keep counting (its scripts serve them), new ones are the
            # module's.
            assert [lim.hit(item, strategy, "old") for _ in range(3)] == [True, True, False]
            assert [lim.hit(item, strategy, "new") for _ in range(6)] == [True] * 5 + [False]
            assert lim.storage.module_support().loaded
        wait_replicated(group.replica, group.master)  # stats are read from the replica
        for strategy, lim in limiters.items():
            assert lim.stats(item, strategy, "new").remaining == 0
        # Every strategy: 18 for "new"; 9 answered WRONGTYPE on limits' "old" keys, which its
        # scripts then served; 3 probes (COST 0), one per storage; the sliding window counter's
        # read of "new" stores limits' shift (COST 0).
        assert calls(group.replica, "rl.allow") - before == 31
        assert [w.category for w in caught] == [ModuleNotLoadedWarning] * 3

        # Back to the server without the module: the RL.* effects replicated to it were refused
        # (it cannot hold the module's keys), limits' keys are there.
        failover(group, group.master, group.replica)
        for strategy, lim in limiters.items():
            assert not lim.hit(item, strategy, "old")
            assert [lim.hit(item, strategy, "newer") for _ in range(6)] == [True] * 5 + [False]
            assert not lim.storage.module_support().loaded
        # Once more from each storage.
        assert [w.category for w in caught] == [ModuleNotLoadedWarning] * 6
        wait_replicated(group.master, group.replica)  # stats are read from the replica
        for strategy, lim in limiters.items():
            assert lim.stats(item, strategy, "newer").remaining == 0
