"""The job lease (readerstudy/core/jobs.py): claims, heartbeats, cancel, re-queue after a death."""

from datetime import timedelta

import pytest
from django.utils import timezone

from readerstudy.core.jobs import JobHandle, JobState, job_cancel, job_claim, job_run, jobs_requeue_lapsed
from readerstudy.core.models import ProbeJob
from readerstudy.core.probes import probe_job_create, probe_job_work
from tests.factories import ProbeJobFactory

pytestmark = pytest.mark.django_db


def test_a_claimed_job_cannot_be_claimed_again_while_its_lease_lives(fast_leases):
    job = ProbeJobFactory()
    assert job_claim(model=ProbeJob, job_id=job.pk, owner="a") is not None
    assert job_claim(model=ProbeJob, job_id=job.pk, owner="b") is None
    job.refresh_from_db()
    assert (job.state, job.lease_owner, job.attempts) == (JobState.RUNNING, "a", 1)


def test_a_lapsed_lease_can_be_taken_over(fast_leases):
    job = ProbeJobFactory()
    job_claim(model=ProbeJob, job_id=job.pk, owner="a")
    later = timezone.now() + timedelta(seconds=60)
    assert job_claim(model=ProbeJob, job_id=job.pk, owner="b", now=later) is not None
    job.refresh_from_db()
    assert (job.lease_owner, job.attempts) == ("b", 2)


def test_finished_jobs_are_never_claimed():
    job = ProbeJobFactory(state=JobState.SUCCEEDED)
    assert job_claim(model=ProbeJob, job_id=job.pk, owner="a") is None


def test_requeue_touches_only_lapsed_leases(fast_leases, django_capture_on_commit_callbacks):
    live, lapsed = ProbeJobFactory(), ProbeJobFactory()
    job_claim(model=ProbeJob, job_id=live.pk, owner="alive")
    job_claim(model=ProbeJob, job_id=lapsed.pk, owner="dead", now=timezone.now() - timedelta(seconds=60))
    with django_capture_on_commit_callbacks() as callbacks:
        touched = jobs_requeue_lapsed()
    assert [job.pk for job in touched] == [lapsed.pk]
    assert len(callbacks) == 1  # one message sent, after commit
    live.refresh_from_db()
    lapsed.refresh_from_db()
    assert live.state == JobState.RUNNING
    assert (lapsed.state, lapsed.lease_owner) == (JobState.QUEUED, "")
    assert "lease of dead lapsed; re-queued" in lapsed.log


def test_requeue_gives_up_after_the_maximum_attempts(settings):
    settings.JOB_MAX_ATTEMPTS = 2
    job = ProbeJobFactory(attempts=1)
    job_claim(model=ProbeJob, job_id=job.pk, owner="dead", now=timezone.now() - timedelta(hours=1))
    jobs_requeue_lapsed()
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert "2 times" in job.error


def test_cancel_of_a_queued_job_is_immediate():
    job = ProbeJobFactory()
    job_cancel(job=job)
    assert job.state == JobState.CANCELLED
    assert job_claim(model=ProbeJob, job_id=job.pk, owner="a") is None


def test_job_run_records_success_and_progress(fast_leases):
    job = ProbeJobFactory(steps=3)
    assert job_run(model=ProbeJob, job_id=job.pk, work=probe_job_work) == JobState.SUCCEEDED
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert job.progress == {"step": 3, "total": 3}
    assert list(job.ticks.values_list("step", flat=True)) == [1, 2, 3]
    assert job.finished_at is not None and job.lease_expires_at is None


def test_job_run_records_a_failure_and_reraises(fast_leases):
    job = ProbeJobFactory()

    def broken(job, handle):
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        job_run(model=ProbeJob, job_id=job.pk, work=broken)
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert "disk full" in job.error


@pytest.mark.django_db(transaction=True)
def test_a_cancel_request_stops_running_work_within_a_heartbeat(fast_leases):
    job = ProbeJobFactory(steps=200, step_seconds=0.05)

    def work(job: ProbeJob, handle: JobHandle) -> None:
        if handle.job.attempts == 1 and not handle.cancel_requested.is_set():
            ProbeJob.objects.filter(pk=job.pk).update(cancel_requested=True)  # as the Cancel button does
        probe_job_work(job, handle)

    assert job_run(model=ProbeJob, job_id=job.pk, work=work) == JobState.CANCELLED
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    assert 0 < job.ticks.count() < 40  # stopped within about one heartbeat (0.5 s), not at 200


@pytest.mark.django_db(transaction=True)
def test_work_that_lost_its_lease_stops_and_leaves_the_row_alone(fast_leases):
    job = ProbeJobFactory(steps=200, step_seconds=0.05)

    def work(job: ProbeJob, handle: JobHandle) -> None:
        ProbeJob.objects.filter(pk=job.pk).update(lease_owner="another-worker")  # it took over
        probe_job_work(job, handle)

    assert job_run(model=ProbeJob, job_id=job.pk, work=work) is None
    job.refresh_from_db()
    assert (job.state, job.lease_owner) == (JobState.RUNNING, "another-worker")
    assert job.ticks.count() < 40


def test_probe_job_create_rejects_nonsense():
    with pytest.raises(ValueError, match="at least one step"):
        probe_job_create(steps=0)
