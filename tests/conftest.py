"""Test tiers and what every test shares.

Two tiers, decided by folder: ``tests/system`` (workers, Chromium, the demo, faults, anything that
starts a process or trains for real) is the system tier, marked ``system``; everything else is
the fast tier (``make test-fast`` runs it: ``pytest -m "not system"``). A fast-tier test cannot
start a process by accident: the process fixtures live in ``tests/system/conftest.py``, and
starting Python, Chromium, Node or one of our scripts from a fast-tier test fails it.

Fast-tier tests hash passwords with MD5 (PBKDF2 costs a noticeable part of a second per user on a
slow CPU); system-tier tests keep the real hashers, since a worker or web process they start
must check the passwords they set.
"""

import subprocess
from pathlib import Path

import pytest

from tests.support import FAST_LEASES

SYSTEM_TIER = Path(__file__).resolve().parent / "system"
# What a fast-tier test may not start: our processes, a Python, a browser or its driver.
FORBIDDEN_IN_FAST_TIER = ("python", "chromium", "chrome", "node", "manage.py", "bin/worker", "bin/web", "bin/beat")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SYSTEM_TIER in Path(item.path).parents:
            item.add_marker(pytest.mark.system)


def is_system_tier(request) -> bool:
    return request.node.get_closest_marker("system") is not None


class StartedAProcess(Exception):
    """A fast-tier test started a process: it belongs in tests/system."""


def fast_tier_popen(real_popen):
    def popen(args, *rest, **kwargs):
        argv = [args] if isinstance(args, str | bytes | Path) else list(args)
        words = " ".join(str(arg) for arg in argv[:2])
        if any(name in words for name in FORBIDDEN_IN_FAST_TIER):
            raise StartedAProcess(f"A fast-tier test started {words!r}: move it to tests/system.")
        return real_popen(args, *rest, **kwargs)

    return popen


@pytest.fixture(autouse=True)
def tier_rules(request, monkeypatch):
    if is_system_tier(request):
        return
    monkeypatch.setattr(subprocess, "Popen", fast_tier_popen(subprocess.Popen))
    request.getfixturevalue("settings").PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def fast_leases(settings):
    for name, value in FAST_LEASES.items():
        setattr(settings, name, value)
