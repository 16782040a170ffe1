"""HTTP response headers for a :class:`~redis_ratelimit.types.Decision`.

Three families, each optional:

* ``Retry-After`` (RFC 9110), on denials only: whole seconds, rounded up;
* the classic ``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` (``Reset`` is the Unix time in
  whole seconds at which the limiter is full again, as GitHub's API and Flask-Limiter send it);
* the IETF draft fields (draft-ietf-httpapi-ratelimit-headers-09) ``RateLimit-Policy:
  "name";q=<quota>;w=<window seconds>`` and ``RateLimit: "name";r=<remaining>;t=<seconds>``.

Several limits on one request (Flask-Limiter's ``current_limits``, slowapi's limits): one
:class:`Decision` each, from limits' ``WindowStats`` by :func:`decision_from_window_stats`, one
header set each, and :func:`merge_headers` lists every policy in the IETF fields.

>>> from redis_ratelimit.types import Decision
>>> d = Decision(allowed=False, capacity=10, remaining=0, retry_after=1.2, reset_after=42.5)
>>> rate_limit_headers(d, window=60, now=1_700_000_000.0)  # doctest: +NORMALIZE_WHITESPACE
{'Retry-After': '2', 'X-RateLimit-Limit': '10', 'X-RateLimit-Remaining': '0',
 'X-RateLimit-Reset': '1700000043', 'RateLimit-Policy': '"default";q=10;w=60',
 'RateLimit': '"default";r=0;t=2'}
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from datetime import timedelta

from .types import Decision

__all__ = ["decision_from_window_stats", "merge_headers", "rate_limit_headers"]


def _sf_string(value: str) -> str:
    if not value.isascii() or not value.isprintable():
        raise ValueError(f"policy name must be printable ASCII: {value!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ceil_seconds(seconds: float) -> int:
    # The module's durations are whole milliseconds: 1.0 s must stay 1, never 2.
    return max(0, math.ceil(round(seconds, 3)))


def _window_seconds(window: int | float | timedelta) -> int:
    seconds = window.total_seconds() if isinstance(window, timedelta) else float(window)
    return max(1, _ceil_seconds(seconds))


def rate_limit_headers(
    decision: Decision,
    *,
    window: int | float | timedelta | None = None,
    quota: int | None = None,
    policy: str = "default",
    now: float | None = None,
    classic: bool = True,
    ietf: bool = True,
) -> dict[str, str]:
    """Return the response headers for *decision*, as a ``{name: value}`` dict.

    :param decision: what ``allow`` (or ``peek``) answered.
    :param window: the rule's window (seconds or timedelta); needed for ``RateLimit-Policy``,
        which is left out without it.
    :param quota: ``q`` of ``RateLimit-Policy`` (default: the decision's capacity).
    :param policy: the policy's name in the IETF fields.
    :param now: the Unix time for ``X-RateLimit-Reset`` (default :func:`time.time`).
    :param classic: emit ``X-RateLimit-*``.
    :param ietf: emit ``RateLimit`` / ``RateLimit-Policy``.

    ``t`` in ``RateLimit`` is the seconds until the request could pass again when denied
    (``Retry-After``), else until the limiter is full. A request that can never pass (cost above
    the capacity) gets no ``Retry-After``.
    """
    headers: dict[str, str] = {}
    never = math.isinf(decision.retry_after)
    if not decision.allowed and not never:
        headers["Retry-After"] = str(max(1, _ceil_seconds(decision.retry_after)))
    if classic:
        now = time.time() if now is None else now
        headers["X-RateLimit-Limit"] = str(decision.capacity)
        headers["X-RateLimit-Remaining"] = str(decision.remaining)
        headers["X-RateLimit-Reset"] = str(math.ceil(now + decision.reset_after))
    if ietf:
        name = _sf_string(policy)
        if window is not None:
            q = decision.capacity if quota is None else quota
            headers["RateLimit-Policy"] = f"{name};q={q};w={_window_seconds(window)}"
        if not decision.allowed and not never:
            t = max(1, _ceil_seconds(decision.retry_after))
        else:
            t = _ceil_seconds(decision.reset_after)
        headers["RateLimit"] = f"{name};r={decision.remaining};t={t}"
    return headers


def decision_from_window_stats(
    limit: int,
    window_stats: tuple[float, int],
    *,
    breached: bool = False,
    now: float | None = None,
) -> Decision:
    """A :class:`Decision` from limits' ``WindowStats`` ``(reset_time, remaining)``.

    :param limit: the limit's amount (limits' ``RateLimitItem.amount``).
    :param window_stats: what the strategy's ``get_window_stats`` returned (``reset_time`` as a
        Unix time).
    :param breached: the request was denied by this limit (Flask-Limiter's
        ``RequestLimit.breached``): ``retry_after`` is then the time until the reset.
    :param now: the Unix time ``reset_time`` is measured from (default :func:`time.time`).

    >>> decision_from_window_stats(10, (1_700_000_030.5, 0), breached=True, now=1_700_000_000.0)
    Decision(allowed=False, capacity=10, remaining=0, retry_after=30.5, reset_after=30.5)
    """
    now = time.time() if now is None else now
    reset_time, remaining = window_stats
    reset_after = max(0.0, reset_time - now)
    return Decision(
        allowed=not breached,
        capacity=limit,
        remaining=max(0, remaining),
        retry_after=reset_after if breached else 0.0,
        reset_after=reset_after,
    )


_LISTS = ("RateLimit-Policy", "RateLimit")


def merge_headers(*header_sets: Mapping[str, str]) -> dict[str, str]:
    """Merge the header sets of several limits on one request into one.

    ``RateLimit-Policy`` and ``RateLimit`` are lists in the IETF draft: every set's item, in the
    order given (give each limit its own ``policy`` name). ``Retry-After`` is the longest wait.
    The other fields (``X-RateLimit-*``) come from the first set that has them: put the limit
    they should describe (the breached or most restrictive one) first.

    >>> a = {"X-RateLimit-Limit": "3", "RateLimit": '"a";r=0;t=4', "Retry-After": "4"}
    >>> b = {"X-RateLimit-Limit": "10", "RateLimit": '"b";r=6;t=50'}
    >>> merge_headers(a, b)  # doctest: +NORMALIZE_WHITESPACE
    {'X-RateLimit-Limit': '3', 'RateLimit': '"a";r=0;t=4, "b";r=6;t=50', 'Retry-After': '4'}
    """
    merged: dict[str, str] = {}
    for headers in header_sets:
        for name, value in headers.items():
            if name not in merged:
                merged[name] = value
            elif name in _LISTS:
                merged[name] = f"{merged[name]}, {value}"
            elif name == "Retry-After":
                merged[name] = str(max(int(merged[name]), int(value)))
    return merged
