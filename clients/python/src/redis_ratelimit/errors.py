"""Typed exceptions for the module's error replies.

Each subclasses :class:`redis.exceptions.ResponseError`, so code that already catches redis-py's
errors (and limits' ``wrap_exceptions``) keeps working.
"""

from __future__ import annotations

import re

from redis.exceptions import ResponseError

__all__ = [
    "AlgorithmMismatchError",
    "InvalidArgumentError",
    "ModuleNotLoadedError",
    "RateLimitError",
    "WrongTypeError",
    "from_response_error",
]


class RateLimitError(ResponseError):
    """An error reply from an ``RL.*`` command."""


class WrongTypeError(RateLimitError):
    """The key holds a value of another type (``WRONGTYPE``): not a ``ratelimit`` key."""


class AlgorithmMismatchError(RateLimitError):
    """The key holds a limiter of another algorithm; ``DEL`` it to switch algorithms."""


class InvalidArgumentError(RateLimitError):
    """A limit, window, cost, burst or option the module refuses."""


class ModuleNotLoadedError(RateLimitError):
    """The server does not know the command: the ratelimit module is not loaded (or too old)."""

    def __init__(self, message: str, command: str) -> None:
        super().__init__(message)
        #: The command the server did not know, upper-case (``RL.ALLOW``).
        self.command = command


_UNKNOWN_COMMAND = re.compile(r"unknown command [`']([^`']*)[`']", re.IGNORECASE)
_UNKNOWN_ALGO = re.compile(r"^unknown ALGO '([^']*)'")
_MISMATCH = re.compile(r"^key holds a \S+ limiter, not ")


def unknown_command(exc: BaseException | str) -> str | None:
    """Return the command name if *exc* is the server's "unknown command" error, else None."""
    match = _UNKNOWN_COMMAND.search(str(exc))
    return match.group(1).upper() if match else None


def unknown_algorithm(exc: BaseException | str) -> str | None:
    """Return the algorithm name if *exc* is the module's "unknown ALGO" error, else None."""
    match = _UNKNOWN_ALGO.match(str(exc))
    return match.group(1) if match else None


def is_wrong_type(exc: BaseException | str) -> bool:
    """Whether *exc* is a ``WRONGTYPE`` reply (redis-py strips the ``ERR`` but keeps others)."""
    return str(exc).startswith("WRONGTYPE")


def from_response_error(exc: ResponseError) -> ResponseError:
    """Map a redis-py :class:`ResponseError` from an ``RL.*`` command to its typed exception.

    Errors that are not the module's (a connection-level ``NOAUTH``, ``READONLY``, …) come back
    unchanged.
    """
    if isinstance(exc, RateLimitError):
        return exc
    message = str(exc)
    if is_wrong_type(exc):
        return WrongTypeError(message)
    command = unknown_command(exc)
    if command is not None:
        return ModuleNotLoadedError(message, command)
    if _MISMATCH.match(message):
        return AlgorithmMismatchError(message)
    if message.startswith(("READONLY", "NOAUTH", "NOPERM", "MOVED", "ASK", "LOADING", "OOM")):
        return exc
    if message.startswith("internal error in ratelimit"):
        return RateLimitError(message)
    if "wrong number of arguments" in message or _is_argument_error(message):
        return InvalidArgumentError(message)
    return exc


# RL.ALLOWALL: "2 keys need 2 rule groups (...), got 3".
_GROUP_COUNT = re.compile(r"\d+ keys need \d+ rule groups")


def _is_argument_error(message: str) -> bool:
    prefixes = (
        "limit must be",
        "window must be",
        "COST ",
        "BURST ",
        "ALGO ",
        "unknown ALGO",
        "unknown option",
        "gcra ",
        # RL.ALLOWALL / RL.PEEKALL / RL.CHARGE / RL.REFUND / BLOCK
        "numkeys ",
        "group ",
        "key '",
        "the amount must be",
        "BLOCK ",
        # RL.THROTTLE / CL.THROTTLE / GCRA
        "max_burst must be",
        "count_per_period must be",
        "tokens_per_period must be",
        "period must be",
        "quantity must be",
        "TOKENS ",
        "(max_burst + 1)",
        # RL.ACQUIRE / RL.RELEASE
        "lease must be",
        "id must be",
        "ID ",
    )
    return message.startswith(prefixes) or _GROUP_COUNT.match(message) is not None
