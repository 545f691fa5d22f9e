"""/healthz: the database, the broker, and whether any worker is alive."""

import io

import pytest

from tests.factories import UserFactory


def healthz(client, **headers) -> tuple[int, dict]:
    response = client.get("/healthz", headers=headers)
    assert response["Content-Type"] == "application/json"
    return response.status_code, response.json()


@pytest.fixture
def admin_client(client, db):
    client.force_login(UserFactory(role="admins"))
    return client


@pytest.mark.django_db
def test_anyone_gets_ok_or_not_and_only_admins_or_the_token_get_the_details(client, settings):
    settings.HEALTHZ_TOKEN = "monitoring-token"
    assert healthz(client) == (503, {"ok": False})  # no worker: not ok, and nothing more (no host names)
    for role in ("readers", "researchers"):
        client.force_login(UserFactory(role=role))
        assert healthz(client) == (503, {"ok": False})
    client.logout()
    assert healthz(client, Authorization="Bearer a-wrong-token") == (503, {"ok": False})
    status, report = healthz(client, Authorization="Bearer monitoring-token")
    assert status == 503 and set(report) == {"ok", "database", "broker", "workers"}
    settings.HEALTHZ_TOKEN = ""  # unset: no token opens the details, not even an empty one
    assert healthz(client, Authorization="Bearer ") == (503, {"ok": False})


@pytest.mark.django_db
def test_healthz_reports_no_worker_when_none_runs(admin_client):
    client = admin_client
    status, report = healthz(client)
    assert status == 503
    assert report["database"]["ok"] and report["broker"]["ok"]
    assert report["workers"] == {"ok": False, "alive": []}
    assert report["ok"] is False


@pytest.mark.django_db
def test_healthz_reports_a_broker_that_does_not_answer(admin_client, settings):
    client = admin_client
    from celery import current_app

    current_app.conf.broker_write_url = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    try:
        status, report = healthz(client)
    finally:
        current_app.conf.broker_write_url = settings.CELERY_BROKER_URL
    assert status == 503
    assert report["broker"]["ok"] is False and report["broker"]["error"]


@pytest.mark.django_db
def test_worker_alive_answers_for_the_workers_of_one_host(settings):
    from datetime import timedelta

    from django.core.management import CommandError, call_command
    from django.utils import timezone

    from readerstudy.core.models import WorkerHeartbeat

    now = timezone.now()
    stale = now - timedelta(seconds=4 * settings.WORKER_HEARTBEAT_S)
    for name, last_seen in (("gpu-1@box-a", now), ("cpu-7@box-b", stale), ("cpu-1@box-ab", now)):
        WorkerHeartbeat.objects.create(name=name, queues="q", pid=1, started_at=now, last_seen=last_seen)
    out = io.StringIO()
    call_command("worker_alive", "--host", "box-a", stdout=out)
    assert out.getvalue().strip() == "gpu-1@box-a"  # not box-ab's
    with pytest.raises(CommandError, match="No worker on box-b"):
        call_command("worker_alive", "--host", "box-b")  # its last beat is too old
