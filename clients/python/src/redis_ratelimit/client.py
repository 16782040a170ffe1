"""Clients for the module's commands: :class:`RateLimiter` (sync) and :class:`AsyncRateLimiter`.

>>> import redis
>>> limiter = RateLimiter(redis.Redis())
>>> decision = limiter.allow("user:42", 10, "1m")  # doctest: +SKIP
>>> decision.allowed, decision.remaining  # doctest: +SKIP
(True, 9)

Several limits at once, all or nothing, and the cost settled after the work:

>>> both = limiter.allow_all([Limit("rpm:k42", 60, "1m"),
...                           Limit("tpm:k42", 100_000, "1m", cost=1500)])  # doctest: +SKIP
>>> limiter.charge("tpm:k42", 100_000, "1m", 2600 - 1500)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from redis.exceptions import ResponseError

from .errors import from_response_error
from .leases import AsyncLeaseHolder, Lease, LeaseHolder, acquire_args
from .types import (
    Algorithm,
    Decision,
    Inspection,
    Limit,
    MultiDecision,
    Seconds,
    Throttle,
    Window,
    all_args,
    gcra_args,
    limit_args,
    settle_args,
    throttle_args,
)

if TYPE_CHECKING:
    import redis
    import redis.asyncio

__all__ = ["AsyncRateLimiter", "RateLimiter"]

T = TypeVar("T")


# One request per method, built and parsed here for both clients: a fix lands once.
@dataclass(frozen=True)
class _Request(Generic[T]):
    """A command's arguments and how to read its reply."""

    args: tuple[str | int, ...]
    parse: Callable[[Any], T]


def _decision(
    command: str,
    key: str,
    limit: int,
    window: Window,
    cost: int,
    algorithm: Algorithm | str | None,
    burst: int | None,
    block: Window | None = None,
) -> _Request[Decision]:
    args = limit_args(command, key, limit, window, cost, algorithm, burst, block)
    return _Request(tuple(args), Decision.from_reply)


def _all(command: str, limits: Sequence[Limit]) -> _Request[MultiDecision]:
    return _Request(tuple(all_args(command, limits)), MultiDecision.from_reply)


def _settle(
    command: str,
    key: str,
    limit: int,
    window: Window,
    amount: int,
    algorithm: Algorithm | str | None,
    burst: int | None,
) -> _Request[Decision]:
    args = settle_args(command, key, limit, window, amount, algorithm, burst)
    return _Request(tuple(args), Decision.from_reply)


def _inspect(key: str) -> _Request[Inspection | None]:
    return _Request(("RL.INSPECT", key), Inspection.from_reply)


def _throttle(
    command: str, key: str, max_burst: int, count_per_period: int, period: Window, quantity: int
) -> _Request[Throttle]:
    args = throttle_args(command, key, max_burst, count_per_period, period, quantity)
    return _Request(tuple(args), Throttle.from_reply)


def _gcra(
    key: str, max_burst: int, tokens_per_period: int, period: Seconds, tokens: int
) -> _Request[Throttle]:
    args = gcra_args(key, max_burst, tokens_per_period, period, tokens)
    return _Request(tuple(args), Throttle.from_reply)


def _reset(key: str) -> _Request[bool]:
    return _Request(("DEL", key), lambda reply: bool(int(reply)))


def _raw(reply: Any) -> Any:
    return reply


def _acquire(key: str, limit: int, lease: Window, lease_id: str | None) -> _Request[Lease]:
    return _Request(tuple(acquire_args(key, limit, lease, lease_id)), Lease.from_reply)


class RateLimiter:
    """Calls the module's commands through redis-py.

    ``RL.ALLOW``, ``RL.PEEK``, ``RL.ALLOWALL``, ``RL.PEEKALL``, ``RL.CHARGE``, ``RL.REFUND``,
    ``RL.INSPECT``, the GCRA drop-ins, and the concurrency leases (``RL.ACQUIRE`` /
    ``RL.RELEASE``, :meth:`lease` for a ``with`` block).

    Any client works: :class:`redis.Redis`, a sentinel's ``master_for(...)``,
    :class:`redis.cluster.RedisCluster`. Error replies become the typed exceptions of
    :mod:`redis_ratelimit.errors`.
    """

    def __init__(self, client: redis.Redis | redis.cluster.RedisCluster) -> None:
        #: The redis-py client the commands go through.
        self.client = client

    def _call(self, request: _Request[T]) -> T:
        try:
            reply = cast(Any, self.client).execute_command(*request.args)
        except ResponseError as exc:
            raise from_response_error(exc) from exc
        return request.parse(reply)

    def _command(self, *args: str | int) -> Any:
        """One command's raw reply, errors typed (what a lease holder sends)."""
        return self._call(_Request(args, _raw))

    def allow(
        self,
        key: str,
        limit: int,
        window: Window,
        cost: int = 1,
        algorithm: Algorithm | str | None = None,
        burst: int | None = None,
        block: Window | None = None,
    ) -> Decision:
        """Admit and charge a request of *cost* if the limiter at *key* allows it (``RL.ALLOW``).

        :param key: the limiter's key.
        :param limit: requests per window.
        :param window: ``"1m"``, ``60`` (seconds) or a :class:`~datetime.timedelta`.
        :param cost: the request's weight; 0 only reports.
        :param algorithm: an :class:`Algorithm` (default: the module's, sliding-window).
        :param burst: gcra only: the capacity (default *limit*).
        :param block: a penalty: once a request is denied the key stays denied this long
            (``BLOCK``; the window syntax).
        """
        request = _decision("RL.ALLOW", key, limit, window, cost, algorithm, burst, block)
        return self._call(request)

    def peek(
        self,
        key: str,
        limit: int,
        window: Window,
        cost: int = 1,
        algorithm: Algorithm | str | None = None,
        burst: int | None = None,
        block: Window | None = None,
    ) -> Decision:
        """The decision :meth:`allow` would give now, without charging (``RL.PEEK``)."""
        request = _decision("RL.PEEK", key, limit, window, cost, algorithm, burst, block)
        return self._call(request)

    def allow_all(self, limits: Sequence[Limit]) -> MultiDecision:
        """Admit a request only if every limit allows it, then charge them all (``RL.ALLOWALL``).

        One round trip, atomic: either every key is charged its :attr:`Limit.cost` or none is.
        In a cluster the keys must share a hash tag (``{key42}:rpm``, ``{key42}:tpm``).
        """
        return self._call(_all("RL.ALLOWALL", limits))

    def peek_all(self, limits: Sequence[Limit]) -> MultiDecision:
        """What :meth:`allow_all` would reply now, without charging (``RL.PEEKALL``)."""
        return self._call(_all("RL.PEEKALL", limits))

    def charge(
        self,
        key: str,
        limit: int,
        window: Window,
        amount: int,
        algorithm: Algorithm | str | None = None,
        burst: int | None = None,
    ) -> Decision:
        """Charge *amount* whatever the limit says (``RL.CHARGE``): settle a cost after the work.

        Past the capacity the excess is a debt that later requests wait out. The decision
        describes the key after the call: ``allowed`` whether a request of 1 would pass now,
        ``retry_after`` when one will.
        """
        return self._call(_settle("RL.CHARGE", key, limit, window, amount, algorithm, burst))

    def refund(
        self,
        key: str,
        limit: int,
        window: Window,
        amount: int,
        algorithm: Algorithm | str | None = None,
        burst: int | None = None,
    ) -> Decision:
        """Give back up to *amount* of what was charged, never below empty (``RL.REFUND``)."""
        return self._call(_settle("RL.REFUND", key, limit, window, amount, algorithm, burst))

    def inspect(self, key: str) -> Inspection | None:
        """The limiter's rule and state (``RL.INSPECT``); None when the key does not exist."""
        return self._call(_inspect(key))

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
        return self._call(
            _throttle("RL.THROTTLE", key, max_burst, count_per_period, period, quantity)
        )

    def cl_throttle(
        self,
        key: str,
        max_burst: int,
        count_per_period: int,
        period: Window,
        quantity: int = 1,
    ) -> Throttle:
        """:meth:`throttle` under redis-cell's own name (``CL.THROTTLE``)."""
        return self._call(
            _throttle("CL.THROTTLE", key, max_burst, count_per_period, period, quantity)
        )

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
        return self._call(_gcra(key, max_burst, tokens_per_period, period, tokens))

    def reset(self, key: str) -> bool:
        """Delete the limiter (the next request starts from full capacity); True if it existed."""
        return self._call(_reset(key))

    def acquire(self, key: str, limit: int, lease: Window, id: str | None = None) -> Lease:
        """Take one of *limit* leases of *key* for *lease*, or renew the one *id* holds.

        :param lease: the longest the holder may keep it: ``"30s"``, ``30``, a timedelta.
        :param id: the caller's id (1 to 128 bytes); by default the server makes one.
        :returns: the reply; ``allowed`` False when *limit* leases are held (nothing taken).
        """
        return self._call(_acquire(key, limit, lease, id))

    def release(self, key: str, id: str) -> bool:
        """Give the lease *id* holds back (``RL.RELEASE``); True if it was still held."""
        return bool(self._call(_Request(("RL.RELEASE", key, id), _raw)))

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
        return LeaseHolder(self._command, key, limit, lease, id, timeout, poll)


class AsyncRateLimiter:
    """The asyncio flavour of :class:`RateLimiter`, over :mod:`redis.asyncio` clients."""

    def __init__(self, client: redis.asyncio.Redis | redis.asyncio.RedisCluster) -> None:
        #: The redis.asyncio client the commands go through.
        self.client = client

    async def _call(self, request: _Request[T]) -> T:
        try:
            reply = await cast(Any, self.client).execute_command(*request.args)
        except ResponseError as exc:
            raise from_response_error(exc) from exc
        return request.parse(reply)

    async def _command(self, *args: str | int) -> Any:
        """One command's raw reply, errors typed (what a lease holder sends)."""
        return await self._call(_Request(args, _raw))

    async def allow(
        self,
        key: str,
        limit: int,
        window: Window,
        cost: int = 1,
        algorithm: Algorithm | str | None = None,
        burst: int | None = None,
        block: Window | None = None,
    ) -> Decision:
        """Admit and charge a request (``RL.ALLOW``); see :meth:`RateLimiter.allow`."""
        request = _decision("RL.ALLOW", key, limit, window, cost, algorithm, burst, block)
        return await self._call(request)

    async def peek(
        self,
        key: str,
        limit: int,
        window: Window,
        cost: int = 1,
        algorithm: Algorithm | str | None = None,
        burst: int | None = None,
        block: Window | None = None,
    ) -> Decision:
        """The decision :meth:`allow` would give now, without charging (``RL.PEEK``)."""
        request = _decision("RL.PEEK", key, limit, window, cost, algorithm, burst, block)
        return await self._call(request)

    async def allow_all(self, limits: Sequence[Limit]) -> MultiDecision:
        """All limits or none (``RL.ALLOWALL``); see :meth:`RateLimiter.allow_all`."""
        return await self._call(_all("RL.ALLOWALL", limits))

    async def peek_all(self, limits: Sequence[Limit]) -> MultiDecision:
        """What :meth:`allow_all` would reply now, without charging (``RL.PEEKALL``)."""
        return await self._call(_all("RL.PEEKALL", limits))

    async def charge(
        self,
        key: str,
        limit: int,
        window: Window,
        amount: int,
        algorithm: Algorithm | str | None = None,
        burst: int | None = None,
    ) -> Decision:
        """Charge unconditionally (``RL.CHARGE``); see :meth:`RateLimiter.charge`."""
        request = _settle("RL.CHARGE", key, limit, window, amount, algorithm, burst)
        return await self._call(request)

    async def refund(
        self,
        key: str,
        limit: int,
        window: Window,
        amount: int,
        algorithm: Algorithm | str | None = None,
        burst: int | None = None,
    ) -> Decision:
        """Give back what was charged (``RL.REFUND``); see :meth:`RateLimiter.refund`."""
        request = _settle("RL.REFUND", key, limit, window, amount, algorithm, burst)
        return await self._call(request)

    async def inspect(self, key: str) -> Inspection | None:
        """The limiter's rule and state (``RL.INSPECT``); None when the key does not exist."""
        return await self._call(_inspect(key))

    async def throttle(
        self,
        key: str,
        max_burst: int,
        count_per_period: int,
        period: Window,
        quantity: int = 1,
    ) -> Throttle:
        """``RL.THROTTLE``; see :meth:`RateLimiter.throttle`."""
        return await self._call(
            _throttle("RL.THROTTLE", key, max_burst, count_per_period, period, quantity)
        )

    async def cl_throttle(
        self,
        key: str,
        max_burst: int,
        count_per_period: int,
        period: Window,
        quantity: int = 1,
    ) -> Throttle:
        """``CL.THROTTLE``; see :meth:`RateLimiter.throttle`."""
        return await self._call(
            _throttle("CL.THROTTLE", key, max_burst, count_per_period, period, quantity)
        )

    async def gcra(
        self,
        key: str,
        max_burst: int,
        tokens_per_period: int,
        period: Seconds,
        tokens: int = 1,
    ) -> Throttle:
        """``GCRA``; see :meth:`RateLimiter.gcra`."""
        return await self._call(_gcra(key, max_burst, tokens_per_period, period, tokens))

    async def reset(self, key: str) -> bool:
        """Delete the limiter; True if it existed."""
        return await self._call(_reset(key))

    async def acquire(self, key: str, limit: int, lease: Window, id: str | None = None) -> Lease:
        """Take or renew a lease (``RL.ACQUIRE``); see :meth:`RateLimiter.acquire`."""
        return await self._call(_acquire(key, limit, lease, id))

    async def release(self, key: str, id: str) -> bool:
        """Give a lease back (``RL.RELEASE``); True if it was still held."""
        return bool(await self._call(_Request(("RL.RELEASE", key, id), _raw)))

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
        return AsyncLeaseHolder(self._command, key, limit, lease, id, timeout, poll)
