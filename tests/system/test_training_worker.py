"""Training jobs end to end: real Celery workers train the paper's DCGAN on streamed slices,
checkpoint through storage, survive a killed worker, stop on cancel; admins only."""

import signal
import zipfile
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from generator.models import TrainingJob
from generator.training_jobs import training_job_create
from readerstudy.core.jobs import JobState
from readerstudy.core.storage import storage_files
from tests.factories import UserFactory, aligned_template_volume
from tests.support import FAST_LEASES, wait_for

TINY = {"batch_size": 8, "mixed_precision": "off", "metrics_every": "off"}  # metrics: one in-process test


def job_now(job: TrainingJob) -> TrainingJob:
    job.refresh_from_db()
    return job


@pytest.fixture
def training_env(service_env):
    """Checkpoints every 2 s, so a killed worker leaves one behind within a test's patience."""
    service_env["TRAINING_CHECKPOINT_EVERY_S"] = "2"
    return service_env


@pytest.mark.services
def test_a_worker_trains_checkpoints_and_exports_a_generator(training_env, start_worker, tmp_path):
    volume = aligned_template_volume(tmp_path)
    start_worker("gpu")
    job = training_job_create(dataset=volume.dataset, steps=12, **TINY)
    wait_for(lambda: job_now(job).is_finished, timeout=240, what="the training job to finish")
    assert job.state == JobState.SUCCEEDED, job.error + job.log
    assert (job.progress["step"], job.progress["total"]) == (12, 12)
    assert job.progress["d_loss"] > 0 and job.progress["images_per_s"] > 0
    stored = default_storage.listdir(f"{job.storage_prefix}/run")[1]
    assert "checkpoint" in stored and any(name.startswith("ckpt-12") for name in stored)
    assert default_storage.exists(job.progress["samples"]) and default_storage.exists(job.progress["loss_plot"])
    with job.generator_file.open("rb") as exported:
        assert zipfile.is_zipfile(exported)  # a .keras file is a zip archive


@pytest.mark.services
@pytest.mark.timeout(600)  # two trainings back to back: slow when other work shares the cores
def test_a_killed_worker_s_training_resumes_from_its_checkpoint_on_another_machine_through_s3(
    training_env, s3_storage, start_worker, tmp_path, settings
):
    """Checkpoints go to S3 (moto's server), and the job resumes on a worker with folders of its
    own, as on another machine: from the stored checkpoint's step, not from 0."""
    volume = aligned_template_volume(tmp_path)
    first = start_worker("gpu")
    # Enough steps that the job is still running at its first stored checkpoint (2 s) even on a
    # machine ten times faster than the slow kind; every step more is minutes on the slow kind.
    job = training_job_create(dataset=volume.dataset, steps=150, **TINY)
    wait_for(lambda: "saved to storage" in job_now(job).log, timeout=240, what="a first stored checkpoint")
    first.kill(signal.SIGKILL)
    stored_step = int(job_now(job).log.split("checkpoint at step ")[-1].split()[0])
    assert stored_step > 0 and job.state == JobState.RUNNING
    wait_for(
        lambda: job_now(job).lease_expires_at < timezone.now(),
        timeout=FAST_LEASES["JOB_LEASE_TTL_S"] + 5,
        what="the dead worker's lease to lapse",
    )
    assert storage_files(f"{job.storage_prefix}/run")  # the checkpoint lies in the bucket
    other_machine = {"SYNTHREAD_VAR_DIR": str(tmp_path / "other-machine"), "MEDIA_ROOT": str(tmp_path / "unused")}
    start_worker("gpu", env=other_machine)  # its start-up check re-queues the job; it resumes, not restarts
    wait_for(lambda: job_now(job).is_finished, timeout=300, what="the resumed job to finish")
    assert job.state == JobState.SUCCEEDED, job.error + job.log
    assert job.attempts == 2
    resumed_at = int(job.log.split("resuming from the stored checkpoint at step ")[1].split()[0])
    assert resumed_at >= stored_step > 0
    assert job.progress["step"] == 150
    assert not list(Path(settings.MEDIA_ROOT).rglob("ckpt-*"))  # nothing of the run on local media


@pytest.mark.services
def test_cancel_stops_training_within_a_few_steps(training_env, start_worker, tmp_path, client):
    volume = aligned_template_volume(tmp_path)
    start_worker("gpu")
    job = training_job_create(dataset=volume.dataset, steps=5000, **TINY)
    wait_for(lambda: job_now(job).progress.get("step", 0) >= 3, timeout=240, what="training to get going")
    client.force_login(UserFactory(role="admins"))
    assert client.post(f"/generator/training/{job.pk}/cancel/").status_code == 302
    wait_for(lambda: job_now(job).is_finished, timeout=60, what="the cancel to take effect")
    assert job.state == JobState.CANCELLED
    assert job.progress["step"] < 5000


@pytest.mark.django_db
def test_a_run_records_quality_metrics_that_the_api_and_the_page_show(client, tmp_path, settings, monkeypatch):
    """The worker's work, run in this process (no Celery worker): a short run measures at its end."""
    from generator.ml import metrics
    from generator.training_jobs import training_job_work
    from readerstudy.core.jobs import JobHandle, job_claim

    monkeypatch.setattr(metrics, "SAMPLE_COUNT", 32)  # a real run takes 512: seconds more, nothing new
    settings.TRAINING_WORK_DIR = tmp_path / "work"
    volume = aligned_template_volume(tmp_path)
    job = training_job_create(dataset=volume.dataset, steps=3, batch_size=8, mixed_precision="off")
    assert job.config["metrics_every"] == "end" and job.metrics == []  # the preset's
    claimed = job_claim(model=TrainingJob, job_id=job.pk, owner="in-process")
    training_job_work(claimed, JobHandle(job=claimed, owner="in-process"))
    [point] = job_now(job).metrics
    assert (point["step"], point["epoch"], point["scales"], point["sample_count"]) == (3, 1, 3, 32)
    assert point["swd_mean"] > 0 and set(point["swd_levels"]) == {"64", "32", "16"}  # jsonb sorts keys
    assert 0 < point["ms_ssim_synthetic"] <= 1 and 0 < point["ms_ssim_real"] <= 1
    assert "quality at step 3" in job.log
    client.force_login(UserFactory(role="admins"))
    assert client.get(f"/api/v1/training-jobs/{job.pk}/").json()["metrics"] == [point]
    page = client.get(f"/generator/training/{job.pk}/").content.decode()
    assert 'id="metrics-plot"' in page and "MS-SSIM over 3 scales" in page


@pytest.mark.django_db
def test_a_job_on_minutes_trains_until_its_time_is_spent(client, tmp_path, settings):
    """The worker's work in this process: the job's progress is time, its end the budget's."""
    from generator.training_jobs import training_job_work
    from readerstudy.core.jobs import JobHandle, job_claim

    settings.TRAINING_WORK_DIR = tmp_path / "work"
    volume = aligned_template_volume(tmp_path)
    job = training_job_create(dataset=volume.dataset, minutes=0.05, **TINY)  # 3 s
    claimed = job_claim(model=TrainingJob, job_id=job.pk, owner="in-process")
    handle = JobHandle(job=claimed, owner="in-process")
    training_job_work(claimed, handle)
    progress = handle.progress
    assert progress["step"] >= 1 and progress["total"] is None and progress["budget_s"] == 3.0
    assert progress["trained_s"] >= 3.0 and progress["fraction"] == 1.0 and progress["eta_s"] == 0
    TrainingJob.objects.filter(pk=job.pk).update(progress=progress)
    assert job_now(job).progress_fraction == 1.0 and job.generator_file
    client.force_login(UserFactory(role="admins"))
    page = client.get(f"/generator/training/{job.pk}/").content.decode()
    assert 'Budget: <span id="job-budget">0.05 minutes</span>' in page
