"""Training jobs end to end: real Celery workers train the paper's DCGAN on streamed slices,
checkpoint through storage, survive a killed worker, stop on cancel; admins only."""

import pytest
from django.core.management import CommandError, call_command

from generator.ml.dcgan import PRESETS
from generator.models import TrainingJob
from generator.training_jobs import training_job_create
from tests.factories import UserFactory, aligned_template_volume


def job_now(job: TrainingJob) -> TrainingJob:
    job.refresh_from_db()
    return job


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
    default_minutes = PRESETS["modern-64"]["minutes"]  # the default preset's
    assert f'name="budget" value="{default_minutes}"' in page and '"paper-256": {"budget": {"epochs": 35}' in page
    assert '<option value="minutes" selected>' in page
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
    assert api["state"] == "queued" and api["progress_fraction"] == 0.0 and api["budget"] == "20 steps"

    # A budget in minutes from the page; steps must be whole.
    response = client.post("/generator/training/new/", {**form, "budget": "1.5", "budget_unit": "minutes"})
    timed = TrainingJob.objects.latest("pk")
    assert response.status_code == 302 and (timed.config["minutes"], timed.config["steps"]) == (1.5, None)
    assert "1.5 minutes" in client.get(f"/generator/training/{timed.pk}/").content.decode()
    refused = client.post("/generator/training/new/", {**form, "budget": "2.5", "budget_unit": "steps"})
    assert refused.status_code == 200 and "whole number" in refused.content.decode()
    assert TrainingJob.objects.count() == 2


@pytest.mark.django_db
def test_a_job_on_minutes_shows_the_share_of_its_time_spent(tmp_path):
    volume = aligned_template_volume(tmp_path)
    job = training_job_create(dataset=volume.dataset, minutes=2)
    job.progress = {"step": 40, "trained_s": 30.0, "budget_s": 120.0, "fraction": 0.25}
    assert job.progress_fraction == 0.25 and job.budget_text == "2 minutes"
    job.progress = {"step": 3, "total": 12}  # a row written before budgets in minutes
    assert job.progress_fraction == 0.25
    with pytest.raises(ValueError, match="one budget"):
        training_job_create(dataset=volume.dataset, steps=10, minutes=2)


@pytest.mark.django_db
def test_the_api_queues_a_job_on_minutes(client, tmp_path):
    volume = aligned_template_volume(tmp_path)
    client.force_login(UserFactory(role="admins"))
    created = client.post(
        "/api/v1/training-jobs/", {"dataset": volume.dataset.name, "minutes": 0.5}, content_type="application/json"
    )
    assert created.status_code == 201, created.content
    assert created.json()["config"]["minutes"] == 0.5 and created.json()["budget"] == "0.5 minutes"
    both = client.post(
        "/api/v1/training-jobs/",
        {"dataset": volume.dataset.name, "minutes": 1, "steps": 5},
        content_type="application/json",
    )
    assert both.status_code == 400 and "one budget" in both.content.decode()


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
    call_command("train_dcgan", "--dataset", volume.dataset.name, "--minutes", "2.5")
    timed = TrainingJob.objects.latest("pk")
    assert (timed.preset, timed.config["minutes"], timed.config["steps"]) == ("modern-64", 2.5, None)
    assert "2.5 minutes" in capsys.readouterr().out


@pytest.mark.django_db
def test_the_modern_preset_and_its_stabilisers_are_offered(client, tmp_path):
    volume = aligned_template_volume(tmp_path)
    client.force_login(UserFactory(role="admins"))
    assert 'value="modern-64"' in client.get("/generator/training/new/").content.decode()
    created = client.post(
        "/api/v1/training-jobs/",
        {"dataset": volume.dataset.name, "preset": "modern-64", "generator_ema_decay": 0.99},
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    config = created.json()["config"]
    assert (config["network_width"], config["discriminator_minibatch_stddev"], config["generator_ema_decay"]) == (
        0.5,
        True,
        0.99,
    )
    assert config["mode_seeking_weight"] == 1.0
    options = {
        "diff_augment": "translation",
        "discriminator_learning_rate": 4e-4,
        "network_width": 0.25,
        "mode_seeking_weight": 0.5,
    }
    created = client.post("/api/v1/training-jobs/", {"dataset": volume.dataset.name, **options}, "application/json")
    assert created.status_code == 201, created.content
    assert created.json()["preset"] == "modern-64"  # the default: minutes of the paper's own net collapse
    assert {name: created.json()["config"][name] for name in options} == options
    refused = client.post(
        "/api/v1/training-jobs/",
        {"dataset": volume.dataset.name, "diff_augment": "colour"},
        content_type="application/json",
    )
    assert refused.status_code == 400 and "diff_augment" in refused.content.decode()
    refused = client.post(
        "/api/v1/training-jobs/",
        {"dataset": volume.dataset.name, "mode_seeking_weight": -1},
        content_type="application/json",
    )
    assert refused.status_code == 400 and "mode_seeking_weight" in refused.content.decode()
