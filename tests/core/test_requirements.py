"""The dependency inputs and their locks: pinned, hashed, current, in step, runtime apart from dev."""

import re

import pytest

from tests.support import REPO

LOCKS = ("requirements.lock", "requirements-gpu.lock", "requirements-dev.lock")
DEV_ONLY = {"pytest", "pytest-django", "playwright", "moto", "locust", "ruff", "factory-boy", "pre-commit", "uv"}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(name: str) -> list[str]:
    lines = (REPO / name).read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.strip() and not line.startswith(("#", "-r "))]


def pinned_versions(name: str) -> dict[str, str]:
    """An input's top-level pins, {name: version}, extras dropped."""
    versions = {}
    for line in pins(name):
        requirement, version = line.split("==")
        versions[normalized(requirement.split("[")[0])] = version
    return versions


def locked(name: str) -> dict[str, str]:
    """A lock's packages, {name: version}; fails the test on a package without a hash."""
    text = (REPO / name).read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
    versions = {}
    for entry in entries:
        match = re.match(r"([A-Za-z0-9._-]+)==([^\s;\\]+)", entry)
        assert match, f"{name}: not a pinned requirement: {entry[:80]!r}"
        assert "--hash=sha256:" in entry, f"{name}: {match[1]} has no hash"
        versions[normalized(match[1])] = match[2]
    return versions


def test_gpu_requirements_are_the_cpu_ones_with_cuda_tensorflow():
    cpu, gpu = pins("requirements.txt"), pins("requirements-gpu.txt")
    assert [line for line in cpu if not line.startswith("tensorflow")] == [
        line for line in gpu if not line.startswith("tensorflow")
    ]
    cpu_tf = next(line for line in cpu if line.startswith("tensorflow"))
    gpu_tf = next(line for line in gpu if line.startswith("tensorflow"))
    assert cpu_tf.startswith("tensorflow-cpu==")
    assert gpu_tf == cpu_tf.replace("tensorflow-cpu", "tensorflow[and-cuda]")


def test_every_input_is_pinned_and_dev_builds_on_the_runtime():
    for name in ("requirements.txt", "requirements-gpu.txt", "requirements-dev.txt"):
        assert all(re.fullmatch(r"[A-Za-z0-9._\[\],-]+==[\w.]+", line) for line in pins(name)), name
    assert "-r requirements.txt" in (REPO / "requirements-dev.txt").read_text().splitlines()
    assert not DEV_ONLY & set(pinned_versions("requirements.txt")), "a test or tool among the runtime inputs"


@pytest.mark.parametrize(
    ("lock", "inputs"),
    [
        ("requirements.lock", ("requirements.txt",)),
        ("requirements-gpu.lock", ("requirements-gpu.txt",)),
        ("requirements-dev.lock", ("requirements.txt", "requirements-dev.txt")),
    ],
)
def test_each_lock_is_hashed_and_current_with_its_inputs(lock, inputs):
    versions = locked(lock)
    for name in inputs:
        for requirement, version in pinned_versions(name).items():
            assert versions.get(requirement) == version, f"{lock} is stale for {requirement}: run make lock"
    assert len(versions) > 2 * sum(len(pins(name)) for name in inputs)  # dependencies too, not only the inputs


def test_locks_share_one_version_of_each_package_and_keep_tools_out_of_the_images():
    cpu, gpu, dev = (locked(name) for name in LOCKS)
    for package in set(cpu) & set(gpu):
        assert cpu[package] == gpu[package], package
    assert {package: dev[package] for package in cpu} == cpu  # development runs what production runs
    assert not DEV_ONLY & (set(cpu) | set(gpu))
    assert set(dev) >= DEV_ONLY
    assert "tensorflow-cpu" in cpu and not any(package.startswith("nvidia-") for package in cpu)
    assert "tensorflow" in gpu and "tensorflow-cpu" not in gpu and "nvidia-cudnn-cu12" in gpu
    assert "django-celery-results" not in cpu | gpu | dev  # wrote a row per task that nothing read


def test_make_and_the_image_install_from_the_locks_with_hashes():
    makefile = (REPO / "Makefile").read_text()
    assert "pip install --require-hashes -r requirements-dev.lock" in makefile
    assert "$(INSTALLED): requirements-dev.lock" in makefile
    for lock in LOCKS:
        assert f"-o {lock}" in makefile  # make lock writes it
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "ARG LOCK=requirements.lock" in dockerfile
    assert 'pip install --no-cache-dir --require-hashes -r "$LOCK"' in dockerfile
    assert "requirements-dev" not in dockerfile
