"""A real ``argus serve`` subprocess for the browser tests (sync: Playwright's sync API
blocks the event loop, so the gateway must not share the test's loop).

The gateway serves the console's assets through real Hypercorn; ``restart`` stops it and
starts a new one on the same port and home, as a user restarting the daemon would.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from argus.testing import daemon_env, kill_bridges

LISTEN_RE = re.compile(r"listening on (http://\S+)")
START_TIMEOUT_S = 30


def free_port() -> int:
    """A port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gateway:
    """``python -m argus serve`` on a fixed port, with its log kept."""

    def __init__(self, home: Path, env: dict[str, str] | None = None, port: int | None = None):
        self.home = home
        self.env = env or {}
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log: list[str] = []
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def console_url(self) -> str:
        """The console's address."""
        return self.base_url + "/console/"

    def start(self) -> Gateway:
        """Start and wait for the ``listening on`` line."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "argus", "serve", "--port", str(self.port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=daemon_env(self.home, **self.env),
        )
        listening = threading.Event()
        threading.Thread(target=self._pump, args=(self.process, listening), daemon=True).start()
        if not listening.wait(START_TIMEOUT_S):
            self.stop()
            raise RuntimeError("gateway did not start:\n" + "\n".join(self.log[-40:]))
        return self

    def _pump(self, process: subprocess.Popen[bytes], listening: threading.Event) -> None:
        assert process.stderr is not None
        for raw in process.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.log.append(line)
            if len(self.log) > 5000:
                del self.log[:1000]
            if LISTEN_RE.search(line):
                listening.set()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the gateway (SIGTERM, then SIGKILL after 15 s); bridges keep running."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self) -> None:
        """Stop, then start again on the same port and home."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the gateway and every runtime bridge it left."""
        self.stop()
        kill_bridges(self.home)

    def http(self, token: str | None = None) -> httpx.Client:
        """A sync HTTP client for the API."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=10)

    def wait_for(self, predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
        """Poll ``predicate()`` until true (fails the test after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
            time.sleep(0.05)


def env_without_argus() -> dict[str, str]:
    """This process's environment minus ARGUS_* (for helpers run beside the gateway)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ARGUS_")}
