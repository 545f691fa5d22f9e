"""Training jobs end to end: real Celery workers train the paper's DCGAN on streamed slices,
checkpoint through storage, survive a killed worker, stop on cancel; admins only."""

import signal
import zipfile

import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.utils import timezone

from generator.ml.dcgan import PRESETS
from generator.models import TrainingJob
from generator.training_jobs import training_job_create
from readerstudy.core.jobs import JobState
from tests.conftest import FAST_LEASES, wait_for
from tests.factories import UserFactory, aligned_template_volume

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
def test_a_killed_worker_s_training_resumes_from_its_checkpoint(training_env, start_worker, tmp_path, settings):
    volume = aligned_template_volume(tmp_path)
    first = start_worker("gpu")
    job = training_job_create(dataset=volume.dataset, steps=400, **TINY)
    wait_for(lambda: "saved to storage" in job_now(job).log, timeout=240, what="a first stored checkpoint")
    first.kill(signal.SIGKILL)
    stored_step = int(job_now(job).log.split("checkpoint at step ")[-1].split()[0])
    assert stored_step > 0 and job.state == JobState.RUNNING
    wait_for(
        lambda: job_now(job).lease_expires_at < timezone.now(),
        timeout=FAST_LEASES["JOB_LEASE_TTL_S"] + 5,
        what="the dead worker's lease to lapse",
    )
    start_worker("gpu")  # its start-up check re-queues the job; it resumes, not restarts
    wait_for(lambda: job_now(job).is_finished, timeout=300, what="the resumed job to finish")
    assert job.state == JobState.SUCCEEDED, job.error + job.log
    assert job.attempts == 2
    resumed_at = int(job.log.split("resuming from the stored checkpoint at step ")[1].split()[0])
    assert resumed_at >= stored_step > 0
    assert job.progress["step"] == 400


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
def test_non_admins_cannot_create_cancel_or_download(client, tmp_path):
    volume = aligned_template_volume(tmp_path)
    job = TrainingJob.objects.create(dataset=volume.dataset, config={"size": 64, "steps": 1})
    for role in ("readers", "researchers"):
        client.force_login(UserFactory(role=role))
        assert client.get("/generator/training/").status_code == 403
        assert client.post("/generator/training/new/", {"dataset": volume.dataset.pk}).status_code == 403
        assert client.post(f"/generator/training/{job.pk}/cancel/").status_code == 403
        assert client.get(f"/generator/training/{job.pk}/generator.keras").status_code == 403
        assert client.post("/api/v1/training-jobs/", {"dataset": volume.dataset.name}).status_code == 403
        assert client.post(f"/api/v1/training-jobs/{job.pk}/cancel/").status_code == 403
    assert TrainingJob.objects.count() == 1 and not job_now(job).cancel_requested


@pytest.mark.django_db
def test_the_new_job_form_defaults_to_the_preset_budget_and_queues_a_job(
    client, tmp_path, django_capture_on_commit_callbacks
):
    volume = aligned_template_volume(tmp_path)
    client.force_login(UserFactory(role="admins"))
    page = client.get("/generator/training/new/").content.decode()
    quick_steps = PRESETS["quick-64"]["steps"]
    assert f'name="budget" value="{quick_steps}"' in page and '"paper-256": {"budget": {"epochs": 35}' in page
    form = {
        "dataset": volume.dataset.pk,
        "preset": "quick-64",
        "budget": "20",
        "budget_unit": "steps",
        "batch_size": "16",
        "seed": "7",
        "generator_steps_per_discriminator_step": "2",
        "label_smoothing": "0.1",
        "discriminator_input_batchnorm": "",
        "mixed_precision": "off",
    }
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post("/generator/training/new/", form)
    job = TrainingJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/generator/training/{job.pk}/"
    assert len(callbacks) == 1
    assert job.config["steps"] == 20 and job.config["epochs"] is None
    assert (job.config["batch_size"], job.config["seed"], job.config["label_smoothing"]) == (16, 7, 0.1)
    assert job.config["generator_steps_per_discriminator_step"] == 2
    assert job.config["discriminator_input_batchnorm"] is False
    detail = client.get(f"/generator/training/{job.pk}/")
    assert detail.status_code == 200 and b"job-progress" in detail.content
    api = client.get(f"/api/v1/training-jobs/{job.pk}/").json()
    assert api["state"] == "queued" and api["progress_fraction"] == 0.0


@pytest.mark.django_db
def test_a_job_needs_an_aligned_volume(tmp_path):
    from generator.ingest import dataset_get_or_create

    with pytest.raises(ValueError, match="no aligned volume"):
        training_job_create(dataset=dataset_get_or_create(name="empty"))


@pytest.mark.django_db
def test_train_dcgan_command_queues_the_same_job(tmp_path, capsys):
    volume = aligned_template_volume(tmp_path)
    with pytest.raises(CommandError, match="No dataset"):
        call_command("train_dcgan", "--dataset", "nope")
    call_command("train_dcgan", "--dataset", volume.dataset.name, "--preset", "paper-128", "--epochs", "2")
    job = TrainingJob.objects.get()
    assert (job.preset, job.config["size"], job.config["epochs"], job.config["steps"]) == ("paper-128", 128, 2, None)
    assert f"Queued training job {job.pk}" in capsys.readouterr().out
