"""Python client for the ratelimit Redis module, and limits / Flask-Limiter storages for ``rl://``.

* :class:`RateLimiter` / :class:`AsyncRateLimiter`: ``RL.ALLOW``, ``RL.PEEK``, ``RL.INSPECT``;
  several limits at once with ``RL.ALLOWALL`` / ``RL.PEEKALL`` (:class:`Limit`,
  :class:`MultiDecision`); costs settled after the work with ``RL.CHARGE`` / ``RL.REFUND``;
  the GCRA drop-ins ``RL.THROTTLE`` / ``CL.THROTTLE`` (redis-cell) and ``GCRA`` (Redis 8.8);
  and concurrency leases: ``acquire`` / ``release`` and ``with limiter.lease(key, limit, "30s")``.
* :func:`rate_limit_headers`: ``Retry-After``, ``X-RateLimit-*`` and the IETF draft fields;
  :func:`decision_from_window_stats` and :func:`merge_headers` for several limits of limits /
  Flask-Limiter / slowapi on one request.
* With limits installed (``pip install redis-ratelimit[limits]``), ``import redis_ratelimit``
  registers the ``rl://`` storage schemes (see :mod:`redis_ratelimit.limits_storage`), so a
  Flask-Limiter app needs only ``storage_uri="rl://localhost:6379"`` and this import.
"""

from __future__ import annotations

from importlib.util import find_spec

from .client import AsyncRateLimiter, RateLimiter
from .errors import (
    AlgorithmMismatchError,
    InvalidArgumentError,
    ModuleNotLoadedError,
    RateLimitError,
    WrongTypeError,
)
from .headers import decision_from_window_stats, merge_headers, rate_limit_headers
from .leases import AsyncLeaseHolder, Lease, LeaseHolder, LeaseUnavailableError
from .types import (
    Algorithm,
    Decision,
    Inspection,
    Limit,
    MultiDecision,
    Seconds,
    Throttle,
    Window,
    format_seconds,
    format_window,
)

__all__ = [
    "Algorithm",
    "AlgorithmMismatchError",
    "AsyncLeaseHolder",
    "AsyncRateLimiter",
    "Decision",
    "Inspection",
    "InvalidArgumentError",
    "Lease",
    "LeaseHolder",
    "LeaseUnavailableError",
    "Limit",
    "ModuleNotLoadedError",
    "MultiDecision",
    "RateLimitError",
    "RateLimiter",
    "Seconds",
    "Throttle",
    "Window",
    "WrongTypeError",
    "decision_from_window_stats",
    "format_seconds",
    "format_window",
    "merge_headers",
    "rate_limit_headers",
]

__version__ = "0.1.0"

# limits registers storages when their classes are defined: importing the module is the
# registration. Without limits the client works alone.
if find_spec("limits") is not None:
    from . import limits_storage  # noqa: F401
