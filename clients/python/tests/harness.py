"""One interface over limits' sync and asyncio strategies, so each contract test runs on both."""

from __future__ import annotations

import asyncio
from typing import Any

import limits.aio.strategies
import limits.strategies
from limits import RateLimitItem
from limits.storage import storage_from_string
from limits.util import WindowStats

import redis_ratelimit  # noqa: F401 - registers rl://

#: How a test drives a storage: limits' sync storage, or its asyncio one on each client library.
KINDS = ["sync", "redispy", "coredis", "valkey"]


class Limiter:
    """A strategy on a storage; asyncio ones run on a private event loop.

    With a *loop*, the storage is the ``async+`` one on *implementation* (redis.asyncio by
    default here; limits' own default is coredis).
    """

    def __init__(
        self,
        uri: str,
        strategy: str,
        loop: asyncio.AbstractEventLoop | None,
        implementation: str = "redispy",
        **options: Any,
    ) -> None:
        self.loop = loop
        self.implementation = implementation if loop is not None else "sync"
        if loop is not None:
            uri = f"async+{uri}"
            options["implementation"] = implementation
        self.storage: Any = storage_from_string(uri, **options)
        table: Any = limits.aio.strategies.STRATEGIES if loop else limits.strategies.STRATEGIES
        self.limiter: Any = table[strategy](self.storage)

    def _run(self, value: Any) -> Any:
        if self.loop is not None:
            return self.loop.run_until_complete(value)
        return value

    def hit(self, item: RateLimitItem, *ids: str, cost: int = 1) -> bool:
        return bool(self._run(self.limiter.hit(item, *ids, cost=cost)))

    def test(self, item: RateLimitItem, *ids: str, cost: int = 1) -> bool:
        return bool(self._run(self.limiter.test(item, *ids, cost=cost)))

    def stats(self, item: RateLimitItem, *ids: str) -> WindowStats:
        result: WindowStats = self._run(self.limiter.get_window_stats(item, *ids))
        return result

    def clear(self, item: RateLimitItem, *ids: str) -> None:
        self._run(self.limiter.clear(item, *ids))

    def call(self, method: str, *args: Any) -> Any:
        """Call a storage method directly (``incr``, ``get``, ``get_moving_window``…)."""
        return self._run(getattr(self.storage, method)(*args))

    def close(self) -> None:
        if self.loop is None:
            return
        bridge = self.storage.bridge
        clients = [bridge.storage, getattr(bridge, "storage_replica", None)]
        sentinel = getattr(bridge, "sentinel", None)
        clients += list(getattr(sentinel, "sentinels", []))
        for client in filter(None, clients):
            if self.implementation == "coredis":
                client.connection_pool.disconnect()
            else:
                self.loop.run_until_complete(client.aclose())
