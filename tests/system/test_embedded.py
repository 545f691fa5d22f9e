"""The embedded default (no services): SQLite, the filesystem broker, a real worker and the web
process, started with the same scripts `make demo` and docker-compose use."""

import json
import os
import subprocess
import sys
import urllib.request

import pytest

from tests.support import REPO, free_port, wait_for

pytestmark = pytest.mark.services


@pytest.fixture
def embedded_env(tmp_path) -> dict:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "CELERY_BROKER_URL", "MEDIA_ROOT"}
    }
    env.update(
        PYTHON=sys.executable,
        SYNTHREAD_VAR_DIR=str(tmp_path / "var"),
        WORKER_HEARTBEAT_S="1",
        HEALTHZ_TOKEN="embedded-test-token",
    )
    return env


def manage(*args: str, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, encoding="utf-8", timeout=timeout
    )


def test_embedded_default_runs_a_job_through_a_filesystem_broker(embedded_env, start_process, tmp_path):
    migrated = manage("migrate", "--noinput", env=embedded_env)
    assert migrated.returncode == 0, migrated.stderr
    assert (tmp_path / "var" / "synthread.sqlite3").exists()
    worker = start_process(
        [REPO / "bin" / "worker", "all", "--loglevel", "INFO"], env=embedded_env, name="embedded-worker"
    )
    probe = manage(
        "probe_job",
        "--queue",
        "gpu",
        "--steps",
        "3",
        "--step-seconds",
        "0.05",
        "--wait",
        "--timeout",
        "90",
        env=embedded_env,
        timeout=150,
    )
    assert probe.returncode == 0, probe.stderr + worker.log_tail()
    assert "succeeded after 1 attempt(s)" in probe.stdout
    assert any((tmp_path / "var" / "broker").iterdir())  # the messages went through the folder broker

    port = free_port()
    start_process([REPO / "bin" / "web"], env={**embedded_env, "WEB_BIND": f"127.0.0.1:{port}"}, name="embedded-web")

    def report() -> dict | None:
        try:
            details = {"Authorization": f"Bearer {embedded_env['HEALTHZ_TOKEN']}"}  # monitoring's view
            request = urllib.request.Request(f"http://127.0.0.1:{port}/healthz", headers=details)
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.load(response)
        except OSError:
            return None

    health = wait_for(report, timeout=90, what="the web process to answer /healthz")
    assert health["ok"], health
    assert health["database"]["vendor"] == "sqlite"
    assert health["broker"]["transport"] == "filesystem"
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
        assert json.load(response) == {"ok": True}  # anyone: ok or not, no host name, no error text
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=5) as response:
        page = response.read().decode()
    assert "Log in" in page and "/static/css/synthread." in page  # served by whitenoise


def test_probe_job_command_fails_clearly_on_bad_input(embedded_env):
    assert manage("migrate", "--noinput", env=embedded_env).returncode == 0
    result = manage("probe_job", "--steps", "0", env=embedded_env)
    assert result.returncode != 0
    assert "at least one step" in result.stderr
