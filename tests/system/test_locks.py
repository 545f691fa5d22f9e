"""The runtime lock, installed as the image installs it: into a fresh virtual environment, every
package checked against its hash; and what it installs runs SynthRead without any test tool."""

import subprocess
import sys

import pytest

from tests.support import REPO


@pytest.fixture(scope="module")
def runtime_venv(tmp_path_factory):
    venv = tmp_path_factory.mktemp("runtime") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    installed = subprocess.run(
        [
            venv / "bin" / "python",
            "-m",
            "pip",
            "install",
            "--no-compile",
            "--require-hashes",
            "-r",
            REPO / "requirements.lock",
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    return venv


def run(venv, *argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [venv / "bin" / "python", *argv], capture_output=True, text=True, cwd=REPO, env=env, timeout=600
    )


def test_the_runtime_lock_installs_with_hashes_and_holds_no_test_tools(runtime_venv):
    assert run(runtime_venv, "-m", "pip", "check").returncode == 0
    for tool in ("pytest", "playwright", "locust", "moto", "factory"):
        assert run(runtime_venv, "-c", f"import {tool}").returncode != 0, f"{tool} is in the runtime image"


def test_the_runtime_lock_runs_synthread(runtime_venv, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "SYNTHREAD_VAR_DIR": str(tmp_path / "var")}
    checked = run(runtime_venv, "manage.py", "check", env=env)
    assert checked.returncode == 0, checked.stderr[-3000:]
    migrated = run(runtime_venv, "manage.py", "migrate", "--noinput", env=env)  # the embedded default
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    trained = run(runtime_venv, "-c", "import tensorflow as tf; print(tf.reduce_sum(tf.ones([2, 2])).numpy())", env=env)
    assert trained.stdout.strip() == "4.0", trained.stderr[-3000:]
