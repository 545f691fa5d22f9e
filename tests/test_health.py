"""/healthz: the database, the broker, and whether any worker is alive."""

import signal

import pytest

from tests.conftest import wait_for


def healthz(client) -> tuple[int, dict]:
    response = client.get("/healthz")
    assert response["Content-Type"] == "application/json"
    return response.status_code, response.json()


@pytest.mark.django_db
def test_healthz_reports_no_worker_when_none_runs(client):
    status, report = healthz(client)
    assert status == 503
    assert report["database"]["ok"] and report["broker"]["ok"]
    assert report["workers"] == {"ok": False, "alive": []}
    assert report["ok"] is False


@pytest.mark.services
def test_healthz_sees_a_live_worker_then_its_death(client, start_worker):
    worker = start_worker("cpu")
    _, report = wait_for(lambda: (r := healthz(client))[0] == 200 and r, timeout=30, what="a healthy report")
    assert report["ok"] and report["workers"]["alive"][0]["queues"] == ["default"]
    worker.kill(signal.SIGKILL)
    _, report = wait_for(lambda: (r := healthz(client))[0] == 503 and r, timeout=15, what="the dead worker to show")
    assert report["workers"]["ok"] is False
    assert report["database"]["ok"] and report["broker"]["ok"]


@pytest.mark.django_db
def test_healthz_reports_a_broker_that_does_not_answer(client, settings):
    from celery import current_app

    current_app.conf.broker_write_url = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    try:
        status, report = healthz(client)
    finally:
        current_app.conf.broker_write_url = settings.CELERY_BROKER_URL
    assert status == 503
    assert report["broker"]["ok"] is False and report["broker"]["error"]
