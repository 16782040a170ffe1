"""rl+cluster:// on a small real cluster (3 primaries, no replicas), sync and asyncio.

A light check of the storage: the cluster work proper (resharding, failover) is tested with the
module's own cluster suite.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, cast

import pytest
from harness import Limiter
from limits import parse
from servers import Server, start_server, wait_for

SLOTS = 16384


@pytest.fixture(scope="module")
def cluster(flavor: str) -> Iterator[list[Server]]:
    nodes: list[Server] = []
    try:
        for _ in range(3):
            nodes.append(start_server(flavor, extra=["--cluster-enabled", "yes"]))
        for i, node in enumerate(nodes):
            first, last = i * SLOTS // 3, (i + 1) * SLOTS // 3 - 1
            cast(Any, node.client()).execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
        for node in nodes[1:]:
            node.client().cluster("MEET", "127.0.0.1", str(nodes[0].port))
        for node in nodes:
            wait_for(
                lambda n=node: (
                    n.client().cluster("INFO")["cluster_state"] == "ok"  # type: ignore[misc]
                    and len(n.client().cluster("NODES")) == 3
                ),
                60,
                "cluster_state:ok",
            )
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def calls(nodes: list[Server], command: str) -> int:
    total = 0
    for node in nodes:
        stats = node.client().info("commandstats")
        total += int(stats.get(f"cmdstat_{command}", {"calls": 0})["calls"])
    return total


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_cluster_storage(cluster: list[Server], prefix: str, kind: str) -> None:
    loop = asyncio.new_event_loop() if kind == "async" else None
    uri = "rl+cluster://" + ",".join(node.url for node in cluster[:2])
    item = parse("3/minute")
    before = calls(cluster, "rl.allow")
    made = []
    try:
        for strategy in ("fixed-window", "moving-window", "sliding-window-counter"):
            lim = Limiter(uri, strategy, loop, key_prefix=f"{prefix}{kind}")
            made.append(lim)
            for ident in ("a", "b", "c", "d", "e", "f"):  # keys on several primaries
                assert [lim.hit(item, strategy, ident) for _ in range(4)] == [True] * 3 + [False]
                assert lim.stats(item, strategy, ident).remaining == 0
        module_strategies = 2 if made[0].call("module_support").moving_window else 1
        assert calls(cluster, "rl.allow") - before == 24 * module_strategies
        keys_per_node = [len(n.client().keys(f"{prefix}{kind}:*")) for n in cluster]
        assert sum(keys_per_node) == 18
        assert sum(1 for k in keys_per_node if k) >= 2
        assert made[0].call("reset") == 18
        assert sum(len(n.client().keys(f"{prefix}{kind}:*")) for n in cluster) == 0
    finally:
        for lim in made:
            lim.close()
        if loop is not None:
            loop.close()
