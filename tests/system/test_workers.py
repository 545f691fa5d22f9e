"""Real Celery workers (Redis broker, PostgreSQL): tasks run, dead workers' jobs are rescued,
and no job ever runs on two workers at once."""

import signal

import pytest
from celery import current_app
from django.utils import timezone

from readerstudy.core.jobs import JobState
from readerstudy.core.models import ProbeJob, ProbeTick
from readerstudy.core.probes import probe_job_create
from tests.support import REPO, wait_for

pytestmark = pytest.mark.services


def owner_runs(job: ProbeJob) -> list[str]:
    """The owners of a job's ticks in time order, consecutive repeats folded: [A, B] is one
    hand-over; [A, B, A] would be two workers running it at once."""
    runs: list[str] = []
    for owner in ProbeTick.objects.filter(job=job).order_by("at", "pk").values_list("owner", flat=True):
        if not runs or runs[-1] != owner:
            runs.append(owner)
    return runs


def finished(job: ProbeJob) -> bool:
    job.refresh_from_db()
    return job.is_finished


def test_a_real_worker_runs_a_task_that_writes_rows(start_worker):
    start_worker("cpu")
    job = probe_job_create(queue="default", steps=3, step_seconds=0.05)
    wait_for(lambda: finished(job), timeout=60, what="the probe job to finish")
    assert job.state == JobState.SUCCEEDED
    assert list(job.ticks.values_list("step", flat=True)) == [1, 2, 3]
    assert job.progress == {"step": 3, "total": 3}


def _kill_mid_job(start_worker) -> tuple[ProbeJob, str]:
    first = start_worker("gpu")
    job = probe_job_create(queue="gpu", steps=40, step_seconds=0.1)
    wait_for(lambda: job.ticks.count() >= 10, timeout=60, what="the job to be under way")
    wait_for(
        lambda: ProbeJob.objects.get(pk=job.pk).progress.get("step", 0) >= 5, timeout=10, what="progress on the row"
    )
    first.kill(signal.SIGKILL)
    job.refresh_from_db()
    assert job.state == JobState.RUNNING  # nobody said it ended: only the lease can tell
    return job, job.lease_owner


def _assert_resumed_once(job: ProbeJob, dead_owner: str) -> None:
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.log
    assert job.attempts == 2
    assert f"lease of {dead_owner} lapsed; re-queued" in job.log
    runs = owner_runs(job)
    assert len(runs) == 2 and runs[0] == dead_owner, runs  # one hand-over, never interleaved
    resumed_at = ProbeTick.objects.filter(job=job, owner=runs[1]).order_by("at").first().step
    assert resumed_at > 1, "the second worker restarted from zero"
    assert ProbeTick.objects.filter(job=job, step=job.steps).count() == 1


def test_a_killed_workers_job_is_requeued_by_the_next_worker_to_start(start_worker, settings):
    job, dead_owner = _kill_mid_job(start_worker)
    wait_for(
        lambda: ProbeJob.objects.get(pk=job.pk).lease_expires_at < timezone.now(),
        timeout=settings.JOB_LEASE_TTL_S + 5,
        what="the lease to lapse",
    )
    start_worker("gpu")  # no beat runs: only the start-up check can rescue the job
    wait_for(lambda: finished(job), timeout=60, what="the rescued job to finish")
    _assert_resumed_once(job, dead_owner)


def test_a_killed_workers_job_is_requeued_by_the_periodic_check(start_worker, start_process, service_env):
    # A lease long enough that the next worker surely starts (~3 s of imports, more on a busy
    # machine) while it still lives; the periodic check must be what re-queues the job.
    service_env["JOB_LEASE_TTL_S"] = "12"
    job, dead_owner = _kill_mid_job(start_worker)
    start_worker("gpu")  # starts while the lease still lives: its start-up check leaves the job
    job.refresh_from_db()
    assert job.state == JobState.RUNNING and job.attempts == 1
    start_worker("cpu")  # as in docker-compose: beat's check runs on the default queue
    start_process([REPO / "bin" / "beat", "--loglevel", "INFO"], env=service_env, name="beat")
    wait_for(lambda: finished(job), timeout=60, what="beat to re-queue the job and the worker to finish it")
    _assert_resumed_once(job, dead_owner)


def test_duplicate_deliveries_never_run_a_job_twice_at_once(start_worker):
    start_worker("gpu")
    start_worker("gpu")
    job = probe_job_create(queue="gpu", steps=15, step_seconds=0.1)
    wait_for(lambda: job.ticks.exists(), timeout=60, what="the job to start")
    for _ in range(3):  # as a broker redelivery or a second re-queue would
        current_app.send_task(ProbeJob.task_name, kwargs={"job_id": job.pk}, queue="gpu")
    wait_for(lambda: finished(job), timeout=60, what="the job to finish")
    assert job.state == JobState.SUCCEEDED
    assert job.attempts == 1
    assert len(owner_runs(job)) == 1
    assert list(job.ticks.values_list("step", flat=True)) == list(range(1, 16))
