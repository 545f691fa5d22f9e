"""Faults during a study (issue #9): the broker stopped (reading goes on, the admin says so) and
the database connection dropped between a call's send and its answer (the browser's retry
records the call exactly once). A worker killed mid-training resuming from its checkpoint is
tested in test_training_jobs.py."""

import json
import subprocess
import time

import numpy as np
import psycopg
import pytest
import redis
from celery import Celery, current_app
from django.db import connection, connections
from django.test import Client
from playwright.sync_api import expect

from generator.bank import bank_image_store
from readerstudy.core.jobs import BROKER_DOWN_NOTE, JobState, jobs_requeue_lapsed
from readerstudy.core.models import ProbeJob
from readerstudy.core.probes import probe_job_create
from readerstudy.reading.models import Reader, Study, Trial
from readerstudy.reading.pools import study_set_pools
from readerstudy.reading.sessions import study_open
from tests.factories import UserFactory
from tests.support import free_port, wait_for
from tests.system.reading_pages import answer_display_check

BANNER = b"The job broker is down: new jobs wait and are sent when it is back; reading is not affected."


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _study(*, per_session: int, training: int, time_limit_s: float | None = 10.0) -> Study:
    rng = np.random.default_rng(5)

    def bank(count: int, image_class: str) -> list:
        return [
            bank_image_store(
                pixels=rng.uniform(-1, 1, (32, 32)).astype(np.float32), image_class=image_class, generator_name="t"
            )
            for _ in range(count)
        ]

    half = per_session // 2
    study = Study.objects.create(
        name="faults",
        images_per_session=per_session,
        synthetic_min=half,
        synthetic_max=half,
        training_images=training,
        time_limit_s=time_limit_s,
    )
    study_set_pools(
        study=study,
        main_pool=bank(per_session, "real") + bank(per_session, "synthetic"),
        training_pool=bank(training // 2, "real") + bank(training // 2, "synthetic"),
    )
    return study_open(study=study)


# --- the broker stopped ------------------------------------------------------------------------


class OwnRedis:
    """A redis-server of the test's own on a spare port: stopping it never touches the shared one."""

    def __init__(self, folder) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.folder = folder
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder)),
                *("--save", "", "--appendonly", "no", "--daemonize", "no"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)

        def answers() -> bool:
            try:
                return client.ping()
            except redis.ConnectionError:
                return False

        wait_for(answers, timeout=10, what="the test's own redis-server", interval=0.05)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def _forget_broker_connections() -> None:
    """Celery makes its pools of broker connections on the first task sent, from the URL of that
    moment, and keeps them: drop them (as Celery does after a fork) whenever the URL changes, or
    later tests would send to this test's stopped broker."""
    current_app._pool = None
    current_app.amqp._producer_pool = None


@pytest.fixture
def own_broker(tmp_path, settings, monkeypatch):
    """The app's broker pointed at a redis-server of the test's own (Celery reads the
    environment before its configuration, hence both)."""
    broker = OwnRedis(tmp_path)
    broker.start()
    settings.CELERY_BROKER_URL = broker.url
    monkeypatch.setenv("CELERY_BROKER_URL", broker.url)
    monkeypatch.setenv("CELERY_BROKER_WRITE_URL", broker.url)
    _forget_broker_connections()
    yield broker
    broker.stop()
    _forget_broker_connections()  # made again on the next send, from the URL restored by then


@pytest.fixture
def broker_traffic(monkeypatch) -> dict:
    """Every task sent and every Redis connection opened, by anything in this process."""
    seen = {"tasks": [], "redis_connects": 0}
    send_task, connect = Celery.send_task, redis.connection.AbstractConnection.connect

    def counting_send_task(self, name, *args, **kwargs):
        seen["tasks"].append(name)
        return send_task(self, name, *args, **kwargs)

    def counting_connect(self, *args, **kwargs):
        seen["redis_connects"] += 1
        return connect(self, *args, **kwargs)

    monkeypatch.setattr(Celery, "send_task", counting_send_task)
    monkeypatch.setattr(redis.connection.AbstractConnection, "connect", counting_connect)
    return seen


def _read(client, study: Study, trials: int, capture) -> list[int]:
    """Read ``trials`` trials through the reader's API (what the reading page does), running
    whatever the requests leave for after their commits; returns the statuses of the calls."""
    statuses = []
    with capture(execute=True):
        for _ in range(trials):
            state = client.get(f"/api/v1/me/session?study={study.pk}").json()
            assert client.get(state["image_url"]).status_code == 200
            call = client.post(
                f"/api/v1/me/calls?study={study.pk}",
                {"token": state["token"], "call": "real"},
                content_type="application/json",
            )
            statuses.append(call.status_code)
    return statuses


ADMIN_PAGES = [
    "/admin/",
    "/admin/readerstudy/study/",
    "/admin/readerstudy/reader/",
    "/admin/generator/trainingjob/",
    "/admin/generator/volume/upload/",
]


@pytest.mark.django_db
def test_reading_goes_on_without_the_broker_and_the_admin_says_it_is_down(
    client, own_broker, broker_traffic, django_capture_on_commit_callbacks
):
    study = _study(per_session=6, training=2)
    admin, reader = UserFactory(role="admins"), UserFactory(role="readers")
    Reader.objects.create(user=reader, study=study)
    admin_client = Client()
    admin_client.force_login(admin)
    page = admin_client.get("/admin/")
    assert page.status_code == 200 and BANNER not in page.content  # the broker answers

    client.force_login(reader)
    for path in (f"/reading/{study.pk}/", f"/reading/{study.pk}/read"):
        assert client.get(path).status_code == 200
    broker_traffic["redis_connects"] = 0
    statuses = _read(client, study, 3, django_capture_on_commit_callbacks)

    own_broker.stop()  # mid-study
    statuses += _read(client, study, 5, django_capture_on_commit_callbacks)
    assert client.get(f"/api/v1/me/session?study={study.pk}").json()["phase"] == "finished"
    assert client.get(f"/reading/{study.pk}/thanks").status_code == 200
    assert statuses == [201] * 8
    assert not Trial.objects.filter(session__reader__user=reader, call="").exists()
    # Reading never needed the broker: no task sent, not one Redis connection opened.
    assert broker_traffic == {"tasks": [], "redis_connects": 0}

    for path in [*ADMIN_PAGES, f"/admin/readerstudy/study/{study.pk}/change/"]:
        started = time.perf_counter()
        page = admin_client.get(path)
        assert page.status_code == 200, path
        assert BANNER in page.content, path
        assert time.perf_counter() - started < 3, f"{path} waited on the dead broker"
    health = admin_client.get("/healthz")
    assert health.status_code == 503 and health.json()["broker"]["ok"] is False and health.json()["database"]["ok"]

    own_broker.start()  # back on the same port: the banner goes
    assert BANNER not in admin_client.get("/admin/").content


@pytest.mark.django_db
def test_a_job_queued_while_the_broker_is_down_is_sent_once_it_is_back(own_broker, django_capture_on_commit_callbacks):
    own_broker.stop()
    with django_capture_on_commit_callbacks(execute=True):
        job = probe_job_create(steps=1, step_seconds=0)  # the request that queues it does not fail
    job.refresh_from_db()
    assert (job.state, job.queued_at) == (JobState.QUEUED, None)
    assert BROKER_DOWN_NOTE in job.log
    with django_capture_on_commit_callbacks(execute=True):
        jobs_requeue_lapsed()  # the periodic check while the broker is still down: nothing lost
    job.refresh_from_db()
    assert (job.state, job.queued_at) == (JobState.QUEUED, None)

    own_broker.start()
    with django_capture_on_commit_callbacks(execute=True):
        assert [touched.pk for touched in jobs_requeue_lapsed()] == [job.pk]
    job.refresh_from_db()
    assert job.state == JobState.QUEUED and job.queued_at is not None and "sent again" in job.log
    message = json.loads(redis.Redis(port=own_broker.port).lpop(job.queue_name()))
    assert (
        message["headers"]["task"] == ProbeJob.task_name
        and message["headers"]["kwargsrepr"] == f"{{'job_id': {job.pk}}}"
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs_requeue_lapsed() == []  # sent once: not again at the next check


# --- the database connection dropped mid-call ------------------------------------------------------


def _terminate_backend(pid: int) -> None:
    """pg_terminate_backend from a connection of its own, then wait until the backend has gone."""
    killer = psycopg.connect(**connections["default"].get_connection_params(), autocommit=True)
    try:
        with killer.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            for _ in range(500):  # a busy machine may take a while to reap it
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
                if cursor.fetchone()[0] == 0:
                    return
                time.sleep(0.02)
        raise AssertionError(f"backend {pid} did not go away")
    finally:
        killer.close()


def _drop_this_connection() -> None:
    """Kill the database connection of the thread that calls this (the live server's)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    _terminate_backend(pid)


@pytest.mark.django_db(transaction=True)
def test_a_call_whose_database_connection_drops_is_recorded_exactly_once(page, live_server, monkeypatch):
    """Two drops, the reading page's own retry each time: after the call's commit (the answer is
    lost, the retry is a replay) and inside its transaction (the call is lost, the retry records
    it). (Django's live server opens a connection per request, so a connection dropped while
    idle is not staged here; CONN_HEALTH_CHECKS replaces such a one before use.)"""
    from readerstudy.reading import api, trials

    study = _study(per_session=2, training=2, time_limit_s=None)  # no clock: timing cannot interfere
    user = UserFactory(role="readers")
    Reader.objects.create(user=user, study=study)
    dropped, committed = [], []
    call_decide, call_record, reader_state = trials.call_decide, api.call_record, api._reader_state

    def note_the_commit(**kwargs):
        outcome = call_record(**kwargs)
        committed.append(outcome.trial.position)
        return outcome

    def drop_after_commit(session):  # the call's answer reads the next state after the commit
        if committed and not dropped:
            dropped.append("after commit")
            _drop_this_connection()
        return reader_state(session)

    def drop_inside_transaction(*, trial, **kwargs):  # runs between the row lock and the write
        if trial.position == 1 and "inside transaction" not in dropped:
            dropped.append("inside transaction")
            _drop_this_connection()
        return call_decide(trial=trial, **kwargs)

    monkeypatch.setattr(api, "call_record", note_the_commit)
    monkeypatch.setattr(api, "_reader_state", drop_after_commit)
    monkeypatch.setattr(trials, "call_decide", drop_inside_transaction)

    calls = []
    page.on(
        "response",
        lambda response: calls.append(response.status) if "/api/v1/me/calls" in response.url else None,
    )
    browser_session = Client()
    browser_session.force_login(user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": browser_session.cookies["sessionid"].value, "url": live_server.url}]
    )
    page.goto(f"{live_server.url}/reading/{study.pk}/read")
    answer_display_check(page)

    def call_by_key(label: str, key: str) -> None:
        expect(page.locator("#phase-label")).to_have_text(label)
        expect(page.locator("#trial-image")).to_be_visible()
        page.keyboard.press(key)

    for index, key in ((1, "r"), (2, "s")):
        call_by_key(f"Practice {index} of 2", key)
        expect(page.locator("#panel-text")).to_contain_text("this image is")  # the retry's answer
        page.keyboard.press("Space")
    call_by_key("Image 1 of 2", "r")
    call_by_key("Image 2 of 2", "s")
    expect(page.locator("h1")).to_have_text("Thank you")

    assert dropped == ["after commit", "inside transaction"]
    # Each dropped call answered 500 once, then the page's retry: a replay (200), a record (201).
    assert calls == [500, 200, 500, 201, 201, 201]
    trials_now = Trial.objects.filter(session__reader__user=user).order_by("position")
    outcomes = list(trials_now.values_list("call", "expired"))
    assert outcomes == [("real", False), ("synthetic", False), ("real", False), ("synthetic", False)]
