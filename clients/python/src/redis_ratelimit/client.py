"""Clients for the module's commands: :class:`RateLimiter` (sync) and :class:`AsyncRateLimiter`.

>>> import redis
>>> limiter = RateLimiter(redis.Redis())
>>> decision = limiter.allow("user:42", 10, "1m")  # doctest: +SKIP
>>> decision.allowed, decision.remaining  # doctest: +SKIP
(True, 9)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from redis.exceptions import ResponseError

from .errors import from_response_error
from .types import (
    Algorithm,
    Decision,
    Inspection,
    Seconds,
    Throttle,
    Window,
    gcra_args,
    limit_args,
    throttle_args,
)

if TYPE_CHECKING:
    import redis
    import redis.asyncio

__all__ = ["AsyncRateLimiter", "RateLimiter"]


class RateLimiter:
    """Calls ``RL.ALLOW``, ``RL.PEEK``, ``RL.INSPECT`` and the GCRA drop-ins through redis-py.

    Any client works: :class:`redis.Redis`, a sentinel's ``master_for(...)``,
    :class:`redis.cluster.RedisCluster`. Error replies become the typed exceptions of
    :mod:`redis_ratelimit.errors`.
    """

    def __init__(self, client: redis.Redis | redis.cluster.RedisCluster) -> None:
        #: The redis-py client the commands go through.
        self.client = client

    def _call(self, *args: str | int) -> Any:
        try:
            return cast(Any, self.client).execute_command(*args)
        except ResponseError as exc:
            raise from_response_error(exc) from exc

    def allow(
        self,
        key: str,
        limit: int,
        window: Window,
        cost: int = 1,
        algorithm: Algorithm | str | None = None,
        burst: int | None = None,
    ) -> Decision:
        """Admit and charge a request of *cost* if the limiter at *key* allows it (``RL.ALLOW``).

        :param key: the limiter's key.
        :param limit: requests per window.
        :param window: ``"1m"``, ``60`` (seconds) or a :class:`~datetime.timedelta`.
        :param cost: the request's weight; 0 only reports.
        :param algorithm: an :class:`Algorithm` (default: the module's, sliding-window).
        :param burst: gcra only: the capacity (default *limit*).
        """
        reply = self._call(*limit_args("RL.ALLOW", key, limit, window, cost, algorithm, burst))
        return Decision.from_reply(reply)

    def peek(
        self,
        key: str,
        limit: int,
        window: Window,
        cost: int = 1,
        algorithm: Algorithm | str | None = None,
        burst: int | None = None,
    ) -> Decision:
        """The decision :meth:`allow` would give now, without charging (``RL.PEEK``)."""
        reply = self._call(*limit_args("RL.PEEK", key, limit, window, cost, algorithm, burst))
        return Decision.from_reply(reply)

    def inspect(self, key: str) -> Inspection | None:
        """The limiter's rule and state (``RL.INSPECT``); None when the key does not exist."""
        return Inspection.from_reply(self._call("RL.INSPECT", key))

    def throttle(
        self,
        key: str,
        max_burst: int,
        count_per_period: int,
        period: Window,
        quantity: int = 1,
    ) -> Throttle:
        """redis-cell's call on the module's gcra limiter (``RL.THROTTLE``).

        *count_per_period* requests per *period* with up to ``max_burst + 1`` at once: the
        limiter ``allow(key, count_per_period, period, algorithm="gcra", burst=max_burst + 1)``
        uses. *quantity* 0 only reports.
        """
        args = throttle_args("RL.THROTTLE", key, max_burst, count_per_period, period, quantity)
        return Throttle.from_reply(self._call(*args))

    def cl_throttle(
        self,
        key: str,
        max_burst: int,
        count_per_period: int,
        period: Window,
        quantity: int = 1,
    ) -> Throttle:
        """:meth:`throttle` under redis-cell's own name (``CL.THROTTLE``)."""
        args = throttle_args("CL.THROTTLE", key, max_burst, count_per_period, period, quantity)
        return Throttle.from_reply(self._call(*args))

    def gcra(
        self,
        key: str,
        max_burst: int,
        tokens_per_period: int,
        period: Seconds,
        tokens: int = 1,
    ) -> Throttle:
        """Redis 8.8's ``GCRA`` command, served by the module on any server.

        :param period: seconds (``60``, ``0.5``) or a :class:`~datetime.timedelta`.
        :param tokens: the request's cost, at least 1.
        """
        args = gcra_args(key, max_burst, tokens_per_period, period, tokens)
        return Throttle.from_reply(self._call(*args))

    def reset(self, key: str) -> bool:
        """Delete the limiter (the next request starts from full capacity); True if it existed."""
        return bool(self.client.delete(key))


class AsyncRateLimiter:
    """The asyncio flavour of :class:`RateLimiter`, over :mod:`redis.asyncio` clients."""

    def __init__(self, client: redis.asyncio.Redis | redis.asyncio.RedisCluster) -> None:
        #: The redis.asyncio client the commands go through.
        self.client = client

    async def _call(self, *args: str | int) -> Any:
        try:
            return await cast(Any, self.client).execute_command(*args)
        except ResponseError as exc:
            raise from_response_error(exc) from exc

    async def allow(
        self,
        key: str,
        limit: int,
        window: Window,
        cost: int = 1,
        algorithm: Algorithm | str | None = None,
        burst: int | None = None,
    ) -> Decision:
        """Admit and charge a request (``RL.ALLOW``); see :meth:`RateLimiter.allow`."""
        args = limit_args("RL.ALLOW", key, limit, window, cost, algorithm, burst)
        return Decision.from_reply(await self._call(*args))

    async def peek(
        self,
        key: str,
        limit: int,
        window: Window,
        cost: int = 1,
        algorithm: Algorithm | str | None = None,
        burst: int | None = None,
    ) -> Decision:
        """The decision :meth:`allow` would give now, without charging (``RL.PEEK``)."""
        args = limit_args("RL.PEEK", key, limit, window, cost, algorithm, burst)
        return Decision.from_reply(await self._call(*args))

    async def inspect(self, key: str) -> Inspection | None:
        """The limiter's rule and state (``RL.INSPECT``); None when the key does not exist."""
        return Inspection.from_reply(await self._call("RL.INSPECT", key))

    async def throttle(
        self,
        key: str,
        max_burst: int,
        count_per_period: int,
        period: Window,
        quantity: int = 1,
    ) -> Throttle:
        """``RL.THROTTLE``; see :meth:`RateLimiter.throttle`."""
        args = throttle_args("RL.THROTTLE", key, max_burst, count_per_period, period, quantity)
        return Throttle.from_reply(await self._call(*args))

    async def cl_throttle(
        self,
        key: str,
        max_burst: int,
        count_per_period: int,
        period: Window,
        quantity: int = 1,
    ) -> Throttle:
        """``CL.THROTTLE``; see :meth:`RateLimiter.throttle`."""
        args = throttle_args("CL.THROTTLE", key, max_burst, count_per_period, period, quantity)
        return Throttle.from_reply(await self._call(*args))

    async def gcra(
        self,
        key: str,
        max_burst: int,
        tokens_per_period: int,
        period: Seconds,
        tokens: int = 1,
    ) -> Throttle:
        """``GCRA``; see :meth:`RateLimiter.gcra`."""
        args = gcra_args(key, max_burst, tokens_per_period, period, tokens)
        return Throttle.from_reply(await self._call(*args))

    async def reset(self, key: str) -> bool:
        """Delete the limiter; True if it existed."""
        return bool(await self.client.delete(key))
