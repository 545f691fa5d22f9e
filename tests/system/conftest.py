"""Fixtures of the system tier: real worker, beat, web and browser processes against the test
database and Redis. Only tests under tests/system can ask for them."""

import os
import sys

import pytest
import redis

from readerstudy.core.models import WorkerHeartbeat
from tests.support import FAST_LEASES, REPO, Process, database_url, wait_for


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
