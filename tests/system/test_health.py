"""/healthz: the database, the broker, and whether any worker is alive."""

import signal

import pytest

from tests.factories import UserFactory
from tests.support import wait_for


def healthz(client) -> tuple[int, dict]:
    response = client.get("/healthz")
    assert response["Content-Type"] == "application/json"
    return response.status_code, response.json()


@pytest.mark.services
def test_healthz_sees_a_live_worker_then_its_death(client, start_worker):
    client.force_login(UserFactory(role="admins"))  # the details are the admins'
    worker = start_worker("cpu")
    _, report = wait_for(lambda: (r := healthz(client))[0] == 200 and r, timeout=30, what="a healthy report")
    assert report["ok"] and report["workers"]["alive"][0]["queues"] == ["default"]
    worker.kill(signal.SIGKILL)
    _, report = wait_for(lambda: (r := healthz(client))[0] == 503 and r, timeout=15, what="the dead worker to show")
    assert report["workers"]["ok"] is False
    assert report["database"]["ok"] and report["broker"]["ok"]
