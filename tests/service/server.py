"""A real `knnvocab serve` process on loopback, for the service tests and bench/serve.py."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def knnvocab_env(home: Path, database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a knnvocab process on ``home`` (nothing inherited but PATH)."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/root"),
        "KNNVOCAB_HOME": str(home),
        "KNNVOCAB_DATABASE_URL": database_url,
        "KNNVOCAB_USER": "tester",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


class Server:
    """``knnvocab serve`` started as a subprocess; stopped (SIGTERM, then SIGKILL) on exit.
    Its log is kept in ``log`` (a file), shown when it fails to start."""

    def __init__(self, env: dict[str, str], log: Path, *args: str, ready_timeout: float = 90):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env, self.log, self.args = env, log, args
        self.ready_timeout = ready_timeout
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        return self.launch().ready()

    def launch(self) -> Server:
        """Start the process without waiting for it (`ready` waits): several servers start
        at once."""
        command = [sys.executable, "-m", "knnvocab", "serve", "--port", str(self.port)]
        command += ["--log-level", "warning", *self.args]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(command, env=self.env, stdout=out, stderr=out)
        return self

    def ready(self) -> Server:
        """Wait until the launched process answers ``/readyz``."""
        assert self.process is not None, "launch() first"
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"knnvocab serve exited:\n{self.log.read_text()[-4000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"knnvocab serve not ready:\n{self.log.read_text()[-4000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> Server:
        return self.start() if self.process is None else self.ready()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
