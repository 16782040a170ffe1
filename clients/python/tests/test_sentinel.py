"""rl+sentinel:// against a real master + replica + sentinel, across SENTINEL FAILOVER."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import pytest
from harness import Limiter
from limits import parse
from servers import Server, start_server, wait_for

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


@pytest.fixture
def group(flavor: str) -> Iterator[Group]:
    started: list[Server] = []
    try:
        master = start_server(flavor)
        started.append(master)
        replica = start_server(flavor, extra=["--replicaof", "127.0.0.1", str(master.port)])
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


def test_limits_survive_failover(group: Group, prefix: str) -> None:
    item = parse("5/minute")
    limiters = {s: Limiter(group.uri, s, None, key_prefix=prefix) for s in STRATEGIES}
    for strategy, lim in limiters.items():
        assert [lim.hit(item, strategy) for _ in range(3)] == [True] * 3
    assert limiters["fixed-window"].storage.module_support().loaded
    assert group.master.client().info("commandstats")["cmdstat_rl.allow"]["calls"] >= 3
    assert group.master.client().wait(1, 10_000) == 1  # the replica has every hit
    for strategy, lim in limiters.items():
        assert lim.stats(item, strategy).remaining == 2  # read from the replica

    # NOGOODSLAVE until the sentinel has fresh INFO from the replica: retry until accepted.
    wait_for(
        lambda: bool(
            cast(Any, group.sentinel.client()).execute_command("SENTINEL", "FAILOVER", "mymaster")
        ),
        60,
        "SENTINEL FAILOVER to be accepted",
    )
    wait_for(lambda: group.master_port() == group.replica.port, 60, "the failover")
    wait_for(lambda: role(group.replica) == "master", 60, "the replica to be master")
    wait_for(lambda: role(group.master) == "slave", 60, "the old master to follow")

    for strategy, lim in limiters.items():
        assert [lim.hit(item, strategy) for _ in range(3)] == [True, True, False], strategy
    assert group.replica.client().info("commandstats")["cmdstat_rl.allow"]["calls"] >= 3
    assert group.replica.client().wait(1, 10_000) == 1
    for strategy, lim in limiters.items():
        assert lim.stats(item, strategy).remaining == 0, strategy


def test_async_sentinel(group: Group, prefix: str) -> None:
    loop = asyncio.new_event_loop()
    try:
        item = parse("2/minute")
        lim = Limiter(group.uri, "fixed-window", loop, key_prefix=prefix)
        assert [lim.hit(item, "a") for _ in range(3)] == [True, True, False]
        assert lim.stats(item, "a").remaining == 0
        assert group.master.client().info("commandstats")["cmdstat_rl.allow"]["calls"] == 3
        lim.close()
    finally:
        loop.close()
