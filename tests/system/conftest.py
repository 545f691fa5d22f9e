"""Fixtures of the system tier: real worker, beat, web and browser processes against the test
database and Redis. Only tests under tests/system can ask for them."""

import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import redis

from readerstudy.core.models import WorkerHeartbeat
from tests.support import FAST_LEASES, REPO, Process, database_url, free_port, wait_for


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
    """Start `bin/worker KIND` (the command docker-compose runs) and wait until it beats;
    ``env`` adds to or overrides the service environment (another machine's folders, say)."""

    def start(kind: str = "gpu", env: dict | None = None) -> Process:
        worker = start_process(
            [REPO / "bin" / "worker", kind, "--loglevel", "INFO"],
            env=service_env | (env or {}),
            name=f"worker-{kind}",
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
def collected_static(tmp_path_factory) -> Path:
    """A STATIC_ROOT collected once for the web processes the tests start (STATIC_ROOT=...)."""
    static_root = tmp_path_factory.mktemp("staticfiles")
    done = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=REPO,
        env={**os.environ, "STATIC_ROOT": str(static_root)},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    # Dated a day ahead: others edit static/ and the requirements in this tree while tests run, and
    # bin/web would collect again (two web processes at once, into this one folder).
    ahead = time.time() + 86_400
    os.utime(static_root / "staticfiles.json", (ahead, ahead))
    return static_root


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


# Object storage: moto's standalone server, a real S3 API on loopback (PyPI moto[server]).
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_S3_REGION_NAME": "us-east-1"}


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """The S3 API's URL; one server for the whole test session."""
    port = free_port()
    server = Process(
        [Path(sys.executable).parent / "moto_server", "-H", "127.0.0.1", "-p", port],
        env=dict(os.environ),
        log_path=tmp_path_factory.mktemp("s3") / "moto.log",
    )
    url = f"http://127.0.0.1:{port}"

    def answering() -> bool:
        if server.popen.poll() is not None:
            pytest.fail(f"moto_server exited:\n{server.log_tail()}")
        try:
            return urllib.request.urlopen(url, timeout=2).status == 200
        except OSError:
            return False

    wait_for(answering, timeout=60, what="moto's S3 server")
    yield url
    server.kill()


@pytest.fixture
def s3_storage(s3_server, settings, service_env) -> dict:
    """This test's media in a fresh bucket of the S3 server, for this process (Django's STORAGES)
    and for the processes it starts (their environment, as production sets it). Returns that
    environment."""
    import boto3

    bucket = f"synthread-{secrets.token_hex(6)}"
    boto3.client(
        "s3",
        endpoint_url=s3_server,
        aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=S3_CREDENTIALS["AWS_S3_REGION_NAME"],
    ).create_bucket(Bucket=bucket)
    env = {
        "STORAGE_BACKEND": "storages.backends.s3.S3Storage",
        "AWS_STORAGE_BUCKET_NAME": bucket,
        "AWS_S3_ENDPOINT_URL": s3_server,
        **S3_CREDENTIALS,
    }
    for name, value in env.items():
        if name.startswith("AWS_"):
            setattr(settings, name, value)
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": env["STORAGE_BACKEND"]}}  # resets default_storage
    service_env.update(env)
    return env
