"""Values shared by the sync and asyncio clients: algorithms, windows, decisions, inspections."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeAlias

__all__ = [
    "Algorithm",
    "Decision",
    "Inspection",
    "Limit",
    "MultiDecision",
    "Seconds",
    "Throttle",
    "Window",
    "format_seconds",
    "format_window",
]

#: A window: the module's own string (``"60"``, ``"500ms"``, ``"1.5s"``, ``"1m"``, ``"1h"``,
#: ``"1d"``), whole seconds as an ``int``, or a :class:`datetime.timedelta` (microsecond
#: precision, as the module's).
Window: TypeAlias = "str | int | timedelta"

#: GCRA's period: seconds as an ``int`` or ``float``, or a :class:`datetime.timedelta`.
Seconds: TypeAlias = "int | float | timedelta"


class Algorithm(str, enum.Enum):
    """The module's ``ALGO`` values (see the repository README for their exact semantics)."""

    #: Weighted count of the current and previous epoch-aligned windows (the default).
    SLIDING_WINDOW = "sliding-window"
    #: A counter per window, the window starting at the first request.
    FIXED_WINDOW = "fixed-window"
    #: Generic cell rate algorithm (a token bucket) with an optional ``burst``.
    GCRA = "gcra"
    #: An exact log of admitted requests over the last ``window``.
    MOVING_WINDOW = "moving-window"
    #: limits' sliding window counter, exactly (windows from the first hit, weight rounded down).
    LIMITS_SLIDING_WINDOW = "limits-sliding-window"
    #: Concurrency leases (``RL.ACQUIRE``): what ``RL.INSPECT`` reports for such a key. Not an
    #: ``ALGO`` value: ``RL.ALLOW`` refuses it.
    LEASES = "leases"

    def __str__(self) -> str:
        return self.value


def format_window(window: Window) -> str:
    """Return *window* as the module's argument.

    >>> format_window(timedelta(minutes=1))
    '60000ms'
    >>> format_window(timedelta(microseconds=1500))
    '1.5ms'
    >>> format_window(60), format_window("1m")
    ('60', '1m')
    """
    if isinstance(window, timedelta):
        micros = (window.days * 86_400 + window.seconds) * 1_000_000 + window.microseconds
        if micros <= 0:
            raise ValueError(f"window must be positive, got {window!r}")
        whole_ms, rest_us = divmod(micros, 1000)
        if rest_us == 0:
            return f"{whole_ms}ms"
        return f"{whole_ms}.{rest_us:03d}".rstrip("0") + "ms"
    if isinstance(window, bool):
        raise TypeError("window must be a str, int or timedelta, not bool")
    if isinstance(window, int):
        return str(window)
    if isinstance(window, str):
        return window
    raise TypeError(f"window must be a str, int or timedelta, not {type(window).__name__}")


def format_seconds(period: Seconds) -> str:
    """Return *period* as ``GCRA``'s argument: a number of seconds.

    >>> format_seconds(60), format_seconds(0.5), format_seconds(1e-05)
    ('60', '0.5', '1e-05')
    >>> format_seconds(timedelta(milliseconds=1500))
    '1.500000'
    """
    if isinstance(period, bool):
        raise TypeError("period must be an int, float or timedelta, not bool")
    if isinstance(period, timedelta):
        micros = (period.days * 86_400 + period.seconds) * 1_000_000 + period.microseconds
        if micros <= 0:
            raise ValueError(f"period must be positive, got {period!r}")
        whole, rest = divmod(micros, 1_000_000)
        return f"{whole}.{rest:06d}"
    if isinstance(period, int):
        return str(period)
    if isinstance(period, float):
        if not math.isfinite(period):
            raise ValueError(f"period must be finite, got {period!r}")
        return repr(period)
    raise TypeError(f"period must be an int, float or timedelta, not {type(period).__name__}")


def _ms_to_seconds(ms: int) -> float:
    return ms / 1000.0


@dataclass(frozen=True, slots=True)
class Decision:
    """One ``RL.ALLOW`` / ``RL.PEEK`` reply.

    Durations are float seconds (the module answers in whole milliseconds, rounded up), the unit
    of :func:`time.time` and of limits' ``WindowStats``.
    """

    #: Whether the request was admitted (and, for ``allow`` with cost >= 1, charged).
    allowed: bool
    #: The most that can pass at once: ``limit``, or ``burst`` for gcra.
    capacity: int
    #: How many further cost-1 requests would be admitted right now, after this call.
    remaining: int
    #: 0.0 when allowed; when denied the seconds after which the same request would pass if
    #: nothing else arrives; :data:`math.inf` when it never can (cost above the capacity).
    retry_after: float
    #: Seconds until the limiter is back to full capacity if nothing else arrives (0.0 for a key
    #: that does not exist).
    reset_after: float

    @classmethod
    def from_reply(cls, reply: Sequence[Any]) -> Decision:
        """Build a decision from the module's five-integer reply."""
        if len(reply) != 5:
            raise ValueError(f"expected 5 integers from RL.ALLOW/RL.PEEK, got {reply!r}")
        allowed, capacity, remaining, retry_after_ms, reset_after_ms = (int(v) for v in reply)
        return cls(
            allowed=allowed == 1,
            capacity=capacity,
            remaining=remaining,
            retry_after=math.inf if retry_after_ms < 0 else _ms_to_seconds(retry_after_ms),
            reset_after=_ms_to_seconds(reset_after_ms),
        )


@dataclass(frozen=True, slots=True)
class Limit:
    """One limit of an all-or-nothing call (:meth:`RateLimiter.allow_all`): a key and its rule.

    >>> Limit("tpm:key42", 100_000, "1m", cost=1500).args()
    [100000, '1m', 'COST', 1500]
    """

    #: The limiter's key (in a cluster, every key of one call must share a hash tag).
    key: str
    #: Requests (or tokens) per window.
    limit: int
    #: ``"1m"``, ``60`` (seconds) or a :class:`~datetime.timedelta`.
    window: Window
    #: What this request costs under this limit (requests and tokens differ).
    cost: int = 1
    #: An :class:`Algorithm` (default: the module's, sliding-window).
    algorithm: Algorithm | str | None = None
    #: gcra only: the capacity (default *limit*).
    burst: int | None = None
    #: A penalty: once this limit denies, its key stays denied this long (``BLOCK``).
    block: Window | None = None

    def args(self) -> list[str | int]:
        """The rule group's arguments: ``limit window [options]``."""
        return limit_args(
            "", self.key, self.limit, self.window, self.cost, self.algorithm, self.burst, self.block
        )[2:]


@dataclass(frozen=True, slots=True)
class MultiDecision:
    """One ``RL.ALLOWALL`` / ``RL.PEEKALL`` reply: all limits at once, all or nothing."""

    #: Whether every limit admitted the request (and, for ``allow_all``, all were charged).
    allowed: bool
    #: The index (0-based, into the limits given) of the limit that decided: when denied, the
    #: denying one with the longest wait; when admitted, the one with the least remaining.
    binding: int
    #: Each limit's key after the call, in the order given. In a denied call a limit that would
    #: have admitted says ``allowed`` with its key as it stands (nothing was charged).
    decisions: tuple[Decision, ...]

    @property
    def retry_after(self) -> float:
        """0.0 when admitted; else when the whole request would pass (the binding limit's)."""
        return 0.0 if self.allowed else self.decisions[self.binding].retry_after

    @property
    def limiting(self) -> Decision:
        """The binding limit's decision (what HTTP headers should describe)."""
        return self.decisions[self.binding]

    @classmethod
    def from_reply(cls, reply: Sequence[Any]) -> MultiDecision:
        """Build it from ``[allowed, binding, r1, r2, ...]`` (binding 1-based on the wire)."""
        if len(reply) < 3:
            raise ValueError(
                f"expected [allowed, binding, r1, ...] from RL.ALLOWALL, got {reply!r}"
            )
        return cls(
            allowed=int(reply[0]) == 1,
            binding=int(reply[1]) - 1,
            decisions=tuple(Decision.from_reply(r) for r in reply[2:]),
        )


@dataclass(frozen=True, slots=True)
class Throttle:
    """One ``RL.THROTTLE`` / ``CL.THROTTLE`` / ``GCRA`` reply: redis-cell's five integers.

    Times are whole seconds, rounded up (waiting ``retry_after`` seconds is always enough).
    """

    #: Whether the request was denied (redis-cell's first field; the inverse of ``allowed``).
    limited: bool
    #: The most that can pass at once: ``max_burst + 1``.
    limit: int
    #: How many further requests of 1 would be admitted right now, after this call.
    remaining: int
    #: When denied, seconds after which the same request would pass; -1 when admitted, or when
    #: it never can (a quantity above ``limit``).
    retry_after: int
    #: Seconds until the bucket is full again if nothing else arrives.
    reset_after: int

    @property
    def allowed(self) -> bool:
        """Whether the request was admitted."""
        return not self.limited

    @property
    def never(self) -> bool:
        """Whether the request was denied for good (its quantity is above ``limit``)."""
        return self.limited and self.retry_after < 0

    @classmethod
    def from_reply(cls, reply: Sequence[Any]) -> Throttle:
        """Build a result from the five-integer reply."""
        if len(reply) != 5:
            raise ValueError(f"expected 5 integers from a throttle command, got {reply!r}")
        limited, limit, remaining, retry_after, reset_after = (int(v) for v in reply)
        return cls(limited == 1, limit, remaining, retry_after, reset_after)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True, slots=True)
class Inspection:
    """One ``RL.INSPECT`` reply: a limiter's rule and state as of the server time ``now_us``.

    Times ending in ``_us`` are the server's Unix time in microseconds; :meth:`to_local` converts
    them to the client's :func:`time.time` epoch without depending on the two clocks agreeing.
    """

    #: The key's algorithm.
    algorithm: Algorithm
    #: The rule's limit.
    limit: int
    #: The rule's window, microseconds.
    window_us: int
    #: The capacity (``BURST`` for gcra, else the limit).
    burst: int
    #: The server time the state refers to, microseconds since the epoch.
    now_us: int
    #: The algorithm's own fields (``window_start_us``, ``current``, ``previous`` for
    #: sliding-window; ``window_start_us``, ``count`` for fixed-window; ``tat_us`` for gcra;
    #: ``count``, ``oldest_us``, ``newest_us``, ``runs`` for moving-window; ``in_flight``,
    #: ``next_end_us``, ``last_end_us``, ``stored``, ``longest_us``, ``last_id`` for leases).
    state: Mapping[str, int] = field(default_factory=dict)
    #: When the key's penalty block (``BLOCK``) ends, server µs; 0 when it is not blocked.
    blocked_until_us: int = 0

    @property
    def window(self) -> timedelta:
        """The rule's window as a :class:`~datetime.timedelta`."""
        return timedelta(microseconds=self.window_us)

    def to_local(self, server_us: int, local_now: float) -> float:
        """Convert a server time (µs) to the client's epoch, given the client's ``time.time()``.

        The offset from ``now_us`` is kept, so clock skew between client and server cancels out.
        """
        return local_now - (self.now_us - server_us) / 1_000_000

    @classmethod
    def from_reply(cls, reply: Any) -> Inspection | None:
        """Build an inspection from a flat RESP2 array or a RESP3 map; None for nil."""
        if reply is None:
            return None
        pairs: dict[str, Any]
        if isinstance(reply, Mapping):
            pairs = {_text(k): v for k, v in reply.items()}
        else:
            items = list(reply)
            if len(items) % 2:
                raise ValueError(f"RL.INSPECT replied an odd number of items: {reply!r}")
            pairs = {_text(items[i]): items[i + 1] for i in range(0, len(items), 2)}
        algorithm = Algorithm(_text(pairs.pop("algorithm")))
        common = {name: int(pairs.pop(name)) for name in ("limit", "window_us", "burst", "now_us")}
        blocked_until_us = int(pairs.pop("blocked_until_us", 0))
        return cls(
            algorithm=algorithm,
            limit=common["limit"],
            window_us=common["window_us"],
            burst=common["burst"],
            now_us=common["now_us"],
            state={k: int(v) for k, v in pairs.items()},
            blocked_until_us=blocked_until_us,
        )


def limit_args(
    command: str,
    key: str,
    limit: int,
    window: Window,
    cost: int,
    algorithm: Algorithm | str | None,
    burst: int | None,
    block: Window | None = None,
) -> list[str | int]:
    """The arguments of ``RL.ALLOW`` / ``RL.PEEK`` (options only when they differ from defaults)."""
    args: list[str | int] = [command, key, limit, format_window(window)]
    if cost != 1:
        args += ["COST", cost]
    if algorithm is not None:
        args += ["ALGO", str(Algorithm(algorithm))]
    if burst is not None:
        args += ["BURST", burst]
    if block is not None:
        args += ["BLOCK", format_window(block)]
    return args


def all_args(command: str, limits: Sequence[Limit]) -> list[str | int]:
    """The arguments of ``RL.ALLOWALL`` / ``RL.PEEKALL``: numkeys, the keys, one group per key.

    >>> all_args("RL.ALLOWALL", [Limit("rpm:k", 60, "1m"), Limit("tpm:k", 100_000, "1m", 1500)])
    ['RL.ALLOWALL', 2, 'rpm:k', 'tpm:k', 60, '1m', 100000, '1m', 'COST', 1500]
    """
    if not limits:
        raise ValueError("give at least one Limit")
    args: list[str | int] = [command, len(limits)]
    args += [lim.key for lim in limits]
    for lim in limits:
        args += lim.args()
    return args


def settle_args(
    command: str,
    key: str,
    limit: int,
    window: Window,
    amount: int,
    algorithm: Algorithm | str | None,
    burst: int | None,
) -> list[str | int]:
    """The arguments of ``RL.CHARGE`` / ``RL.REFUND``: ``key limit window amount [options]``."""
    args: list[str | int] = [command, key, limit, format_window(window), amount]
    if algorithm is not None:
        args += ["ALGO", str(Algorithm(algorithm))]
    if burst is not None:
        args += ["BURST", burst]
    return args


def throttle_args(
    command: str,
    key: str,
    max_burst: int,
    count_per_period: int,
    period: Window,
    quantity: int,
) -> list[str | int]:
    """The arguments of ``RL.THROTTLE`` / ``CL.THROTTLE`` (quantity only when not 1)."""
    args: list[str | int] = [command, key, max_burst, count_per_period, format_window(period)]
    if quantity != 1:
        args.append(quantity)
    return args


def gcra_args(
    key: str, max_burst: int, tokens_per_period: int, period: Seconds, tokens: int
) -> list[str | int]:
    """The arguments of ``GCRA`` (``TOKENS`` only when not 1)."""
    args: list[str | int] = ["GCRA", key, max_burst, tokens_per_period, format_seconds(period)]
    if tokens != 1:
        args += ["TOKENS", tokens]
    return args
