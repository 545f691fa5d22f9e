"""docker-compose.yml cannot run here (no Docker): read it, and check the production properties
it promises (TLS proxy, one migrate step, MinIO, health checks, scalable web, every variable
listed) and that it runs what the tests run."""

import re

import yaml

from tests.support import REPO

APP_SERVICES = ("web", "worker-gpu", "worker-cpu", "beat")


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def services() -> dict:
    return compose()["services"]


def test_compose_has_the_designed_services():
    assert set(services()) == {
        "proxy",
        "migrate",
        "web",
        "postgres",
        "redis",
        "minio",
        "worker-gpu",
        "worker-cpu",
        "beat",
    }


def test_services_run_the_scripts_the_tests_run():
    stack = services()
    assert stack["migrate"]["command"] == ["bin/migrate"]
    assert stack["web"]["command"] == ["bin/web"]
    assert stack["worker-gpu"]["command"][:2] == ["bin/worker", "gpu"]
    assert stack["worker-cpu"]["command"][:2] == ["bin/worker", "cpu"]
    assert stack["beat"]["command"][0] == "bin/beat"
    for script in ("migrate", "web", "worker", "beat"):
        assert (REPO / "bin" / script).stat().st_mode & 0o111, f"bin/{script} is not executable"
    assert "ensure_bucket" in (REPO / "bin" / "migrate").read_text()  # a fresh MinIO gets its bucket


def test_gpu_worker_reserves_the_gpu_and_installs_the_cuda_lock():
    stack = services()
    device = stack["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert stack["worker-gpu"]["build"]["args"]["LOCK"] == "requirements-gpu.lock"
    for name in ("migrate", "web", "worker-cpu", "beat"):
        assert stack[name]["build"]["args"]["LOCK"] == "requirements.lock", name
    worker_script = (REPO / "bin" / "worker").read_text()
    gpu_line = next(line for line in worker_script.splitlines() if line.strip().startswith("gpu)"))
    assert "-Q gpu" in gpu_line and "--concurrency 1" in gpu_line and "--prefetch-multiplier 1" in gpu_line


def test_one_migrate_step_runs_before_every_app_service():
    stack = services()
    assert stack["migrate"]["restart"] == "no"
    assert "migrate" not in stack["migrate"]["depends_on"]
    for name in APP_SERVICES:
        depends_on = stack[name]["depends_on"]
        assert depends_on["migrate"]["condition"] == "service_completed_successfully", name
        for backend in ("postgres", "redis", "minio"):
            assert depends_on[backend]["condition"] == "service_healthy", (name, backend)
    # The web processes migrate only when asked (the embedded demo), never in this stack.
    assert "WEB_MIGRATE" not in stack["web"]["environment"]
    assert "--migrate" not in stack["web"]["command"]


def test_web_scales_sharing_nothing_but_postgres_redis_and_the_bucket():
    stack = services()
    web = stack["web"]
    assert "ports" not in web and web["expose"] == ["8000"]  # no fixed host port: --scale web=3 works
    for name in APP_SERVICES:
        assert "volumes" not in stack[name], f"{name} mounts a volume: replicas would share a disk"
        environment = stack[name]["environment"]
        assert environment["DATABASE_URL"].startswith("postgres://synthread:${POSTGRES_PASSWORD:?")
        assert environment["CELERY_BROKER_URL"].startswith("redis://redis")
        assert environment["STORAGE_BACKEND"] == "storages.backends.s3.S3Storage"
        assert environment["AWS_S3_ENDPOINT_URL"].endswith("http://minio:9000}")
        # One subject key for every node, required: a node with its own would split patients.
        assert environment["SUBJECT_HASH_KEY"].startswith("${SUBJECT_HASH_KEY:?")
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "STATIC_ROOT=/app/staticfiles" in dockerfile and "collectstatic" in dockerfile  # in the image


def test_a_tls_proxy_fronts_every_web_replica_and_django_trusts_only_it():
    proxy = services()["proxy"]
    assert proxy["image"].startswith("${CADDY_IMAGE:-caddy:")
    assert {"80:80", "443:443"} <= set(proxy["ports"])
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in proxy["volumes"]
    assert any(volume.startswith("caddy-data:") for volume in proxy["volumes"])  # certificates survive restarts
    caddyfile = (REPO / "deploy" / "Caddyfile").read_text()
    assert "{$SYNTHREAD_DOMAIN} {" in caddyfile  # a named site: automatic certificates and http → https
    # Every replica, found by DNS (the test knobs left at production's values by the stack).
    assert re.search(r"dynamic a \{\s*name \{\$WEB_UPSTREAM_NAME:web\}\s*port \{\$WEB_UPSTREAM_PORT:8000\}", caddyfile)
    assert set(proxy["environment"]) == {"SYNTHREAD_DOMAIN", "ACME_EMAIL"}
    environment = services()["web"]["environment"]
    assert environment["DJANGO_HTTPS"] == "true" and environment["TRUSTED_PROXY_COUNT"] == "1"
    assert environment["DJANGO_CSRF_TRUSTED_ORIGINS"] == "https://${SYNTHREAD_DOMAIN}"


def test_minio_keeps_its_data_and_uses_the_apps_key():
    minio = services()["minio"]
    assert "minio-data:/data" in minio["volumes"]
    assert minio["environment"]["MINIO_ROOT_USER"].startswith("${AWS_ACCESS_KEY_ID:?")
    assert minio["environment"]["MINIO_ROOT_PASSWORD"].startswith("${AWS_SECRET_ACCESS_KEY:?")


def test_every_long_running_service_has_a_health_check():
    stack = services()
    for name in ("proxy", "web", "worker-gpu", "worker-cpu", "postgres", "redis", "minio"):
        assert stack[name]["healthcheck"]["test"], name
    assert stack["worker-cpu"]["healthcheck"]["test"] == ["CMD", "python", "manage.py", "worker_alive"]
    assert "mc" in stack["minio"]["healthcheck"]["test"]
    assert "pg_isready" in " ".join(stack["postgres"]["healthcheck"]["test"])


def _variables_read() -> set[str]:
    """Every environment variable the settings, the bin/ scripts and the compose file read."""
    settings = (REPO / "readerstudy" / "settings.py").read_text()
    names = set(re.findall(r'env(?:\.\w+)?\("([A-Z][A-Z0-9_]+)"', settings))
    for script in (REPO / "bin").iterdir():
        names |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)", script.read_text()))
    names |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)", (REPO / "docker-compose.yml").read_text()))
    return names


def test_env_example_lists_every_variable():
    listed = set(re.findall(r"\b([A-Z][A-Z0-9_]{2,})\b", (REPO / ".env.example").read_text()))
    read = _variables_read()
    assert {"DJANGO_SECRET_KEY", "SYNTHREAD_DOMAIN", "POSTGRES_PASSWORD", "WEB_CONCURRENCY"} <= read
    assert read - listed == set()
    required = set(re.findall(r"\$\{([A-Z][A-Z0-9_]+):\?", (REPO / "docker-compose.yml").read_text()))
    settable = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (REPO / ".env.example").read_text(), re.MULTILINE))
    assert required <= settable  # every variable the stack refuses to start without is a line to fill in
