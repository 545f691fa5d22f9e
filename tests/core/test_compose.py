"""docker-compose.yml cannot run here (no Docker): read it, and check it runs what the tests run."""

import yaml

from tests.support import REPO


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_compose_has_the_designed_services():
    assert set(compose()["services"]) == {"web", "postgres", "redis", "worker-gpu", "worker-cpu", "beat"}


def test_services_run_the_scripts_the_tests_run():
    services = compose()["services"]
    assert services["web"]["command"] == ["bin/web"]
    assert services["worker-gpu"]["command"][:2] == ["bin/worker", "gpu"]
    assert services["worker-cpu"]["command"][:2] == ["bin/worker", "cpu"]
    assert services["beat"]["command"][0] == "bin/beat"
    for script in ("web", "worker", "beat"):
        assert (REPO / "bin" / script).stat().st_mode & 0o111, f"bin/{script} is not executable"


def test_gpu_worker_reserves_the_gpu_and_installs_cuda_tensorflow():
    gpu = compose()["services"]["worker-gpu"]
    device = gpu["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert gpu["build"]["args"]["REQUIREMENTS"] == "requirements-gpu.txt"
    worker_script = (REPO / "bin" / "worker").read_text()
    gpu_line = next(line for line in worker_script.splitlines() if line.strip().startswith("gpu)"))
    assert "-Q gpu" in gpu_line and "--concurrency 1" in gpu_line and "--prefetch-multiplier 1" in gpu_line


def test_services_share_the_media_volume_and_wait_for_healthy_backends():
    services = compose()["services"]
    for name in ("web", "worker-gpu", "worker-cpu", "beat"):
        assert "media:/data" in services[name]["volumes"]
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert services[name]["environment"]["CELERY_BROKER_URL"].startswith("redis://redis")
        # One subject key for every node, required: a node with its own would split patients.
        assert services[name]["environment"]["SUBJECT_HASH_KEY"].startswith("${SUBJECT_HASH_KEY:?")
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "ping" in services["redis"]["healthcheck"]["test"]
