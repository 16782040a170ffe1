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
from .leases import AsyncLeaseHolder, Lease, LeaseHolder, acquire_args
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
    """Calls the module's commands through redis-py.

    ``RL.ALLOW``, ``RL.PEEK``, ``RL.INSPECT``, the GCRA drop-ins, and the concurrency leases
    (``RL.ACQUIRE`` / ``RL.RELEASE``, :meth:`lease` for a ``with`` block).

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

    def acquire(self, key: str, limit: int, lease: Window, id: str | None = None) -> Lease:
        """Take one of *limit* leases of *key* for *lease*, or renew the one *id* holds.

        :param lease: the longest the holder may keep it: ``"30s"``, ``30``, a timedelta.
        :param id: the caller's id (1 to 128 bytes); by default the server makes one.
        :returns: the reply; ``allowed`` False when *limit* leases are held (nothing taken).
        """
        return Lease.from_reply(self._call(*acquire_args(key, limit, lease, id)))

    def release(self, key: str, id: str) -> bool:
        """Give the lease *id* holds back (``RL.RELEASE``); True if it was still held."""
        return bool(self._call("RL.RELEASE", key, id))

    def lease(
        self,
        key: str,
        limit: int,
        lease: Window,
        *,
        id: str | None = None,
        timeout: float | None = 0.0,
        poll: float = 0.05,
    ) -> LeaseHolder:
        """A lease held for a ``with`` block and released on exit, exceptions included.

        Entering waits up to *timeout* seconds for a slot (0: one try; None: until one frees),
        polling at most every *poll* seconds, then raises
        :class:`~redis_ratelimit.leases.LeaseUnavailableError`. A holder that dies inside the
        block keeps its slot until the lease ends.

        >>> with limiter.lease("db:pool", 20, "30s") as held:  # doctest: +SKIP
        ...     held.id, held.lease.in_flight
        ('1796292359863784', 1)
        """
        return LeaseHolder(self._call, key, limit, lease, id, timeout, poll)


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

    async def acquire(self, key: str, limit: int, lease: Window, id: str | None = None) -> Lease:
        """Take or renew a lease (``RL.ACQUIRE``); see :meth:`RateLimiter.acquire`."""
        return Lease.from_reply(await self._call(*acquire_args(key, limit, lease, id)))

    async def release(self, key: str, id: str) -> bool:
        """Give a lease back (``RL.RELEASE``); True if it was still held."""
        return bool(await self._call("RL.RELEASE", key, id))

    def lease(
        self,
        key: str,
        limit: int,
        lease: Window,
        *,
        id: str | None = None,
        timeout: float | None = 0.0,
        poll: float = 0.05,
    ) -> AsyncLeaseHolder:
        """``async with limiter.lease(key, limit, "30s") as held:``; see ``RateLimiter.lease``."""
        return AsyncLeaseHolder(self._call, key, limit, lease, id, timeout, poll)
