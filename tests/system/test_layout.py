"""The layout holds: the import contracts (pyproject.toml) are kept, and a web process that
serves reading pages, the admin and the API never loads TensorFlow, numba or SimpleITK (nor the
statistics libraries, until a results page is asked for)."""

import json
import subprocess
import sys

from tests.support import REPO

HEAVY = ("tensorflow", "keras", "numba", "SimpleITK")
RESULTS_ONLY = ("scipy", "statsmodels", "sklearn", "matplotlib")

# A fresh process, as a gunicorn worker is: the WSGI application, then requests from each role.
SERVE_PAGES = """
import json, sys
from readerstudy.wsgi import application  # noqa: F401  (what gunicorn loads)
from django.conf import settings
# Pages render without a collectstatic run (as in the root conftest).
static_files = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
settings.STORAGES = {**settings.STORAGES, "staticfiles": static_files}
from django.core.management import call_command
from django.test import Client
from readerstudy.core.roles import Role
from readerstudy.core.accounts import account_ensure
from readerstudy.reading.readers import reader_add
from readerstudy.reading.studies import study_create

call_command("migrate", verbosity=0)
study = study_create(name="layout")
reader_add(study=study, username="reader")
heavy, results_only = %r, %r

def loaded(names):
    return sorted(name for name in names if name in sys.modules)

pages = {
    Role.READER: ["/reading/", f"/reading/{study.pk}/", "/api/v1/me/", f"/api/v1/me/session?study={study.pk}"],
    Role.ADMIN: [
        "/admin/", "/admin/generator/volume/", "/admin/generator/volume/upload/", "/admin/generator/trainingjob/",
        "/admin/generator/bankimage/", "/admin/readerstudy/study/", f"/admin/readerstudy/study/{study.pk}/change/",
        "/admin/core/probejob/", "/admin/results/machineobserverjob/", "/generator/training/", "/generator/bank/",
        "/api/v1/studies/", "/api/v1/training-jobs/", "/api/v1/datasets/", "/api/schema/", "/healthz",
    ],
}
statuses = {}
for role, urls in pages.items():
    client = Client()
    username = "reader" if role is Role.READER else "admin"
    if role is Role.ADMIN:
        account_ensure(username="admin", password="unused-here", role=Role.ADMIN)
    from django.contrib.auth import get_user_model
    client.force_login(get_user_model().objects.get(username=username))
    for url in urls:
        statuses[url] = client.get(url).status_code
before_results = {"heavy": loaded(heavy), "results_only": loaded(results_only)}
admin = Client()
admin.force_login(get_user_model().objects.get(username="admin"))
statuses["/results/"] = admin.get(f"/results/{study.pk}/").status_code
statuses["/results/accuracy.png"] = admin.get(f"/results/{study.pk}/accuracy.png").status_code
print(json.dumps({"statuses": statuses, "before_results": before_results,
                  "after_results": {"heavy": loaded(heavy), "results_only": loaded(results_only)}}))
"""


def test_the_import_contracts_are_kept():
    linted = subprocess.run(
        [str(REPO / ".venv" / "bin" / "lint-imports")], cwd=REPO, capture_output=True, encoding="utf-8"
    )
    assert linted.returncode == 0, linted.stdout[-3000:]
    assert "0 broken" in linted.stdout


def test_web_processes_load_no_tensorflow_numba_or_simpleitk(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'web.sqlite3'}",
        "SYNTHREAD_VAR_DIR": str(tmp_path / "var"),
        "CELERY_BROKER_URL": "memory://",
        "DJANGO_SETTINGS_MODULE": "readerstudy.settings",
        "DJANGO_ALLOWED_HOSTS": "testserver",
        "PYTHONPATH": str(REPO),
    }
    (tmp_path / "var" / "staticfiles").mkdir(parents=True)
    served = subprocess.run(
        [sys.executable, "-c", SERVE_PAGES % (HEAVY, RESULTS_ONLY)],
        cwd=REPO,
        env=env,
        capture_output=True,
        encoding="utf-8",
        timeout=240,
    )
    assert served.returncode == 0, served.stderr[-3000:]
    report = json.loads(served.stdout.strip().splitlines()[-1])
    statuses = report["statuses"]
    failed = {url: status for url, status in statuses.items() if status >= 500 and url != "/healthz"}  # no worker
    assert not failed, json.dumps(statuses)
    opened = ["/reading/", "/admin/", "/admin/generator/volume/upload/", "/generator/bank/", "/api/schema/"]
    assert [statuses[url] for url in opened] == [200] * len(opened), statuses
    assert report["before_results"] == {"heavy": [], "results_only": []}
    # Results pages load what they draw with when asked for, and still no TensorFlow.
    assert statuses["/results/"] == statuses["/results/accuracy.png"] == 200
    assert report["after_results"]["heavy"] == []
    assert "matplotlib" in report["after_results"]["results_only"]
