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

import numpy as np
import pytest
from django.core.management import call_command
from scipy.ndimage import gaussian_filter

from generator.bank import bank_image_store
from readerstudy.reading.models import Study
from readerstudy.reading.pools import study_set_pools
from tests.factories import REAL, SYNTHETIC, bank_images
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
def fresh_cache():
    """Every test starts with an empty cache: the API's throttles count requests there, and the
    test client always comes from the same address."""
    from django.core.cache import cache

    cache.clear()


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


# --- Studies that tests of both tiers share -----------------------------------------------------


def _smooth_field(rng, size=32) -> np.ndarray:
    field = gaussian_filter(rng.normal(size=(size, size)), 2.0)
    return np.clip(field / (3 * field.std()), -1, 1).astype(np.float32)


@pytest.fixture
def observed_study(db) -> Study:
    """Real: smooth fields; synthetic: the same kind of fields with speckle on top (an easy tell),
    from 24 imported "generators" so the held-out side has many synthetic groups (the observer
    scores one image per held-out group)."""
    rng = np.random.default_rng(0)
    real = [
        bank_image_store(pixels=_smooth_field(rng), image_class="real", generator_name="scanner") for _ in range(48)
    ]
    synthetic = [
        bank_image_store(
            pixels=np.clip(_smooth_field(rng) + rng.normal(scale=0.5, size=(32, 32)), -1, 1).astype(np.float32),
            image_class="synthetic",
            generator_name=f"gan-{index % 24}",
        )
        for index in range(48)
    ]
    study = Study.objects.create(name="Observed", training_images=2)
    study_set_pools(study=study, main_pool=real[2:] + synthetic[2:], training_pool=real[:2] + synthetic[:2])
    return study


@pytest.fixture
def quiz_study(db) -> Study:
    images = bank_images(20, REAL, size=32) + bank_images(20, SYNTHETIC, size=32)
    study = Study.objects.create(name="Quizzed", quiz_enabled=True, training_images=2)
    study_set_pools(study=study, main_pool=images[:10] + images[20:30], training_pool=[images[10], images[30]])
    call_command("quiz_pool", "--per-class", "6", "--seed", "1")
    return study
