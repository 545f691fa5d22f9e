"""/healthz: the database, the broker, and whether any worker is alive."""

import pytest


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
