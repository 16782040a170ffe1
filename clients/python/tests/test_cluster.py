"""rl+cluster:// on real clusters: 3 primaries started here (sync and asyncio), and the
3 masters x 1 replica cluster that ``scripts/cluster`` makes.

The cluster work proper (resharding, failover) is tested with the module's own cluster suite.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis
from harness import Limiter
from limits import parse
from servers import REPO_ROOT, Server, server_binary, start_server, wait_for

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
        support = made[0].call("module_support")
        module_strategies = 2 if support.moving_window else 1
        # 24 hits per strategy on the module, and each such storage's probe (COST 0); the
        # sliding window counter's 6 reads also store limits' shift (COST 0).
        sliding = 24 + 6 + 1 if support.limits_sliding else 0
        assert calls(cluster, "rl.allow") - before == 25 * module_strategies + sliding
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


@pytest.fixture(scope="module")
def scripts_cluster(flavor: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The project's own ``scripts/cluster``: 3 masters x 1 replica; yields the first port."""
    state = tmp_path_factory.mktemp("cluster") / "state"
    env = {**os.environ, "RL_CLUSTER_STATE": str(state)}
    script = str(REPO_ROOT / "scripts" / "cluster")
    base = None
    for candidate in range(7100, 9000, 100):  # scripts/cluster refuses busy ports
        args = [script, "start", "--masters", "3", "--replicas", "1", "--port", str(candidate)]
        args += ["--server", server_binary(flavor)]
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=180)
        if done.returncode == 0:
            base = candidate
            break
        if "in use" not in done.stderr:
            raise RuntimeError(f"scripts/cluster start failed:\n{done.stderr}")
    assert base is not None, "no free port range for scripts/cluster"
    try:
        yield base
    finally:
        subprocess.run([script, "stop"], env=env, capture_output=True, timeout=120)


def test_scripts_cluster_3x1(scripts_cluster: int, prefix: str) -> None:
    """rl+cluster:// on the cluster scripts/cluster makes: every strategy, keys on every master,
    replicas identical to their masters afterwards."""
    base = scripts_cluster
    uri = f"rl+cluster://127.0.0.1:{base}"
    item = parse("3/minute")
    made = []
    try:
        for strategy in ("fixed-window", "moving-window", "sliding-window-counter"):
            lim = Limiter(uri, strategy, None, key_prefix=prefix)
            made.append(lim)
            for ident in [f"user{i}" for i in range(12)]:
                assert [lim.hit(item, strategy, ident) for _ in range(4)] == [True] * 3 + [False]
                assert lim.stats(item, strategy, ident).remaining == 0
        nodes = [redis.Redis(port=base + i) for i in range(6)]
        try:
            masters = [n for n in nodes if n.info("replication")["role"] == "master"]
            assert len(masters) == 3
            assert all(len(m.keys(f"{prefix}:*")) > 0 for m in masters)
            for m in masters:
                cast(Any, m).execute_command("WAIT", 1, 5000)
            # Each replica holds its master's limiters byte for byte, with the same expiry.
            compared = 0
            for n in nodes:
                info = n.info("replication")
                if info["role"] != "slave":
                    continue
                cast(Any, n).execute_command("READONLY")
                master = redis.Redis(port=int(info["master_port"]))
                for raw_key in master.keys(f"{prefix}:*"):
                    key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
                    assert n.dump(key) == master.dump(key), key
                    assert n.pexpiretime(key) == master.pexpiretime(key), key
                    compared += 1
                master.close()
            # One key per identity and strategy (the counter's previous-window key appears
            # only after a window shift).
            assert compared == 36
            assert made[0].call("reset") == 36
        finally:
            for n in nodes:
                n.close()
    finally:
        for lim in made:
            lim.close()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_allow_all_on_a_cluster(cluster: list[Server], prefix: str, kind: str) -> None:
    """RateLimiter / AsyncRateLimiter over RedisCluster: hash-tagged keys share a slot and go
    in one call; keys in several slots are refused before anything is sent."""
    from redis_ratelimit import AsyncRateLimiter, Limit, RateLimiter

    limits = [Limit(f"{{{prefix}}}:rpm", 2, "1m"), Limit(f"{{{prefix}}}:tpm", 100, "1m", cost=30)]
    cross = [Limit(f"{prefix}:a", 2, "1m"), Limit(f"{prefix}:b", 2, "1m")]
    if kind == "sync":
        client = redis.cluster.RedisCluster(host="127.0.0.1", port=cluster[0].port)
        try:
            limiter = RateLimiter(client)
            got = [limiter.allow_all(limits).allowed for _ in range(3)]
            assert got == [True, True, False]
            assert limiter.peek_all(limits).binding == 0
            assert limiter.charge(f"{{{prefix}}}:tpm", 100, "1m", 50).remaining == 0
            with pytest.raises(redis.exceptions.RedisClusterException, match=r"same (key )?slot"):
                limiter.allow_all(cross)
        finally:
            client.close()
        return

    async def run() -> None:
        client = redis.asyncio.cluster.RedisCluster(host="127.0.0.1", port=cluster[0].port)
        try:
            limiter = AsyncRateLimiter(client)
            got = [(await limiter.allow_all(limits)).allowed for _ in range(3)]
            assert got == [True, True, False]
            assert (await limiter.refund(f"{{{prefix}}}:tpm", 100, "1m", 60)).remaining == 100
            with pytest.raises(redis.exceptions.RedisClusterException, match=r"same (key )?slot"):
                await limiter.allow_all(cross)
        finally:
            await client.aclose()

    asyncio.run(run())
