"""How bin/web starts on a database: bin/migrate migrates it once, and web processes (several
replicas, as `docker compose --scale web=3` starts them) wait for that instead of racing on the
migrations; `bin/web --migrate` migrates by itself (one machine, one web process).

Each test gets a PostgreSQL database of its own, created empty and dropped afterwards (not the
suite's test database: that one is migrated already). The static files are collected once for the
session (``collected_static``), so no web process spends its minute compressing them."""

import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from tests.support import REPO, database_url, free_port, wait_for

pytestmark = pytest.mark.services

WAITING = "bin/web: waiting for the database's migrations (run bin/migrate; compose's migrate service does)"


@pytest.fixture
def fresh_database() -> str:
    """The URL of a new, empty PostgreSQL database; dropped when the test ends."""
    if connection.vendor != "postgresql":
        pytest.fail("These tests need DATABASE_URL=postgres://...; run them with `make test`.")
    name = f"test_webstart_{secrets.token_hex(4)}"
    with psycopg.connect(database_url("postgres"), autocommit=True) as server:
        server.execute(f'CREATE DATABASE "{name}"')
    yield database_url(name)
    with psycopg.connect(database_url("postgres"), autocommit=True) as server:
        # FORCE: a web process killed a moment ago may not have closed its connection yet.
        server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _web_env(*, database: str, var_dir: Path, static_root: Path, port: int) -> dict:
    env = {key: value for key, value in os.environ.items() if key not in {"WEB_MIGRATE", "WEB_MIGRATE_WAIT_S"}}
    return env | {
        "PYTHON": sys.executable,
        "DATABASE_URL": database,
        "SYNTHREAD_VAR_DIR": str(var_dir),
        "MEDIA_ROOT": str(var_dir / "media"),
        "STATIC_ROOT": str(static_root),
        "WEB_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",  # one gunicorn worker boots soonest; the test asks one page
        # The stand-in worker's heartbeat (below) stays fresh for the whole test.
        "WORKER_HEARTBEAT_S": "3600",
    }


def _healthz_status(port: int) -> int | None:
    """The HTTP status of /healthz, or None while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def _stand_in_worker(url: str) -> None:
    """A worker's heartbeat row, written as bin/worker would: /healthz is 200 only with a live worker,
    and starting a real one would only slow these tests down."""
    with psycopg.connect(url, autocommit=True) as database:
        database.execute(
            "INSERT INTO readerstudy_workerheartbeat (name, queues, pid, started_at, last_seen) "
            "VALUES ('stand-in@test', 'default', 1, now(), now())"
        )


def _applied_migrations(url: str) -> tuple[int, list]:
    """How many rows django_migrations holds, and the (app, name) recorded twice or more."""
    with psycopg.connect(url) as database:
        total = database.execute("SELECT count(*) FROM django_migrations").fetchone()[0]
        twice = database.execute(
            "SELECT app, name FROM django_migrations GROUP BY app, name HAVING count(*) > 1"
        ).fetchall()
    return total, twice


def _has_table(url: str, table: str) -> bool:
    with psycopg.connect(url) as database:
        return database.execute("SELECT to_regclass(%s) IS NOT NULL", [table]).fetchone()[0]


def _wait_until_healthy(web, port: int) -> None:
    def healthy() -> bool:
        if web.popen.poll() is not None:
            pytest.fail(f"bin/web exited with {web.popen.returncode}:\n{web.log_tail()}")
        return _healthz_status(port) == 200

    wait_for(healthy, timeout=90, what=f"the web process on port {port} to serve /healthz")


def test_web_replicas_wait_for_bin_migrate_and_the_migrations_run_once(
    fresh_database, collected_static, start_process, tmp_path
):
    def start_web(index: int):
        port = free_port()
        env = _web_env(
            database=fresh_database, var_dir=tmp_path / f"var-{index}", static_root=collected_static, port=port
        )
        return start_process([REPO / "bin" / "web"], env=env, name=f"web-{index}"), port

    webs = [start_web(0), start_web(1)]

    def both_waiting() -> bool:
        for web, _ in webs:
            if web.popen.poll() is not None:
                pytest.fail(f"bin/web exited with {web.popen.returncode}:\n{web.log_tail()}")
        return all(WAITING in web.log_path.read_text(errors="replace") for web, _ in webs)

    wait_for(both_waiting, timeout=60, what="both web processes to wait for the migrations")
    assert [_healthz_status(port) for _, port in webs] == [None, None]  # no gunicorn yet
    assert not _has_table(fresh_database, "django_migrations")  # nobody migrated

    migrated = subprocess.run(
        [REPO / "bin" / "migrate"],
        env={**os.environ, "PYTHON": sys.executable, "DATABASE_URL": fresh_database},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert migrated.returncode == 0, migrated.stderr
    assert "Applying" in migrated.stdout
    _stand_in_worker(fresh_database)
    for web, port in webs:
        _wait_until_healthy(web, port)

    # A replica added later (`--scale web=3` on a running stack) finds nothing pending: it starts at once.
    webs.append(start_web(2))
    _wait_until_healthy(*webs[2])
    assert WAITING not in webs[2][0].log_path.read_text(errors="replace")

    for web, _ in webs:
        assert "Applying" not in web.log_path.read_text(errors="replace")
    total, twice = _applied_migrations(fresh_database)
    assert total > 0 and twice == []


@pytest.mark.parametrize(
    ("arguments", "environment"),
    [(["--migrate"], {}), ([], {"WEB_MIGRATE": "true"})],
    ids=["--migrate", "WEB_MIGRATE=true"],
)
def test_bin_web_migrate_migrates_a_fresh_database_and_serves(
    arguments, environment, fresh_database, collected_static, start_process, tmp_path
):
    port = free_port()
    env = _web_env(database=fresh_database, var_dir=tmp_path / "var", static_root=collected_static, port=port)
    web = start_process([REPO / "bin" / "web", *arguments], env=env | environment, name="web-migrate")

    def answering() -> int | None:
        if web.popen.poll() is not None:
            pytest.fail(f"bin/web --migrate exited with {web.popen.returncode}:\n{web.log_tail()}")
        return _healthz_status(port)

    assert wait_for(answering, timeout=240, what="bin/web --migrate to serve /healthz") == 503  # no worker yet
    _stand_in_worker(fresh_database)
    assert _healthz_status(port) == 200
    output = web.log_path.read_text(errors="replace")
    assert "Applying" in output and WAITING not in output
    total, twice = _applied_migrations(fresh_database)
    assert total > 0 and twice == []


def test_bin_web_gives_up_on_an_unmigrated_database_naming_bin_migrate(fresh_database, tmp_path):
    port = free_port()
    env = _web_env(database=fresh_database, var_dir=tmp_path / "var", static_root=tmp_path / "staticfiles", port=port)
    started = time.monotonic()
    web = subprocess.run(
        [REPO / "bin" / "web"],
        cwd=REPO,
        env=env | {"WEB_MIGRATE_WAIT_S": "3"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert web.returncode != 0
    assert WAITING in web.stderr
    assert "not migrated after 3 s" in web.stderr and "run bin/migrate" in web.stderr
    assert time.monotonic() - started < 60
    assert not _has_table(fresh_database, "django_migrations")
    assert not (tmp_path / "staticfiles").exists()  # it stopped before collecting or serving
