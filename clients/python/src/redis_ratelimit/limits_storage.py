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
``wrap_exceptions``, ``check()``, ``clear()`` and the ``.storage`` client are limits' own.

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
* sliding window counter: limits' Lua scripts, always. limits anchors its windows at the first
  hit and rounds the weighted previous count down; the module's ``sliding-window`` is
  epoch-aligned and exact, so it would admit different requests.
* ``reset()``: ``SCAN MATCH <prefix>:*`` and ``DEL`` (never ``KEYS``).

When the server does not know ``RL.ALLOW`` (managed Redis often refuses modules) the storage warns
once with :class:`ModuleNotLoadedWarning` and runs limits' Lua scripts for everything, exactly as
``redis://``. A key that still holds limits' plain value (written before the switch from
``redis://``) is served by limits' script until it expires.
"""

from __future__ import annotations

import re
import threading
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

import limits.aio.storage
import limits.storage
from limits.errors import ConfigurationError
from redis.exceptions import RedisError, ResponseError

from .errors import AlgorithmMismatchError, is_wrong_type, unknown_algorithm, unknown_command
from .types import Algorithm, Inspection

__all__ = [
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
#: The key the capability probe reads; read-only commands on it never create it.
PROBE_KEY = "__redis_ratelimit_probe__"


class ModuleNotLoadedWarning(UserWarning):
    """The server behind an ``rl://`` URI lacks the module: limits' Lua scripts are used."""


@dataclass(frozen=True)
class ModuleSupport:
    """What the server's module offers, learnt once per storage by a read-only probe."""

    #: ``RL.ALLOW`` exists.
    loaded: bool
    #: ``RL.INSPECT`` exists.
    inspect: bool
    #: ``ALGO moving-window`` and ``RL.INSPECT`` exist: moving windows use the module.
    moving_window: bool


_NOT_LOADED = ModuleSupport(loaded=False, inspect=False, moving_window=False)


def _is_unknown_command(exc: RedisError) -> bool:
    # redis-py's cluster client refuses a command its COMMAND table lacks before sending it.
    return (isinstance(exc, ResponseError) and unknown_command(exc) is not None) or (
        "command doesn't exist in Redis commands" in str(exc)
    )


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
        stacklevel=4,
    )


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


def _incr_args(key: str, expiry: int, amount: int) -> list[str | int]:
    return ["RL.ALLOW", key, MAX_LIMIT, expiry, "COST", amount, "ALGO", "fixed-window"]


# RL.PEEK with a longer window keeps a running fixed window and its count (README: changing a
# rule); the key itself expires when its real window ends.
_PEEK_COUNT = (MAX_LIMIT, "365d", "COST", 0, "ALGO", "fixed-window")


def _acquire_args(key: str, limit: int, expiry: int, amount: int) -> list[str | int]:
    return ["RL.ALLOW", key, limit, expiry, "COST", amount, "ALGO", "moving-window"]


# ---------------------------------------------------------------------------------------------
# sync

if TYPE_CHECKING:
    _SyncBase = limits.storage.RedisStorage
    _AsyncBase = limits.aio.storage.RedisStorage
else:
    _SyncBase = object
    _AsyncBase = object


class _SyncModuleMethods(_SyncBase):
    """The module-backed storage methods, mixed into each of limits' sync Redis storages."""

    _rl_support: ModuleSupport | None = None
    _rl_uri: str = ""
    _rl_lock = threading.Lock()

    def module_support(self) -> ModuleSupport:
        """Probe the server once (two read-only commands) for what its module offers."""
        support = self._rl_support
        if support is None:
            with self._rl_lock:
                support = self._rl_support
                if support is None:
                    support = self._probe()
                    self._rl_support = support
                    if not support.loaded:
                        _warn_not_loaded(self._rl_uri)
        return support

    def _probe(self) -> ModuleSupport:
        conn = cast(Any, self.get_connection())
        key = self.prefixed_key(PROBE_KEY)
        moving = True
        try:
            conn.execute_command("RL.PEEK", key, 1, 1, "ALGO", "moving-window")
        except RedisError as exc:
            if _is_unknown_command(exc):
                return _NOT_LOADED
            if not (isinstance(exc, ResponseError) and unknown_algorithm(exc)):
                raise
            moving = False
        try:
            conn.execute_command("RL.INSPECT", key)
            inspect = True
        except RedisError as exc:
            if not _is_unknown_command(exc):
                raise
            inspect = False
        return ModuleSupport(loaded=True, inspect=inspect, moving_window=moving and inspect)

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add *amount* to the fixed window's count (a window starts at its first hit)."""
        if self.module_support().loaded:
            conn = cast(Any, self.get_connection())
            try:
                reply = conn.execute_command(*_incr_args(self.prefixed_key(key), expiry, amount))
            except ResponseError as exc:
                if not is_wrong_type(exc):
                    raise
            else:
                return MAX_LIMIT - int(reply[2])
        return super().incr(key, expiry, amount)

    def get(self, key: str) -> int:
        """The fixed window's count (0 when no window runs)."""
        support = self.module_support()
        if support.loaded:
            conn = cast(Any, self.get_connection(True))
            pkey = self.prefixed_key(key)
            try:
                if support.inspect:
                    return _fixed_window_count_from_inspect(
                        conn.execute_command("RL.INSPECT", pkey)
                    )
                return MAX_LIMIT - int(conn.execute_command("RL.PEEK", pkey, *_PEEK_COUNT)[2])
            except ResponseError as exc:
                if not is_wrong_type(exc):
                    raise
        return super().get(key)

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Admit *amount* entries iff the moving window's count plus *amount* fits *limit*."""
        if self.module_support().moving_window:
            conn = cast(Any, self.get_connection())
            args = _acquire_args(self.prefixed_key(key), limit, expiry, amount)
            try:
                return int(conn.execute_command(*args)[0]) == 1
            except ResponseError as exc:
                if not is_wrong_type(exc):
                    raise
        return super().acquire_entry(key, limit, expiry, amount)

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """(time of the oldest entry in the window, entries in the window), client clock."""
        if self.module_support().moving_window:
            conn = cast(Any, self.get_connection(True))
            try:
                reply = conn.execute_command("RL.INSPECT", self.prefixed_key(key))
            except ResponseError as exc:
                if not is_wrong_type(exc):
                    raise
            else:
                return _moving_window_from_inspect(reply, time.time())
        return super().get_moving_window(key, limit, expiry)

    def reset(self) -> int | None:
        """Delete every key under ``key_prefix`` with ``SCAN`` + ``DEL``; the number deleted."""
        conn = cast(Any, self.get_connection())
        pattern = _glob_escape(self.prefixed_key("")) + "*"
        deleted = 0
        batch: list[bytes] = []
        for name in conn.scan_iter(match=pattern, count=1000):
            batch.append(name)
            if len(batch) == 500:
                deleted += int(conn.delete(*batch))
                batch = []
        if batch:
            deleted += int(conn.delete(*batch))
        return deleted


class RateLimitStorage(_SyncModuleMethods, limits.storage.RedisStorage):
    """limits' :class:`~limits.storage.RedisStorage` for ``rl://``, ``rls://``, ``rl+unix://``."""

    STORAGE_SCHEME = ["rl", "rls", "rl+unix"]

    def __init__(
        self,
        uri: str,
        connection_pool: Any = None,
        key_prefix: str = limits.storage.RedisStorage.PREFIX,
        wrap_exceptions: bool = False,
        **options: float | str | bool,
    ) -> None:
        """Take limits' ``redis://`` arguments, with ``rl`` in place of ``redis`` in *uri*."""
        self._rl_uri = uri
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
        **options: float | str | bool,
    ) -> None:
        """Take limits' ``redis+cluster://`` arguments."""
        self._rl_uri = uri
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
    (limits' default), as with ``redis+sentinel://``; the replicas need the module too.
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
        **options: float | str | bool,
    ) -> None:
        """Take limits' ``redis+sentinel://`` arguments."""
        self._rl_uri = uri
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


class _AsyncModuleMethods(_AsyncBase):
    """The module-backed storage methods, mixed into each of limits' asyncio Redis storages."""

    _rl_support: ModuleSupport | None = None
    _rl_uri: str = ""

    def _conn(self, readonly: bool = False) -> Any:
        return cast(Any, self.bridge).get_connection(readonly)

    async def module_support(self) -> ModuleSupport:
        """Probe the server once (two read-only commands) for what its module offers."""
        if self._rl_support is None:
            support = await self._probe()
            if self._rl_support is None:
                self._rl_support = support
                if not support.loaded:
                    _warn_not_loaded(self._rl_uri)
        return self._rl_support

    async def _probe(self) -> ModuleSupport:
        conn = self._conn()
        key = self.bridge.prefixed_key(PROBE_KEY)
        moving = True
        try:
            await conn.execute_command("RL.PEEK", key, 1, 1, "ALGO", "moving-window")
        except RedisError as exc:
            if _is_unknown_command(exc):
                return _NOT_LOADED
            if not (isinstance(exc, ResponseError) and unknown_algorithm(exc)):
                raise
            moving = False
        try:
            await conn.execute_command("RL.INSPECT", key)
            inspect = True
        except RedisError as exc:
            if not _is_unknown_command(exc):
                raise
            inspect = False
        return ModuleSupport(loaded=True, inspect=inspect, moving_window=moving and inspect)

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add *amount* to the fixed window's count (a window starts at its first hit)."""
        if (await self.module_support()).loaded:
            args = _incr_args(self.bridge.prefixed_key(key), expiry, amount)
            try:
                reply = await self._conn().execute_command(*args)
            except ResponseError as exc:
                if not is_wrong_type(exc):
                    raise
            else:
                return MAX_LIMIT - int(reply[2])
        return await super().incr(key, expiry, amount)

    async def get(self, key: str) -> int:
        """The fixed window's count (0 when no window runs)."""
        support = await self.module_support()
        if support.loaded:
            conn = self._conn(True)
            pkey = self.bridge.prefixed_key(key)
            try:
                if support.inspect:
                    reply = await conn.execute_command("RL.INSPECT", pkey)
                    return _fixed_window_count_from_inspect(reply)
                reply = await conn.execute_command("RL.PEEK", pkey, *_PEEK_COUNT)
                return MAX_LIMIT - int(reply[2])
            except ResponseError as exc:
                if not is_wrong_type(exc):
                    raise
        return await super().get(key)

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Admit *amount* entries iff the moving window's count plus *amount* fits *limit*."""
        if (await self.module_support()).moving_window:
            args = _acquire_args(self.bridge.prefixed_key(key), limit, expiry, amount)
            try:
                return int((await self._conn().execute_command(*args))[0]) == 1
            except ResponseError as exc:
                if not is_wrong_type(exc):
                    raise
        return await super().acquire_entry(key, limit, expiry, amount)

    async def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """(time of the oldest entry in the window, entries in the window), client clock."""
        if (await self.module_support()).moving_window:
            pkey = self.bridge.prefixed_key(key)
            try:
                reply = await self._conn(True).execute_command("RL.INSPECT", pkey)
            except ResponseError as exc:
                if not is_wrong_type(exc):
                    raise
            else:
                return _moving_window_from_inspect(reply, time.time())
        return await super().get_moving_window(key, limit, expiry)

    async def reset(self) -> int | None:
        """Delete every key under ``key_prefix`` with ``SCAN`` + ``DEL``; the number deleted."""
        conn = self._conn()
        pattern = _glob_escape(self.bridge.prefixed_key("")) + "*"
        deleted = 0
        async for name in conn.scan_iter(match=pattern, count=1000):
            deleted += int(await conn.delete(name))
        return deleted


def _async_implementation(implementation: str) -> Literal["redispy", "valkey"]:
    if implementation not in ("redispy", "valkey"):
        raise ConfigurationError(
            f"rl:// storages run on redis-py's asyncio client, not {implementation!r}"
        )
    return cast(Literal["redispy", "valkey"], implementation)


class AsyncRateLimitStorage(_AsyncModuleMethods, limits.aio.storage.RedisStorage):
    """limits' asyncio ``RedisStorage`` for ``async+rl://`` (also ``async+rls``, ``+unix``).

    The client is :mod:`redis.asyncio` (``implementation="redispy"``, the default here; limits'
    own default, coredis, is not supported).
    """

    STORAGE_SCHEME = ["async+rl", "async+rls", "async+rl+unix"]

    def __init__(
        self,
        uri: str,
        wrap_exceptions: bool = False,
        implementation: Literal["redispy", "coredis", "valkey"] = "redispy",
        key_prefix: str = limits.aio.storage.RedisStorage.PREFIX,
        **options: float | str | bool,
    ) -> None:
        """Take limits' ``async+redis://`` arguments."""
        self._rl_uri = uri
        super().__init__(
            _to_redis_uri(uri),
            wrap_exceptions=wrap_exceptions,
            implementation=_async_implementation(implementation),
            key_prefix=key_prefix,
            **options,
        )


class AsyncRateLimitClusterStorage(_AsyncModuleMethods, limits.aio.storage.RedisClusterStorage):
    """limits' asyncio ``RedisClusterStorage`` for ``async+rl+cluster://host:port,…``."""

    STORAGE_SCHEME = ["async+rl+cluster"]

    def __init__(
        self,
        uri: str,
        wrap_exceptions: bool = False,
        implementation: Literal["redispy", "coredis", "valkey"] = "redispy",
        key_prefix: str = limits.aio.storage.RedisStorage.PREFIX,
        **options: float | str | bool,
    ) -> None:
        """Take limits' ``async+redis+cluster://`` arguments."""
        self._rl_uri = uri
        super().__init__(
            _to_redis_uri(uri),
            wrap_exceptions=wrap_exceptions,
            implementation=_async_implementation(implementation),
            key_prefix=key_prefix,
            **options,
        )


class AsyncRateLimitSentinelStorage(_AsyncModuleMethods, limits.aio.storage.RedisSentinelStorage):
    """limits' asyncio ``RedisSentinelStorage`` for ``async+rl+sentinel://h:p,…/service``."""

    STORAGE_SCHEME = ["async+rl+sentinel"]

    def __init__(
        self,
        uri: str,
        wrap_exceptions: bool = False,
        implementation: Literal["redispy", "coredis", "valkey"] = "redispy",
        key_prefix: str = limits.aio.storage.RedisStorage.PREFIX,
        service_name: str | None = None,
        use_replicas: bool = True,
        sentinel_kwargs: dict[str, float | str | bool] | None = None,
        **options: float | str | bool,
    ) -> None:
        """Take limits' ``async+redis+sentinel://`` arguments."""
        self._rl_uri = uri
        super().__init__(
            _to_redis_uri(uri),
            wrap_exceptions=wrap_exceptions,
            implementation=_async_implementation(implementation),
            key_prefix=key_prefix,
            service_name=service_name,
            use_replicas=use_replicas,
            sentinel_kwargs=sentinel_kwargs,
            **options,
        )
