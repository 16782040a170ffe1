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


class Limiter:
    """A strategy on a storage; asyncio ones run on a private event loop."""

    def __init__(
        self, uri: str, strategy: str, loop: asyncio.AbstractEventLoop | None, **options: Any
    ) -> None:
        self.loop = loop
        if loop is not None:
            uri = f"async+{uri}"
            options.setdefault("implementation", "redispy")  # limits' default is coredis
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
        if self.loop is not None:
            self.loop.run_until_complete(self.storage.bridge.storage.aclose())
