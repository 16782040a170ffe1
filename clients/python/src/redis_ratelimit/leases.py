"""Concurrency leases (``RL.ACQUIRE`` / ``RL.RELEASE``): the reply, and the context managers.

At most ``limit`` holders of a key at once, each for at most its lease; a holder that crashes
keeps its slot only until its lease ends. :meth:`RateLimiter.lease
<redis_ratelimit.RateLimiter.lease>` wraps one lease in a ``with`` block that releases it on
exit, exceptions included:

>>> with limiter.lease("db:pool", 20, "30s") as lease:  # doctest: +SKIP
...     run_query()
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from .types import Window, format_window

__all__ = [
    "AsyncLeaseHolder",
    "Lease",
    "LeaseHolder",
    "LeaseUnavailableError",
    "acquire_args",
]


@dataclass(frozen=True, slots=True)
class Lease:
    """One ``RL.ACQUIRE`` reply. Durations are float seconds (the module's ms, rounded up)."""

    #: Whether the lease was granted (or renewed).
    allowed: bool
    #: The lease's id (the caller's, or the one the server made); None when denied.
    id: str | None
    #: Leases held after this call.
    in_flight: int
    #: 0.0 when granted; when denied, seconds until enough leases end for one more (a release
    #: may free a slot sooner).
    retry_after: float
    #: Seconds until the last held lease ends (the key's TTL); 0.0 when none is held.
    reset_after: float

    @classmethod
    def from_reply(cls, reply: Any) -> Lease:
        """Build a lease from ``[allowed, id, in_flight, retry_after_ms, reset_after_ms]``."""
        if len(reply) != 5:
            raise ValueError(f"expected 5 fields from RL.ACQUIRE, got {reply!r}")
        allowed, lease_id, in_flight, retry_ms, reset_ms = reply
        if isinstance(lease_id, bytes):
            lease_id = lease_id.decode()
        return cls(
            allowed=int(allowed) == 1,
            id=None if lease_id is None else str(lease_id),
            in_flight=int(in_flight),
            retry_after=int(retry_ms) / 1000.0,
            reset_after=int(reset_ms) / 1000.0,
        )


class LeaseUnavailableError(Exception):
    """No lease could be had (the key holds ``limit``) within the time allowed to wait."""

    def __init__(self, key: str, lease: Lease) -> None:
        super().__init__(
            f"no lease of {key!r}: {lease.in_flight} held, the earliest ends in "
            f"{lease.retry_after:.3f} s"
        )
        #: The key.
        self.key = key
        #: The last denied reply (``retry_after``: when the earliest held lease ends).
        self.lease = lease


def acquire_args(key: str, limit: int, lease: Window, lease_id: str | None) -> list[str | int]:
    """The arguments of ``RL.ACQUIRE`` (``ID`` only when given).

    >>> acquire_args("db", 20, "30s", None)
    ['RL.ACQUIRE', 'db', 20, '30s']
    >>> acquire_args("db", 20, 30, "worker-1")
    ['RL.ACQUIRE', 'db', 20, '30', 'ID', 'worker-1']
    """
    args: list[str | int] = ["RL.ACQUIRE", key, limit, format_window(lease)]
    if lease_id is not None:
        args += ["ID", lease_id]
    return args


def _pause(denied: Lease, deadline: float | None, poll: float) -> float | None:
    """How long to sleep before trying again, or None when the deadline has passed.

    A slot frees when a lease ends (``retry_after``) or when a holder releases (any time): poll
    at most every *poll* seconds, never past the deadline.
    """
    pause = min(denied.retry_after, poll)
    if deadline is None:
        return pause
    left = deadline - time.monotonic()
    if left <= 0:
        return None
    return min(pause, left)


class LeaseHolder:
    """``with limiter.lease(...) as held:`` — a lease held for the block, released on exit.

    Entering acquires (waiting up to *timeout* seconds: 0 tries once, None waits for good) and
    raises :class:`LeaseUnavailableError` when no slot came free. Inside the block, ``held.id``
    is the lease's id, ``held.lease`` the last reply and :meth:`renew` extends the lease for
    long work. Exiting releases it, whether the block returned or raised; an error of the
    release itself (a lost connection) is raised only when the block did not raise — either
    way the lease ends by itself.
    """

    def __init__(
        self,
        call: Callable[..., Any],
        key: str,
        limit: int,
        lease: Window,
        lease_id: str | None,
        timeout: float | None,
        poll: float,
    ) -> None:
        self._call = call
        #: The key.
        self.key = key
        self._args = (limit, lease)
        self._id = lease_id
        self._timeout = timeout
        self._poll = poll
        #: The last reply (set once entered).
        self.lease: Lease | None = None

    @property
    def id(self) -> str:
        """The id of the lease held."""
        if self.lease is None or self.lease.id is None:
            raise RuntimeError("no lease is held: use this inside its with block")
        return self.lease.id

    def _acquire(self, lease_id: str | None) -> Lease:
        limit, duration = self._args
        return Lease.from_reply(self._call(*acquire_args(self.key, limit, duration, lease_id)))

    def __enter__(self) -> LeaseHolder:
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        while True:
            got = self._acquire(self._id)
            if got.allowed:
                self.lease = got
                return self
            pause = _pause(got, deadline, self._poll)
            if pause is None:
                raise LeaseUnavailableError(self.key, got)
            time.sleep(pause)

    def renew(self) -> Lease:
        """Extend the lease to a full lease from now (``RL.ACQUIRE`` with its id).

        Raises :class:`LeaseUnavailableError` if it had ended and the key is full meanwhile.
        """
        got = self._acquire(self.id)
        if not got.allowed:
            raise LeaseUnavailableError(self.key, got)
        self.lease = got
        return got

    def release(self) -> bool:
        """Give the lease back now (``RL.RELEASE``); True if it was still held."""
        return bool(self._call("RL.RELEASE", self.key, self.id))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.release()
        except Exception:
            if exc_type is None:
                raise


class AsyncLeaseHolder:
    """``async with limiter.lease(...) as held:`` — :class:`LeaseHolder` for asyncio.

    The release on exit is shielded from the task's cancellation.
    """

    def __init__(
        self,
        call: Callable[..., Awaitable[Any]],
        key: str,
        limit: int,
        lease: Window,
        lease_id: str | None,
        timeout: float | None,
        poll: float,
    ) -> None:
        self._call = call
        #: The key.
        self.key = key
        self._args = (limit, lease)
        self._id = lease_id
        self._timeout = timeout
        self._poll = poll
        #: The last reply (set once entered).
        self.lease: Lease | None = None

    @property
    def id(self) -> str:
        """The id of the lease held."""
        if self.lease is None or self.lease.id is None:
            raise RuntimeError("no lease is held: use this inside its async with block")
        return self.lease.id

    async def _acquire(self, lease_id: str | None) -> Lease:
        limit, duration = self._args
        reply = await self._call(*acquire_args(self.key, limit, duration, lease_id))
        return Lease.from_reply(reply)

    async def __aenter__(self) -> AsyncLeaseHolder:
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        while True:
            got = await self._acquire(self._id)
            if got.allowed:
                self.lease = got
                return self
            pause = _pause(got, deadline, self._poll)
            if pause is None:
                raise LeaseUnavailableError(self.key, got)
            await asyncio.sleep(pause)

    async def renew(self) -> Lease:
        """Extend the lease to a full lease from now; see :meth:`LeaseHolder.renew`."""
        got = await self._acquire(self.id)
        if not got.allowed:
            raise LeaseUnavailableError(self.key, got)
        self.lease = got
        return got

    async def release(self) -> bool:
        """Give the lease back now (``RL.RELEASE``); True if it was still held."""
        return bool(await self._call("RL.RELEASE", self.key, self.id))

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await asyncio.shield(self.release())
        except Exception:
            if exc_type is None:
                raise
