"""What one web worker costs before it serves anyone: a gunicorn worker of the app (what bin/web
runs) from spawn to its first HTTP answer, its resident memory once it has served a reading page,
the login page and the API, and which heavy libraries (TensorFlow, numba, SciPy, …) it imported.

The baseline is a bare WSGI app (written to a temporary folder) under the same gunicorn command.
The app runs on a throwaway SQLite database and var folder, so no test run's PostgreSQL is touched;
its static files are collected once into var/bench_web_process/ (whitenoise's manifest: without
it every page with a static file is a 500) and again only when static/ or the requirements change.

Which modules the worker imported comes from a child process (``python -m
benchmarks.bench_web_process RESULT``) that does what the worker does: it imports the WSGI module
(``django.setup()``), the URLconf, and asks for the same pages through Django's test client; it
also notes which project import first pulled each heavy module in. The worker's own memory map is
the cross-check: a package whose compiled files are mapped in the worker was imported there.
"""

import contextlib
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WSGI_APP = "readerstudy.wsgi:application"  # what bin/web runs
HEAVY_MODULES = ("tensorflow", "numba", "SimpleITK", "scipy", "statsmodels", "sklearn", "matplotlib")
# Anonymous requests: a redirect or a 403 imports the same views, serializers and schema classes.
PAGES = ("/", "/reading/", "/admin/login/", "/accounts/login/", "/api/schema/", "/api/v1/me/")
FIRST_PATH = "/healthz"  # 503 without a Celery worker; any HTTP answer counts
RUNS = 3
START_TIMEOUT_S = 180.0
STATIC_CACHE = ROOT / "var" / "bench_web_process" / "staticfiles"
BARE_APP = '''"""The baseline: no Django, no database."""


def application(environ, start_response):
    body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


def main() -> dict:
    cpu = _cpu()
    print(
        f"{cpu['model']}: {os.cpu_count()} cores, avx512f {'yes' if cpu['avx512f'] else 'no'}, "
        f"avx2 {'yes' if cpu['avx2'] else 'no'}; load {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-web-process-") as temporary:
        folder = Path(temporary)
        env = _app_environment(folder)
        _prepare(env)
        imports = _imported_modules(folder, env)
        (folder / "bare").mkdir()
        (folder / "bare" / "bare_wsgi.py").write_text(BARE_APP)
        app_runs, bare_runs = [], []
        for run in range(RUNS):  # interleaved, so a burst of other jobs falls on both alike
            bare_runs.append(_worker_run(folder / "bare", "bare_wsgi:application", env, folder / f"bare-{run}.log"))
            app_runs.append(_worker_run(ROOT, WSGI_APP, env, folder / f"app-{run}.log"))
            for label, figures in (("bare", bare_runs[-1]), ("app ", app_runs[-1])):
                print(
                    f"  run {run + 1} {label}: start-up {figures['startup_s']:.2f} s, RSS {figures['rss_mib']:.1f} MiB"
                )
    app, bare = _summary(app_runs), _summary(bare_runs)
    startup_ratio, rss_ratio = app["startup_s"] / bare["startup_s"], app["rss_mib"] / bare["rss_mib"]
    statuses = app_runs[-1]["statuses"]
    print(f"app pages (anonymous): {', '.join(f'{path} {status}' for path, status in statuses.items())}")
    if any(status >= 500 for path, status in statuses.items() if path != FIRST_PATH):
        print("  WARNING: a page answered 5xx: its imports may be cut short; see the worker's log")
    print(
        f"start-up to the first answer (median of {RUNS}): app {app['startup_s']:.2f} s, "
        f"bare {bare['startup_s']:.2f} s → {startup_ratio:.1f}×"
    )
    print(
        f"worker RSS after the pages (median of {RUNS}): app {app['rss_mib']:.0f} MiB, bare {bare['rss_mib']:.0f} MiB "
        f"→ {rss_ratio:.1f}×"
    )
    loaded = imports["loaded"]
    print(f"heavy modules the worker imports: {', '.join(loaded) or 'none'} (of {', '.join(HEAVY_MODULES)})")
    for name in loaded:
        first = imports["first_import"].get(name, {})
        print(f"  {name:11s} during {first.get('stage', '?')}, via {first.get('via') or '(no project frame)'}")
    mapped = app_runs[-1]["mapped"]
    agrees = set(mapped) <= set(loaded)
    print(
        f"  cross-check, compiled files mapped in the worker: {', '.join(mapped) or 'none'}"
        + ("" if agrees else "  (NOT all in the list above: the child and the worker differ)")
    )
    return {
        "cpu": cpu,
        "app": app,
        "baseline": bare,
        "startup_ratio": startup_ratio,
        "rss_ratio": rss_ratio,
        "heavy_modules": loaded,
        "heavy_first_import": imports["first_import"],
        "heavy_mapped_in_worker": mapped,
        "statuses": statuses,
    }


def _cpu() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return {"model": model, "avx512f": "avx512f" in flags, "avx2": "avx2" in flags}


def _app_environment(folder: Path) -> dict:
    var = folder / "var"
    env = {key: value for key, value in os.environ.items() if key != "GUNICORN_CMD_ARGS"}
    return env | {
        "DJANGO_SETTINGS_MODULE": "readerstudy.settings",
        "DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}",
        "SYNTHREAD_VAR_DIR": str(var),
        "STATIC_ROOT": str(var / "staticfiles"),  # the link to the collected cache (_prepare)
        "MEDIA_ROOT": str(var / "media"),
        "TRAINING_WORK_DIR": str(var / "training"),
        "CELERY_BROKER_URL": "filesystem://localhost/",  # the embedded default
    }


def _prepare(env: dict) -> None:
    """The database migrated and the static files in place, as bin/web leaves them; not timed."""
    var = Path(env["SYNTHREAD_VAR_DIR"])
    var.mkdir()
    _manage(env, "migrate", "--noinput")
    manifest = STATIC_CACHE / "staticfiles.json"
    # What bin/web compares with its manifest: static/ and the lock files.
    sources = [*ROOT.glob("requirements*.lock"), *(path for path in (ROOT / "static").rglob("*") if path.is_file())]
    if not manifest.exists() or any(path.stat().st_mtime > manifest.stat().st_mtime for path in sources):
        print(f"collecting the static files into {STATIC_CACHE} (once; whitenoise compresses them: a minute or so)")
        _manage(env | {"STATIC_ROOT": str(STATIC_CACHE)}, "collectstatic", "--noinput", "-v", "0")
    (var / "staticfiles").symlink_to(STATIC_CACHE, target_is_directory=True)


def _manage(env: dict, *arguments: str) -> None:
    done = subprocess.run([sys.executable, "manage.py", *arguments], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"manage.py {arguments[0]} failed: {done.stderr[-2000:]}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def _gunicorn(cwd: Path, app: str, env: dict, log_path: Path) -> Iterator[tuple[subprocess.Popen, int]]:
    port = _free_port()
    command = [sys.executable, "-m", "gunicorn", app, "--workers", "1", "--threads", "1"]
    command += ["--worker-class", "gthread", "--bind", f"127.0.0.1:{port}", "--no-control-socket"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield process, port
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def _get(port: int, path: str, timeout_s: float = 60.0) -> int:
    """The status of one GET, redirects not followed."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _worker_run(cwd: Path, app: str, env: dict, log_path: Path) -> dict:
    """Spawn gunicorn, time its first HTTP answer, ask for the pages, read the worker's RSS."""
    import psutil

    started = time.perf_counter()
    with _gunicorn(cwd, app, env, log_path) as (process, port):
        # The master listens before its worker boots: a connection waits in the backlog until the
        # worker has imported the app, so the first answer comes once the worker can serve.
        while True:
            if process.poll() is not None or time.perf_counter() - started > START_TIMEOUT_S:
                raise RuntimeError(f"gunicorn gave no answer: {log_path.read_text(errors='replace')[-2000:]}")
            try:
                first_status = _get(port, FIRST_PATH, timeout_s=START_TIMEOUT_S)
                break
            except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
                time.sleep(0.01)
        startup_s = time.perf_counter() - started
        statuses = {FIRST_PATH: first_status} | {path: _get(port, path) for path in PAGES}
        workers = psutil.Process(process.pid).children()
        if len(workers) != 1:
            raise RuntimeError(f"expected one gunicorn worker, found {len(workers)}")
        worker = workers[0].pid
        status = Path(f"/proc/{worker}/status").read_text()
        rss_kib = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
        maps = Path(f"/proc/{worker}/maps").read_text()
        mapped = [name for name in HEAVY_MODULES if f"/site-packages/{name}/" in maps]
    return {"startup_s": startup_s, "rss_mib": rss_kib / 1024, "statuses": statuses, "mapped": mapped}


def _summary(runs: list[dict]) -> dict:
    return {
        "startup_s": statistics.median(run["startup_s"] for run in runs),
        "rss_mib": statistics.median(run["rss_mib"] for run in runs),
        "startup_s_runs": [run["startup_s"] for run in runs],
        "rss_mib_runs": [run["rss_mib"] for run in runs],
    }


def _imported_modules(folder: Path, env: dict) -> dict:
    result = folder / "imports.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_web_process", str(result)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise RuntimeError(f"the import probe failed: {done.stderr[-2000:]}")
    return json.loads(result.read_text())


# --- the child: what the worker imports ------------------------------------------------------------


class _FirstImport:
    """A finder that only watches: the first import of each heavy module, and the project frames
    (this repository's files) that led to it."""

    def __init__(self) -> None:
        self.stage = "start"
        self.seen: dict[str, dict] = {}

    def find_spec(self, fullname, path=None, target=None):
        if fullname in HEAVY_MODULES and fullname not in self.seen:
            import traceback

            frames = [
                frame
                for frame in traceback.extract_stack()
                if frame.filename.startswith(str(ROOT))
                and "/site-packages/" not in frame.filename
                and Path(frame.filename).resolve() != Path(__file__).resolve()
            ]
            via = " → ".join(f"{Path(frame.filename).relative_to(ROOT)}:{frame.lineno}" for frame in frames)
            self.seen[fullname] = {"stage": self.stage, "via": via}
        return None  # the real finders do the importing


def _probe() -> dict:
    import importlib

    witness = _FirstImport()
    sys.meta_path.insert(0, witness)
    witness.stage = "django.setup() (the WSGI module)"
    importlib.import_module(WSGI_APP.split(":")[0])
    from django.conf import settings

    witness.stage = f"the URLconf ({settings.ROOT_URLCONF})"
    importlib.import_module(settings.ROOT_URLCONF)
    from django.test import Client

    witness.stage = "the pages"
    client = Client(HTTP_HOST="127.0.0.1")
    for path in (FIRST_PATH, *PAGES):
        client.get(path)
    return {
        "loaded": [name for name in HEAVY_MODULES if name in sys.modules],
        "first_import": witness.seen,
    }


if __name__ == "__main__":
    Path(sys.argv[1]).write_text(json.dumps(_probe()))
