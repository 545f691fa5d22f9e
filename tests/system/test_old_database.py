"""Existing installations hold evidence: a database built at e1e0ce7 (2026-11-30, before the
apps were split: `manage.py demo --tiny`, a probe job and a failed machine-observer run) is
migrated to today's head without losing or altering a call, and its study's results and bank
images read as before. Every later schema change must pass this test.

The database is a copy of ``tests/data/db-e1e0ce7/synthread.sqlite3`` with its bank images
beside it; it is migrated and read by ``manage.py`` in a process of its own (the test process
is bound to the suite's PostgreSQL)."""

import json
import shutil
import sqlite3
import subprocess
import sys

import pytest

from tests.support import REPO

OLD = REPO / "tests" / "data" / "db-e1e0ce7"
CALLS = "SELECT id, session_id, position, bank_image_id, call, expired, shown_at, answered_at FROM readerstudy_trial"

READ_BACK = """
import json
from django.contrib.contenttypes.models import ContentType
from django.db.models import F
from generator.ml.rendering import pixel_checksum
from generator.models import BankImage, Subject, Volume
from readerstudy.core.models import ProbeJob, ProbeTick
from readerstudy.reading.models import PoolEntry, PoolSubject, Study
from readerstudy.results.models import MachineObserverJob
from readerstudy.results.scoring import study_table_rows

study = Study.objects.get()
rows = study_table_rows(study=study)
image = BankImage.objects.filter(trials__isnull=False).order_by("pk").first()
with image.file.open("rb") as stored:
    png = stored.read()
print(json.dumps({
    "rows": [{k: row.get(k) for k in ("reader", "tp", "fn", "fp", "tn", "expired")} for row in rows],
    "image": {"pk": image.pk, "stored": image.pixel_checksum, "read": pixel_checksum(png)},
    "probe": [ProbeJob.objects.get().state, ProbeTick.objects.count()],
    "twins": {pk: [status, reason] for pk, status, reason in BankImage.objects.filter(pk__in=[1, 2, 3, 49])
              .values_list("pk", "status", "exclusion_reason")},
    "people_in_pools": [
        PoolSubject.objects.filter(study=study).count(),
        sum(PoolSubject.objects.filter(study=study).values_list("size", flat=True)),
        PoolEntry.objects.filter(study=study, image_class="real").count(),
    ],
    "subjects": {
        "labels": list(Subject.objects.values_list("label", flat=True)),
        "volumes": [[v.pk, v.subject.label] for v in Volume.objects.order_by("pk")],
        "real_without_subject": BankImage.objects.filter(image_class="real", subject=None).count(),
        "real_of_their_volume": BankImage.objects.filter(image_class="real", subject=F("volume__subject")).count(),
        "synthetic_with_subject": BankImage.objects.filter(image_class="synthetic").exclude(subject=None).count(),
    },
    "observer": [MachineObserverJob.objects.get().state, MachineObserverJob.objects.get().study_id],
    "researchers": list(study.researchers.values_list("username", flat=True)),
    "content_types": {
        f"{ct.app_label}.{ct.model}": ct.pk
        for ct in ContentType.objects.filter(
            model__in=["probejob", "probetick", "workerheartbeat", "machineobserverjob"]
        )
    },
}))
"""


def _query(path, sql):
    with sqlite3.connect(path) as database:
        return database.execute(sql).fetchall()


@pytest.fixture
def old_installation(tmp_path):
    installation = tmp_path / "installation"  # tmp_path/media is the root conftest's MEDIA_ROOT
    installation.mkdir()
    shutil.copy(OLD / "synthread.sqlite3", installation / "synthread.sqlite3")
    shutil.copytree(OLD / "media", installation / "media")
    return installation


def _manage(installation, *args, **kwargs):
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": f"sqlite:///{installation / 'synthread.sqlite3'}",
        "SYNTHREAD_VAR_DIR": str(installation / "var"),
        "MEDIA_ROOT": str(installation / "media"),
        "CELERY_BROKER_URL": "memory://",
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        encoding="utf-8",
        timeout=240,
        **kwargs,
    )


def _make_twins(database) -> None:
    """Two pairs of bank images with the same pixels, as fills and imports could make before #19:
    a later unseen copy of a shown image (49 of 1), and an earlier unseen one of a shown image (2 of 3)."""
    with sqlite3.connect(database) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(generator_bankimage)") if row[1] != "id"]
        listed = ", ".join(columns)
        copied = ", ".join(
            "'twin-key-49'" if c == "storage_key" else "NULL" if c == "first_shown_at" else c for c in columns
        )
        db.execute(
            f"INSERT INTO generator_bankimage (id, {listed}) SELECT 49, {copied} FROM generator_bankimage WHERE id = 1"
        )
        shown = db.execute("SELECT pixel_checksum FROM generator_bankimage WHERE id = 3").fetchone()[0]
        db.execute("UPDATE generator_bankimage SET pixel_checksum = ? WHERE id = 2", [shown])


def test_a_database_from_e1e0ce7_migrates_to_head_keeping_every_call(old_installation):
    database = old_installation / "synthread.sqlite3"
    _make_twins(database)
    calls_before = _query(database, CALLS)
    content_types_before = dict(
        _query(database, "SELECT model, id FROM django_content_type WHERE app_label = 'readerstudy'")
    )
    assert len(calls_before) == 10 and all(call for _, _, _, _, call, *_ in calls_before)
    assert len(_query(database, "SELECT id FROM django_celery_results_taskresult")) > 0  # what core 0003 drops

    migrated = _manage(old_installation, "migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stderr
    assert "Applying core.0001_initial... OK" in migrated.stdout
    assert _manage(old_installation, "makemigrations", "--check", "--dry-run").returncode == 0

    assert _query(database, CALLS) == calls_before  # not one call lost or altered
    # django-celery-results has left (core 0003): its tables, its migration history, its content
    # types and their permissions.
    leftovers = {
        "tables": "SELECT name FROM sqlite_master WHERE name LIKE 'django_celery_results%'",
        "migrations": "SELECT name FROM django_migrations WHERE app = 'django_celery_results'",
        "content types": "SELECT id FROM django_content_type WHERE app_label = 'django_celery_results'",
        "permissions": (
            "SELECT id FROM auth_permission WHERE content_type_id NOT IN (SELECT id FROM django_content_type)"
        ),
    }
    assert {what: _query(database, sql) for what, sql in leftovers.items()} == {what: [] for what in leftovers}
    read = _manage(old_installation, "shell", "-c", READ_BACK)
    assert read.returncode == 0, read.stderr
    found = json.loads(read.stdout.strip().splitlines()[-1])

    simulated = [row for row in found["rows"] if row["reader"] == "demo-simulated (simulated)"]
    assert len(simulated) == 1
    # Access by study (#26): the researchers who saw every study before keep seeing this one.
    assert found["researchers"] == ["demo-researcher"]
    row = simulated[0]
    main_calls = [c for c in calls_before if c[2] >= 2]  # positions 0-1 are the two training images
    assert row["tp"] + row["fn"] + row["fp"] + row["tn"] + row["expired"] == len(main_calls) == 8
    assert found["image"]["read"] == found["image"]["stored"]
    assert found["probe"] == ["succeeded", 10]
    # One copy per image (generator 0006): the later unseen twin goes, the shown one stays, whatever its id.
    assert found["twins"] == {
        "1": ["active", ""],
        "49": ["excluded", "same pixels as bank image 1"],
        "2": ["excluded", "same pixels as bank image 3"],
        "3": ["active", ""],
    }
    # People in pools (readerstudy 0009): every real entry counted once among its study's people.
    people, counted, real_entries = found["people_in_pools"]
    assert people >= 1 and counted == real_entries > 0
    # Subjects are people (0005): the one volume became one subject with its old label, and every
    # real image shows its volume's subject.
    assert found["subjects"] == {
        "labels": ["sub-001"],
        "volumes": [[1, "sub-001"]],
        "real_without_subject": 0,
        "real_of_their_volume": 24,
        "synthetic_with_subject": 0,
    }
    assert found["observer"][0] == "failed" and found["observer"][1] is not None
    # The moved models' content types keep their ids (permissions and admin log entries follow).
    assert found["content_types"] == {
        "core.probejob": content_types_before["probejob"],
        "core.probetick": content_types_before["probetick"],
        "core.workerheartbeat": content_types_before["workerheartbeat"],
        "results.machineobserverjob": content_types_before["machineobserverjob"],
    }
