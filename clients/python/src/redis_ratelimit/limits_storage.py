"""limits storages for ``rl://`` URIs: limits' own Redis storages, with the module's commands.

Importing :mod:`redis_ratelimit` registers, through limits' storage registry:

=========================  ====================================================================
scheme                     class (a subclass of limits' storage of the same kind)
=========================  ====================================================================
``rl://``, ``rls://``,     :class:`RateLimitStorage` (:class:`limits.storage.RedisStorage`)
``rl+unix://``
``rl+cluster://``          :class:`RateLimitClusterStorage` (``RedisClusterStorage``)
``rl+sentinel://``         :class:`RateLimitSentinelStorage` (``RedisSentinelStorage``)
``async+rl://``, …         :class:`AsyncRateLimitStorage` (:class:`limits.aio.storage.RedisStorage`)
``async+rl+cluster://``    :class:`AsyncRateLimitClusterStorage`
``async+rl+sentinel://``   :class:`AsyncRateLimitSentinelStorage`
=========================  ====================================================================

The URI is the ``redis`` one with ``rl`` in place of ``redis``; every option, ``key_prefix``,
``wrap_exceptions``, ``check()``, ``clear()`` and the ``.storage`` client are limits' own. The
asyncio storages run on any of limits' three asyncio clients (``implementation="redispy"``, the
default here, ``"coredis"``, limits' default, or ``"valkey"``).

What each storage method sends (``K`` = ``key_prefix:key``, ``MAX`` = 2^63 - 1):

* fixed window ``incr(key, expiry, amount)``: ``RL.ALLOW K MAX expiry COST amount ALGO
  fixed-window`` and returns ``MAX - remaining``, the window's count. A limit no count reaches
  makes the module count every hit, denied ones too, in a window that starts at the first hit:
  limits' ``INCRBY`` + ``EXPIRE`` on the first hit, in one command.
* ``get(key)``: the count from ``RL.INSPECT K`` (or, on a module without it, ``RL.PEEK K MAX
  365d COST 0 ALGO fixed-window``: a longer window keeps the running window and its count).
* ``get_expiry(key)``, ``clear(key)``: limits' ``TTL`` and ``DEL``, which work on any key.
* moving window, when the module has ``ALGO moving-window`` and ``RL.INSPECT``:
  ``acquire_entry`` is ``RL.ALLOW K limit expiry COST amount ALGO moving-window``;
  ``get_moving_window`` reads ``count`` and ``oldest_us`` from ``RL.INSPECT K`` and converts the
  server time to the client's clock through the reply's ``now_us``. A module without them (an
  older build) gets limits' Lua.
* sliding window counter, when the module has ``ALGO limits-sliding-window`` and ``RL.INSPECT``
  (limits' own algorithm, exactly; one key, ``prefix:{key}``, the name of limits' current
  counter): ``acquire_sliding_window_entry`` is ``RL.ALLOW K limit expiry COST amount ALGO
  limits-sliding-window``; ``get_sliding_window`` reads the two counters and their TTLs from
  ``RL.INSPECT K`` and, when the key exists, stores the shift limits' read makes with ``RL.ALLOW
  … COST 0`` (2 commands; 1 when the key does not exist or its counters have just expired);
  ``clear_sliding_window`` is one ``DEL`` of the module's key and limits' previous-window key.
  A hit of cost 0 is ``RL.ALLOW … COST 0`` too: for this algorithm it is limits' acquire of 0
  (on a limiter without a current counter it starts one at 0, which anchors the next windows).
* ``reset()``: ``SCAN MATCH <prefix>:*`` and ``DEL`` (never ``KEYS``).

Limits the module does not take run limits' own Lua scripts, decided by the limit alone so a
key never changes hands: windows above 365 days (the module's longest, e.g. ``1/2 year``) and
moving windows and sliding window counters of limit 0.

When the server does not know ``RL.ALLOW`` (managed Redis often refuses modules) the storage warns
with :class:`ModuleNotLoadedWarning` and runs limits' Lua scripts for everything, exactly as
``redis://``. A key that still holds limits' plain value (written before the switch from
``redis://``: a fixed window's counter, a sliding window counter's current counter) answers the
module's command ``WRONGTYPE`` and is served by limits' script until it expires. What the
server offers is probed again after a connection error, an ``unknown command`` reply, and every
``probe_interval`` seconds while the module is missing: after a failover between servers with
and without the module the storage follows without a restart.

Each method is written once, as a generator of the commands it needs (:class:`_Command`) or of
limits' own method to fall back to (:class:`_Limits`); a sync and an asyncio driver run it on
the storage's client, so the sync and asyncio storages share one body.
"""

from __future__ import annotations

import re
import threading
import time
import warnings
from collections.abc import Generator
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

import limits.aio.storage
import limits.storage
import redis.exceptions
from limits.errors import ConfigurationError

from .errors import AlgorithmMismatchError, is_wrong_type, unknown_algorithm, unknown_command
from .types import Algorithm, Inspection

__all__ = [
    "DEFAULT_PROBE_INTERVAL",
    "MAX_MODULE_WINDOW",
    "AsyncRateLimitClusterStorage",
    "AsyncRateLimitSentinelStorage",
    "AsyncRateLimitStorage",
    "ModuleNotLoadedWarning",
    "ModuleSupport",
    "RateLimitClusterStorage",
    "RateLimitSentinelStorage",
    "RateLimitStorage",
]

#: A limit no count reaches: the module then counts every hit, as limits' INCRBY does.
MAX_LIMIT = (1 << 63) - 1
#: The longest window the module takes, in seconds (its ``MAX_WINDOW_US``, 365 days); longer
#: windows run limits' Lua scripts.
MAX_MODULE_WINDOW = 365 * 24 * 3600
#: Seconds between probes while the module is missing (or lacks a command the storage uses).
DEFAULT_PROBE_INTERVAL = 10.0
#: The key the capability probe names; its commands (``COST 0`` of moving-window, ``RL.PEEK``,
#: ``RL.INSPECT``) never create it.
PROBE_KEY = "__redis_ratelimit_probe__"
#: The module's ALGO for limits' sliding window counter.
LIMITS_SLIDING = "limits-sliding-window"

T = TypeVar("T")


class ModuleNotLoadedWarning(UserWarning):
    """The server behind an ``rl://`` URI lacks the module: limits' Lua scripts are used."""


@dataclass(frozen=True)
class ModuleSupport:
    """What the server's module offers, learnt by a read-only probe."""

    #: ``RL.ALLOW`` exists.
    loaded: bool
    #: ``RL.INSPECT`` exists.
    inspect: bool
    #: ``ALGO moving-window`` and ``RL.INSPECT`` exist: moving windows use the module.
    moving_window: bool
    #: ``ALGO limits-sliding-window`` and ``RL.INSPECT`` exist: sliding window counters use the
    #: module.
    limits_sliding: bool = False

    @property
    def complete(self) -> bool:
        """Everything the storage uses is there: no periodic probe needed."""
        return self.loaded and self.inspect and self.moving_window and self.limits_sliding


_NOT_LOADED = ModuleSupport(loaded=False, inspect=False, moving_window=False)


# ---------------------------------------------------------------------------------------------
# What an operation yields, and what it gets thrown


@dataclass(frozen=True)
class _Command:
    """Send one command; the operation receives the client's reply."""

    args: tuple[str | int | bytes, ...]
    #: May go to a replica (limits' ``get_connection(readonly=True)``).
    readonly: bool = False


@dataclass(frozen=True)
class _Limits:
    """Run limits' own storage method (its Lua scripts); the operation receives its result."""

    method: str
    args: tuple[Any, ...]


_Step = _Command | _Limits
_Op = Generator[_Step, Any, T]


class _ReplyError(Exception):
    """An error reply, whichever client raised it (redis-py, valkey, coredis)."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original))
        #: The client's own exception, raised to the caller when the operation lets it go.
        self.original = original
        message = str(original)
        # coredis drops the WRONGTYPE code from its WrongTypeError's message.
        self.wrong_type = is_wrong_type(message) or "wrong kind of value" in message
        # redis-py's cluster client refuses a command its COMMAND table lacks before sending it.
        self.unknown_command = unknown_command(message) is not None or (
            "command doesn't exist in Redis commands" in message
        )
        self.unknown_algorithm = unknown_algorithm(message) is not None


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def _to_redis_uri(uri: str) -> str:
    """``rl://…`` → ``redis://…`` (``rls`` → ``rediss``, ``async+rl+cluster`` → …)."""
    match = re.match(r"^(async\+)?rl(s)?(\+unix|\+cluster|\+sentinel)?://", uri)
    if not match:
        raise ConfigurationError(f"not an rl:// storage URI: {uri}")
    asynchronous, tls, variant = match.groups()
    scheme = f"{asynchronous or ''}redis{tls or ''}{variant or ''}://"
    return scheme + uri[match.end() :]


def _warn_not_loaded(uri: str) -> None:
    warnings.warn(
        f"the ratelimit module is not loaded on the server of {uri!r}: RL.ALLOW is unknown. "
        "Using limits' Lua scripts, as redis:// does (load the module for one command per hit).",
        ModuleNotLoadedWarning,
        stacklevel=5,
    )


def _module_window(expiry: int) -> bool:
    return 0 < expiry <= MAX_MODULE_WINDOW


def _fixed_window_count_from_inspect(reply: Any) -> int:
    inspection = Inspection.from_reply(reply)
    if inspection is None:
        return 0
    if inspection.algorithm is not Algorithm.FIXED_WINDOW:
        raise AlgorithmMismatchError(
            f"key holds a {inspection.algorithm} limiter, not fixed-window"
        )
    return inspection.state["count"]


def _moving_window_from_inspect(reply: Any, now: float) -> tuple[float, int]:
    inspection = Inspection.from_reply(reply)
    if inspection is None:
        return now, 0
    if inspection.algorithm is not Algorithm.MOVING_WINDOW:
        raise AlgorithmMismatchError(
            f"key holds a {inspection.algorithm} limiter, not moving-window"
        )
    count = inspection.state["count"]
    if count == 0:
        return now, 0
    return inspection.to_local(inspection.state["oldest_us"], now), count


def _sliding_window_from_inspection(
    inspection: Inspection | None,
) -> tuple[int, float, int, float]:
    if inspection is None:
        return 0, 0.0, 0, 0.0
    if inspection.algorithm is not Algorithm.LIMITS_SLIDING_WINDOW:
        raise AlgorithmMismatchError(
            f"key holds a {inspection.algorithm} limiter, not {LIMITS_SLIDING}"
        )
    state = inspection.state
    return (
        int(state["previous"]),
        max(0, int(state["previous_ttl_ms"])) / 1000,
        int(state["current"]),
        max(0, int(state["current_ttl_ms"])) / 1000,
    )


# RL.PEEK with a longer window keeps a running fixed window and its count (README: changing a
# rule); the key itself expires when its real window ends.
_PEEK_COUNT = (MAX_LIMIT, "365d", "COST", 0, "ALGO", "fixed-window")


# ---------------------------------------------------------------------------------------------
# The operations, once for sync and asyncio


class _Operations:
    """The storage methods as generators; the sync and asyncio mixins drive them."""

    _rl_uri: str = ""
    _rl_probe_interval: float = DEFAULT_PROBE_INTERVAL
    _rl_support: ModuleSupport | None = None
    _rl_next_probe: float = 0.0
    # Whether the last probe found the module (None before the first): warn on a change to "no".
    _rl_was_loaded: bool | None = None
    _rl_lock = threading.Lock()

    def _rl_init(self, uri: str, probe_interval: float) -> None:
        if not probe_interval > 0:
            raise ConfigurationError(f"probe_interval must be positive, got {probe_interval!r}")
        self._rl_uri = uri
        self._rl_probe_interval = float(probe_interval)

    def _key(self, key: str) -> str:
        raise NotImplementedError

    def _forget_support(self) -> None:
        """The server may have changed (a connection error, a failover): probe again."""
        self._rl_support = None

    def _store_support(self, support: ModuleSupport) -> None:
        with self._rl_lock:
            self._rl_support = support
            self._rl_next_probe = time.monotonic() + self._rl_probe_interval
            warn = not support.loaded and self._rl_was_loaded is not False
            self._rl_was_loaded = support.loaded
        if warn:
            _warn_not_loaded(self._rl_uri)

    def _support_op(self) -> _Op[ModuleSupport]:
        support = self._rl_support
        if support is None or (not support.complete and time.monotonic() >= self._rl_next_probe):
            support = yield from self._probe_op()
            self._store_support(support)
        return support

    def _probe_op(self) -> _Op[ModuleSupport]:
        key = self._key(PROBE_KEY)
        moving = sliding = True
        try:
            # COST 0 writes nothing, but RL.ALLOW is a write command: a replica refuses it, so
            # a connection left on a demoted master after a failover is dropped (redis-py's
            # sentinel client reconnects to the new master) instead of answering for it.
            yield _Command(("RL.ALLOW", key, 1, 1, "COST", 0, "ALGO", "moving-window"))
        except _ReplyError as err:
            if err.unknown_command:
                return _NOT_LOADED
            if not err.unknown_algorithm:
                raise
            moving = False
        try:
            # RL.PEEK: for this algorithm RL.ALLOW … COST 0 writes (limits' acquire of 0).
            yield _Command(("RL.PEEK", key, 1, 1, "ALGO", LIMITS_SLIDING))
        except _ReplyError as err:
            if not err.unknown_algorithm:
                raise
            sliding = False
        try:
            yield _Command(("RL.INSPECT", key))
            inspect = True
        except _ReplyError as err:
            if not err.unknown_command:
                raise
            inspect = False
        return ModuleSupport(
            loaded=True,
            inspect=inspect,
            moving_window=moving and inspect,
            limits_sliding=sliding and inspect,
        )

    def _module_refused(self, err: _ReplyError) -> None:
        """Decide what an error reply from a module command means: Lua for this call, or raise.

        ``WRONGTYPE``: the key holds limits' own value (written by ``redis://``), limits' script
        serves it. ``unknown command`` / ``unknown ALGO``: the server changed under us (a
        failover to a server without the module, or with an older one): probe again.
        """
        if err.unknown_command or err.unknown_algorithm:
            self._forget_support()
        elif not err.wrong_type:
            raise err

    def _read_op(self, args: tuple[str | int, ...]) -> _Op[Any]:
        """Read from a replica where limits reads from one (the primary if it lacks the module)."""
        try:
            return (yield _Command(args, readonly=True))
        except _ReplyError as err:
            if not err.unknown_command:
                raise
        return (yield _Command(args))

    def _incr_op(self, key: str, expiry: int, amount: int) -> _Op[int]:
        support = yield from self._support_op()
        if support.loaded and _module_window(expiry):
            args = ("RL.ALLOW", self._key(key), MAX_LIMIT, expiry, "COST", amount)
            try:
                reply = yield _Command((*args, "ALGO", "fixed-window"))
            except _ReplyError as err:
                self._module_refused(err)
            else:
                return MAX_LIMIT - int(reply[2])
        return int((yield _Limits("incr", (key, expiry, amount))))

    def _get_op(self, key: str) -> _Op[int]:
        support = yield from self._support_op()
        if support.loaded:
            pkey = self._key(key)
            try:
                if support.inspect:
                    reply = yield from self._read_op(("RL.INSPECT", pkey))
                    return _fixed_window_count_from_inspect(reply)
                reply = yield from self._read_op(("RL.PEEK", pkey, *_PEEK_COUNT))
                return MAX_LIMIT - int(reply[2])
            except _ReplyError as err:
                # WRONGTYPE also for limits' own keys of windows above MAX_MODULE_WINDOW.
                self._module_refused(err)
        return int((yield _Limits("get", (key,))))

    def _acquire_entry_op(self, key: str, limit: int, expiry: int, amount: int) -> _Op[bool]:
        support = yield from self._support_op()
        if support.moving_window and limit > 0 and _module_window(expiry):
            args = ("RL.ALLOW", self._key(key), limit, expiry, "COST", amount)
            try:
                reply = yield _Command((*args, "ALGO", "moving-window"))
            except _ReplyError as err:
                self._module_refused(err)
            else:
                return int(reply[0]) == 1
        return bool((yield _Limits("acquire_entry", (key, limit, expiry, amount))))

    def _get_moving_window_op(self, key: str, limit: int, expiry: int) -> _Op[tuple[float, int]]:
        support = yield from self._support_op()
        if support.moving_window and limit > 0 and _module_window(expiry):
            try:
                reply = yield from self._read_op(("RL.INSPECT", self._key(key)))
            except _ReplyError as err:
                self._module_refused(err)
            else:
                return _moving_window_from_inspect(reply, time.time())
        window = yield _Limits("get_moving_window", (key, limit, expiry))
        return cast(tuple[float, int], window)

    def _sliding_key(self, key: str) -> str:
        """The module's key of a sliding window counter: limits' *current* counter's name.

        ``prefix:{key}``: a plain counter left by ``redis://`` answers WRONGTYPE (limits' script
        serves it until it expires), and the key keeps limits' cluster slot.
        """
        return self._key(f"{{{key}}}")

    def _acquire_sliding_window_op(
        self, key: str, limit: int, expiry: int, amount: int
    ) -> _Op[bool]:
        support = yield from self._support_op()
        if support.limits_sliding and limit > 0 and _module_window(expiry):
            # COST 0 included: the module's COST 0 is limits' acquire of 0 for this algorithm
            # (on a limiter without a current counter it starts one at 0, as limits' script).
            args = ("RL.ALLOW", self._sliding_key(key), limit, expiry, "COST", amount)
            try:
                reply = yield _Command((*args, "ALGO", LIMITS_SLIDING))
            except _ReplyError as err:
                self._module_refused(err)
            else:
                return int(reply[0]) == 1
        return bool((yield _Limits("acquire_sliding_window_entry", (key, limit, expiry, amount))))

    def _get_sliding_window_op(self, key: str, expiry: int) -> _Op[tuple[int, float, int, float]]:
        support = yield from self._support_op()
        if support.limits_sliding and _module_window(expiry):
            name = self._sliding_key(key)
            try:
                # The counters after the shift an access now makes (nil: no limiter) ...
                inspection = Inspection.from_reply((yield _Command(("RL.INSPECT", name))))
                window = _sliding_window_from_inspection(inspection)
                if inspection is not None and window[3] > 0:
                    # ... and limits' read stores that shift (a write): COST 0 does, under
                    # the stored limit (the shift ignores the limit; limits' read has none).
                    # Not when no current counter is alive (a key in the ms its counters
                    # expired): limits' read then changes nothing, while COST 0 — limits'
                    # acquire of 0 — would start a current counter.
                    rule = (inspection.limit, expiry, "COST", 0, "ALGO", LIMITS_SLIDING)
                    yield _Command(("RL.ALLOW", name, *rule))
            except _ReplyError as err:
                self._module_refused(err)
            else:
                return window
        window = yield _Limits("get_sliding_window", (key, expiry))
        return cast(tuple[int, float, int, float], window)

    def _clear_sliding_window_op(self, key: str, expiry: int) -> _Op[None]:
        # The module's key is limits' current counter's name: one DEL for both layouts
        # (limits' two keys share a slot).
        previous = self._key(f"{{{key}}}/-1")
        yield _Command(("DEL", self._sliding_key(key), previous))

    def _reset_op(self) -> _Op[int]:
        pattern = _glob_escape(self._key("")) + "*"
        deleted = 0
        cursor = 0
        while True:
            # redis-py parses SCAN into (int, list); coredis returns the raw [b"0", [...]].
            reply = yield _Command(("SCAN", cursor, "MATCH", pattern, "COUNT", 1000))
            cursor, names = int(reply[0]), list(reply[1])
            if names:
                deleted += int((yield _Command(("DEL", *names))))
            if cursor == 0:
                return deleted


def _reply_errors(exceptions: ModuleType) -> tuple[type[BaseException], ...]:
    found = [getattr(exceptions, "ResponseError", None), getattr(exceptions, "ClusterError", None)]
    found.append(getattr(exceptions, "RedisClusterException", None))
    return tuple(c for c in found if isinstance(c, type))


def _connection_errors(exceptions: ModuleType) -> tuple[type[BaseException], ...]:
    names = ("ConnectionError", "TimeoutError", "ReadOnlyError")
    found = (getattr(exceptions, name, None) for name in names)
    return tuple(c for c in found if isinstance(c, type))


# ---------------------------------------------------------------------------------------------
# sync

if TYPE_CHECKING:
    _SyncBase = limits.storage.RedisStorage
    _AsyncBase = limits.aio.storage.RedisStorage
else:
    _SyncBase = object
    _AsyncBase = object

_SYNC_REPLY_ERRORS = _reply_errors(redis.exceptions)
_SYNC_CONNECTION_ERRORS = _connection_errors(redis.exceptions)


class _SyncModuleMethods(_Operations, _SyncBase):
    """The module-backed storage methods, mixed into each of limits' sync Redis storages."""

    def _key(self, key: str) -> str:
        return self.prefixed_key(key)

    def _step(self, step: _Step) -> Any:
        if isinstance(step, _Limits):
            return getattr(super(), step.method)(*step.args)
        return cast(Any, self.get_connection(step.readonly)).execute_command(*step.args)

    def _run(self, op: _Op[T]) -> T:
        """Drive *op*: send its commands, throw error replies into it, return its result."""
        try:
            step = next(op)
            while True:
                try:
                    reply = self._step(step)
                except _SYNC_REPLY_ERRORS as exc:
                    if isinstance(exc, _SYNC_CONNECTION_ERRORS):
                        self._forget_support()
                    step = op.throw(_ReplyError(exc))
                except _SYNC_CONNECTION_ERRORS:
                    self._forget_support()
                    raise
                else:
                    step = op.send(reply)
        except StopIteration as stop:
            return cast(T, stop.value)
        except _ReplyError as err:
            raise err.original from None

    def module_support(self) -> ModuleSupport:
        """What the server's module offers (probed with two commands that write nothing)."""
        return self._run(self._support_op())

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add *amount* to the fixed window's count (a window starts at its first hit)."""
        return self._run(self._incr_op(key, expiry, amount))

    def get(self, key: str) -> int:
        """The fixed window's count (0 when no window runs)."""
        return self._run(self._get_op(key))

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Admit *amount* entries iff the moving window's count plus *amount* fits *limit*."""
        return self._run(self._acquire_entry_op(key, limit, expiry, amount))

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """(time of the oldest entry in the window, entries in the window), client clock."""
        return self._run(self._get_moving_window_op(key, limit, expiry))

    def acquire_sliding_window_entry(
        self, key: str, limit: int, expiry: int, amount: int = 1
    ) -> bool:
        """Admit *amount* iff limits' weighted count plus *amount* fits *limit*."""
        return self._run(self._acquire_sliding_window_op(key, limit, expiry, amount))

    def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        """(previous count, its TTL, current count, its TTL), TTLs in seconds, after the shift."""
        return self._run(self._get_sliding_window_op(key, expiry))

    def clear_sliding_window(self, key: str, expiry: int) -> None:
        """Delete the limiter (the module's key or limits' two keys)."""
        self._run(self._clear_sliding_window_op(key, expiry))

    def reset(self) -> int | None:
        """Delete every key under ``key_prefix`` with ``SCAN`` + ``DEL``; the number deleted."""
        return self._run(self._reset_op())


class RateLimitStorage(_SyncModuleMethods, limits.storage.RedisStorage):
    """limits' :class:`~limits.storage.RedisStorage` for ``rl://``, ``rls://``, ``rl+unix://``."""

    STORAGE_SCHEME = ["rl", "rls", "rl+unix"]

    def __init__(
        self,
        uri: str,
        connection_pool: Any = None,
        key_prefix: str = limits.storage.RedisStorage.PREFIX,
        wrap_exceptions: bool = False,
        probe_interval: float = DEFAULT_PROBE_INTERVAL,
        **options: float | str | bool,
    ) -> None:
        """Take limits' ``redis://`` arguments, with ``rl`` in place of ``redis`` in *uri*.

        :param probe_interval: seconds between probes for the module while it is missing.
        """
        self._rl_init(uri, probe_interval)
        super().__init__(
            _to_redis_uri(uri),
            connection_pool=connection_pool,
            key_prefix=key_prefix,
            wrap_exceptions=wrap_exceptions,
            **options,
        )


class RateLimitClusterStorage(_SyncModuleMethods, limits.storage.RedisClusterStorage):
    """limits' :class:`~limits.storage.RedisClusterStorage` for ``rl+cluster://host:port,…``."""

    STORAGE_SCHEME = ["rl+cluster"]

    def __init__(
        self,
        uri: str,
        key_prefix: str = limits.storage.RedisStorage.PREFIX,
        wrap_exceptions: bool = False,
        probe_interval: float = DEFAULT_PROBE_INTERVAL,
        **options: float | str | bool,
    ) -> None:
        """Take limits' ``redis+cluster://`` arguments (and *probe_interval*)."""
        self._rl_init(uri, probe_interval)
        super().__init__(
            _to_redis_uri(uri), key_prefix=key_prefix, wrap_exceptions=wrap_exceptions, **options
        )

    def reset(self) -> int | None:
        """``SCAN`` every primary and ``DEL`` each key (keys of one DEL must share a slot)."""
        conn = cast(Any, self.storage)
        pattern = _glob_escape(self.prefixed_key("")) + "*"
        return sum(int(conn.delete(name)) for name in conn.scan_iter(match=pattern, count=1000))


class RateLimitSentinelStorage(_SyncModuleMethods, limits.storage.RedisSentinelStorage):
    """limits' :class:`~limits.storage.RedisSentinelStorage` for ``rl+sentinel://h:p,…/service``.

    Reads (``get``, ``get_moving_window``, ``get_expiry``) go to a replica when ``use_replicas``
    (limits' default), as with ``redis+sentinel://``; a replica without the module sends the
    module's reads to the primary.
    """

    STORAGE_SCHEME = ["rl+sentinel"]

    def __init__(
        self,
        uri: str,
        service_name: str | None = None,
        use_replicas: bool = True,
        sentinel_kwargs: dict[str, float | str | bool] | None = None,
        key_prefix: str = limits.storage.RedisStorage.PREFIX,
        wrap_exceptions: bool = False,
        probe_interval: float = DEFAULT_PROBE_INTERVAL,
        **options: float | str | bool,
    ) -> None:
        """Take limits' ``redis+sentinel://`` arguments (and *probe_interval*)."""
        self._rl_init(uri, probe_interval)
        super().__init__(
            _to_redis_uri(uri),
            service_name=service_name,
            use_replicas=use_replicas,
            sentinel_kwargs=sentinel_kwargs,
            key_prefix=key_prefix,
            wrap_exceptions=wrap_exceptions,
            **options,
        )


# ---------------------------------------------------------------------------------------------
# asyncio

Implementation = Literal["redispy", "coredis", "valkey"]


class _AsyncModuleMethods(_Operations, _AsyncBase):
    """The module-backed storage methods, mixed into each of limits' asyncio Redis storages."""

    _rl_reply_errors: tuple[type[BaseException], ...] = ()
    _rl_connection_errors: tuple[type[BaseException], ...] = ()
    _rl_coredis: bool = False

    def _rl_bind_client(self) -> None:
        """Learn the client library limits chose (its bridge) after limits' ``__init__``."""
        dependency = cast(Any, self.bridge).dependency
        self._rl_coredis = dependency.__name__ == "coredis"
        self._rl_reply_errors = _reply_errors(dependency.exceptions)
        self._rl_connection_errors = _connection_errors(dependency.exceptions)
        if self._rl_coredis:
            from coredis.typing import RedisCommand

            self._rl_command_type: Any = RedisCommand

    def _key(self, key: str) -> str:
        return self.bridge.prefixed_key(key)

    def _conn(self, readonly: bool = False) -> Any:
        return cast(Any, self.bridge).get_connection(readonly)

    async def _step(self, step: _Step) -> Any:
        if isinstance(step, _Limits):
            return await getattr(super(), step.method)(*step.args)
        conn = self._conn(step.readonly)
        if self._rl_coredis:
            name, *args = step.args
            command = self._rl_command_type(str(name).encode(), tuple(args))
            return await conn.execute_command(command)
        return await conn.execute_command(*step.args)

    async def _run(self, op: _Op[T]) -> T:
        """Drive *op*: send its commands, throw error replies into it, return its result."""
        try:
            step = next(op)
            while True:
                try:
                    reply = await self._step(step)
                except self._rl_reply_errors as exc:
                    if isinstance(exc, self._rl_connection_errors):
                        self._forget_support()
                    step = op.throw(_ReplyError(exc))
                except self._rl_connection_errors:
                    self._forget_support()
                    raise
                else:
                    step = op.send(reply)
        except StopIteration as stop:
            return cast(T, stop.value)
        except _ReplyError as err:
            raise err.original from None

    async def module_support(self) -> ModuleSupport:
        """What the server's module offers (probed with two commands that write nothing)."""
        return await self._run(self._support_op())

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add *amount* to the fixed window's count (a window starts at its first hit)."""
        return await self._run(self._incr_op(key, expiry, amount))

    async def get(self, key: str) -> int:
        """The fixed window's count (0 when no window runs)."""
        return await self._run(self._get_op(key))

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Admit *amount* entries iff the moving window's count plus *amount* fits *limit*."""
        return await self._run(self._acquire_entry_op(key, limit, expiry, amount))

    async def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """(time of the oldest entry in the window, entries in the window), client clock."""
        return await self._run(self._get_moving_window_op(key, limit, expiry))

    async def acquire_sliding_window_entry(
        self, key: str, limit: int, expiry: int, amount: int = 1
    ) -> bool:
        """Admit *amount* iff limits' weighted count plus *amount* fits *limit*."""
        return await self._run(self._acquire_sliding_window_op(key, limit, expiry, amount))

    async def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        """(previous count, its TTL, current count, its TTL), TTLs in seconds, after the shift."""
        return await self._run(self._get_sliding_window_op(key, expiry))

    async def clear_sliding_window(self, key: str, expiry: int) -> None:
        """Delete the limiter (the module's key or limits' two keys)."""
        await self._run(self._clear_sliding_window_op(key, expiry))

    async def reset(self) -> int | None:
        """Delete every key under ``key_prefix`` with ``SCAN`` + ``DEL``; the number deleted."""
        return await self._run(self._reset_op())


def _implementation(implementation: str) -> Implementation:
    if implementation not in ("redispy", "coredis", "valkey"):
        raise ConfigurationError(
            f"implementation must be 'redispy', 'coredis' or 'valkey', not {implementation!r}"
        )
    return cast(Implementation, implementation)


class AsyncRateLimitStorage(_AsyncModuleMethods, limits.aio.storage.RedisStorage):
    """limits' asyncio ``RedisStorage`` for ``async+rl://`` (also ``async+rls``, ``+unix``).

    The client is :mod:`redis.asyncio` by default (``implementation="redispy"``); ``"coredis"``
    (limits' own default) and ``"valkey"`` work the same.
    """

    STORAGE_SCHEME = ["async+rl", "async+rls", "async+rl+unix"]

    def __init__(
        self,
        uri: str,
        wrap_exceptions: bool = False,
        implementation: Implementation = "redispy",
        key_prefix: str = limits.aio.storage.RedisStorage.PREFIX,
        probe_interval: float = DEFAULT_PROBE_INTERVAL,
        **options: float | str | bool,
    ) -> None:
        """Take limits' ``async+redis://`` arguments (and *probe_interval*)."""
        self._rl_init(uri, probe_interval)
        super().__init__(
            _to_redis_uri(uri),
            wrap_exceptions=wrap_exceptions,
            implementation=_implementation(implementation),
            key_prefix=key_prefix,
            **options,
        )
        self._rl_bind_client()


class AsyncRateLimitClusterStorage(_AsyncModuleMethods, limits.aio.storage.RedisClusterStorage):
    """limits' asyncio ``RedisClusterStorage`` for ``async+rl+cluster://host:port,…``."""

    STORAGE_SCHEME = ["async+rl+cluster"]

    def __init__(
        self,
        uri: str,
        wrap_exceptions: bool = False,
        implementation: Implementation = "redispy",
        key_prefix: str = limits.aio.storage.RedisStorage.PREFIX,
        probe_interval: float = DEFAULT_PROBE_INTERVAL,
        **options: float | str | bool,
    ) -> None:
        """Take limits' ``async+redis+cluster://`` arguments (and *probe_interval*)."""
        self._rl_init(uri, probe_interval)
        super().__init__(
            _to_redis_uri(uri),
            wrap_exceptions=wrap_exceptions,
            implementation=_implementation(implementation),
            key_prefix=key_prefix,
            **options,
        )
        self._rl_bind_client()

    async def reset(self) -> int | None:
        """``SCAN`` every primary and ``DEL`` each key (keys of one DEL must share a slot)."""
        pattern = _glob_escape(self._key("")) + "*"
        names = [name async for name in self._conn().scan_iter(match=pattern, count=1000)]
        deleted = 0
        for name in names:
            key = name.decode() if isinstance(name, bytes) else str(name)
            deleted += int(await self._run(_single(_Command(("DEL", key)))))
        return deleted


def _single(command: _Command) -> _Op[Any]:
    return (yield command)


class AsyncRateLimitSentinelStorage(_AsyncModuleMethods, limits.aio.storage.RedisSentinelStorage):
    """limits' asyncio ``RedisSentinelStorage`` for ``async+rl+sentinel://h:p,…/service``."""

    STORAGE_SCHEME = ["async+rl+sentinel"]

    def __init__(
        self,
        uri: str,
        wrap_exceptions: bool = False,
        implementation: Implementation = "redispy",
        key_prefix: str = limits.aio.storage.RedisStorage.PREFIX,
        service_name: str | None = None,
        use_replicas: bool = True,
        sentinel_kwargs: dict[str, float | str | bool] | None = None,
        probe_interval: float = DEFAULT_PROBE_INTERVAL,
        **options: float | str | bool,
    ) -> None:
        """Take limits' ``async+redis+sentinel://`` arguments (and *probe_interval*)."""
        self._rl_init(uri, probe_interval)
        super().__init__(
            _to_redis_uri(uri),
            wrap_exceptions=wrap_exceptions,
            implementation=_implementation(implementation),
            key_prefix=key_prefix,
            service_name=service_name,
            use_replicas=use_replicas,
            sentinel_kwargs=sentinel_kwargs,
            **options,
        )
        self._rl_bind_client()
