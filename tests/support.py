"""What tests of both tiers share that is not a fixture: the repository's root, polling, free
ports, the test database's URL, and child processes with their output in a log file."""

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from django.db import connection

REPO = Path(__file__).resolve().parent.parent

# Leases and heartbeats in seconds rather than minutes, so death and rescue fit in a test.
FAST_LEASES = {
    "WORKER_HEARTBEAT_S": 1.0,
    "JOB_LEASE_TTL_S": 4.0,
    "JOB_LEASE_HEARTBEAT_S": 0.5,
    "JOB_LEASE_CHECK_S": 1.0,
}


def wait_for(predicate: Callable[[], object], *, timeout: float, what: str, interval: float = 0.2):
    """Poll until ``predicate()`` is truthy and return its value; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"Timed out after {timeout:.0f} s waiting for {what}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def database_url(name: str | None = None) -> str:
    """The URL of the database the tests run on (pytest-django's test database), or of another
    database ``name`` on the same server."""
    db = connection.settings_dict
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{name or db['NAME']}"


class Process:
    """A child process of a test (worker, beat, web), its output kept in a log file."""

    def __init__(self, argv: list[str], *, env: dict, log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 (closed in kill())
        self.popen = subprocess.Popen(
            [str(a) for a in argv],
            env=env,
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.popen.pid

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.popen.poll() is None:
            os.killpg(self.pid, sig)
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)
        self._log.close()
