"""scripts/run: serves the module on $PORT, and says what to do when the port is taken."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from typing import Any, cast

import pytest
import redis
from servers import REPO_ROOT, free_port, wait_for

SCRIPT = str(REPO_ROOT / "scripts" / "run")


def test_port_in_use_names_the_next_free_port() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [SCRIPT],
            env={**os.environ, "PORT": str(port)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in done.stderr
    suggested = int(done.stderr.split("PORT=")[1].split()[0])
    assert suggested > port
    with socket.socket() as probe:  # free when suggested: a server could bind it
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as redis-server does
        probe.bind(("127.0.0.1", suggested))
    assert "Compiling" not in done.stderr  # refused before the build


@pytest.mark.skipif(shutil.which("cargo") is None, reason="scripts/run builds with cargo")
def test_serves_the_module_on_port() -> None:
    port = free_port()
    process = subprocess.Popen(
        [SCRIPT, "--save", "", "--appendonly", "no"],
        env={**os.environ, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    try:
        wait_for(lambda: bool(client.ping()), 600, "scripts/run to serve")
        modules = [m[b"name"] for m in cast(Any, client).execute_command("MODULE", "LIST")]
        assert b"ratelimit" in modules
        assert cast(Any, client).execute_command("RL.ALLOW", "run:test", 2, "1m")[0] == 1
    finally:
        client.close()
        process.terminate()
        process.wait(30)
