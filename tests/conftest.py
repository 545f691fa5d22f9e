"""Shared fixtures: real worker, beat and web processes against the test database and Redis."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from django.db import connection

from readerstudy.core.models import WorkerHeartbeat

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


def database_url() -> str:
    """The URL of the database the tests run on (pytest-django's test database)."""
    db = connection.settings_dict
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


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


@pytest.fixture
def fast_leases(settings):
    for name, value in FAST_LEASES.items():
        setattr(settings, name, value)


@pytest.fixture
def service_env(transactional_db, settings, fast_leases, tmp_path) -> dict:
    """Environment for child processes: the test database, a flushed Redis, fast leases.

    Child processes cannot see a test's open transaction, so tests using them are transactional.
    """
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        pytest.fail("These tests need CELERY_BROKER_URL=redis://...; run them with `make test`.")
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()  # no stale messages of earlier runs
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "SYNTHREAD_VAR_DIR": str(tmp_path / "var"),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        **{name: str(value) for name, value in FAST_LEASES.items()},
    }
    return env


@pytest.fixture
def start_process(tmp_path):
    """Start child processes; every one still running is killed when the test ends."""
    started: list[Process] = []

    def start(argv: list, *, env: dict, name: str) -> Process:
        process = Process(argv, env=env, log_path=tmp_path / f"{name}-{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


@pytest.fixture
def start_worker(start_process, service_env):
    """Start `bin/worker KIND` (the command docker-compose runs) and wait until it beats."""

    def start(kind: str = "gpu") -> Process:
        worker = start_process(
            [REPO / "bin" / "worker", kind, "--loglevel", "INFO"], env=service_env, name=f"worker-{kind}"
        )

        def beating() -> bool:
            if worker.popen.poll() is not None:
                pytest.fail(f"worker exited with {worker.popen.returncode}:\n{worker.log_tail()}")
            return WorkerHeartbeat.objects.filter(name__startswith=f"{kind}-{worker.pid}@").exists()

        wait_for(beating, timeout=60, what=f"the {kind} worker's first heartbeat")
        return worker

    return start


# Browser tests: Playwright driving Debian's Chromium (its own browser download does not work here).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
# Playwright's sync API runs an event loop in the test's thread; Django's ORM refuses such threads
# unless told it is safe (it is: the test, not the browser, talks to the database).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()
