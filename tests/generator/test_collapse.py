"""A collapsed generator is caught: its verdict on the job (page, API, command), and a bank fill
from it refused unless an admin gives a reason, which is kept and listed in the audit bundle."""

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.core.management.base import CommandError

from generator.bank_fill import bank_fill_create
from generator.ingest import dataset_get_or_create
from generator.ml.metrics import diversity_verdict, quality_metrics
from generator.models import BankFillJob, BankImage, TrainingJob
from readerstudy.core.errors import ApplicationError
from readerstudy.core.jobs import JobState
from tests.factories import UserFactory, bank_images

pytestmark = pytest.mark.django_db


def discs(count: int, size: int = 64, seed: int = 0) -> np.ndarray:
    """Bright discs of random radius and place on a dark background: a diverse stand-in for slices."""
    rng = np.random.default_rng(seed)
    coordinates = np.linspace(-1, 1, size)
    x, y = np.meshgrid(coordinates, coordinates)
    images = []
    for _ in range(count):
        centre, radius = rng.uniform(-0.3, 0.3, 2), rng.uniform(0.3, 0.8)
        images.append(np.where(np.hypot(x - centre[0], y - centre[1]) < radius, 0.5, -1.0))
    return (np.array(images) + rng.normal(0, 0.05, (count, size, size))).astype(np.float32)


def test_a_generator_that_puts_out_one_image_is_collapsed_and_real_like_images_are_not():
    real = discs(64, seed=1)
    collapsed = np.repeat(discs(1, seed=2), 64, axis=0)  # every output the same image
    point = {"step": 10, **quality_metrics(real, collapsed, seed=0, sample_count=64)}
    verdict = diversity_verdict(point)
    assert verdict["verdict"] == "collapsed" and verdict["ms_ssim_synthetic"] == pytest.approx(1.0, abs=1e-4)
    assert verdict["excess"] > 0.10 and verdict["step"] == 10 and verdict["scales"] == 3
    alike = {"step": 10, **quality_metrics(real, discs(64, seed=3), seed=0, sample_count=64)}
    assert diversity_verdict(alike)["verdict"] == "diverse"
    assert abs(diversity_verdict(alike)["excess"]) < 0.10
    assert diversity_verdict(point, margin=1.0)["verdict"] == "diverse"  # the margin is a setting


def measured(ms_ssim_synthetic: float, ms_ssim_real: float = 0.62) -> list[dict]:
    return [{"step": 900, "epoch": 1, "ms_ssim_synthetic": ms_ssim_synthetic, "ms_ssim_real": ms_ssim_real,
             "scales": 3, "swd_mean": 40.0, "swd_levels": {}, "pairs": 512, "sample_count": 512}]  # fmt: skip


@pytest.fixture
def collapsed_job() -> TrainingJob:
    job = TrainingJob.objects.create(
        dataset=dataset_get_or_create(name="train"),
        config={"mode_seeking_weight": 1.0},
        state=JobState.SUCCEEDED,
        metrics=measured(0.97),
    )
    job.generator_file.save("g.keras", ContentFile(b"not a model"), save=True)
    return job


def test_a_fill_from_a_collapsed_generator_needs_a_reason_which_is_kept(collapsed_job, settings):
    assert collapsed_job.diversity["verdict"] == "collapsed" and collapsed_job.diversity["excess"] == 0.35
    with pytest.raises(ApplicationError, match=r"has collapsed.*0\.970 against 0\.620"):
        bank_fill_create(training_job=collapsed_job, synthetic_count=10)
    with pytest.raises(ApplicationError, match="collapsed"):
        bank_fill_create(training_job=collapsed_job, synthetic_count=10, collapse_override_reason="   ")
    assert not BankFillJob.objects.exists()

    admin = UserFactory(role="admins")
    fill = bank_fill_create(
        training_job=collapsed_job, synthetic_count=10, user=admin, collapse_override_reason="pilot of the page"
    )
    fill.refresh_from_db()
    assert (fill.collapse_override_reason, fill.collapse_override_by, fill.diversity["verdict"]) == (
        "pilot of the page",
        admin,
        "collapsed",
    )
    assert fill.collapse_override_at is not None

    # The margin is a setting; a generator within it needs no reason, and none is recorded.
    settings.GENERATOR_COLLAPSE_MARGIN = 0.5
    plain = bank_fill_create(training_job=collapsed_job, synthetic_count=10, collapse_override_reason="ignored")
    assert plain.collapse_override_at is None and plain.collapse_override_reason == ""
    assert plain.diversity["verdict"] == "diverse"


def test_the_advice_for_a_collapsed_generator_follows_its_preset(collapsed_job):
    assert collapsed_job.preset == "modern-64" and "train a job with more minutes" in collapsed_job.collapse_advice
    collapsed_job.config = {}  # a modern-64 job recorded before mode seeking
    assert (
        "without mode seeking" in collapsed_job.collapse_advice
        and "a new modern-64 job" in collapsed_job.collapse_advice
    )
    collapsed_job.preset = TrainingJob.Preset.QUICK_64
    assert collapsed_job.collapse_advice.startswith("Train a modern-64 job")
    collapsed_job.metrics = measured(0.65)
    assert collapsed_job.diversity["verdict"] == "diverse" and collapsed_job.collapse_advice == ""


def test_a_generator_never_measured_fills_without_a_verdict(collapsed_job):
    TrainingJob.objects.filter(pk=collapsed_job.pk).update(metrics=[])
    collapsed_job.refresh_from_db()
    fill = bank_fill_create(training_job=collapsed_job, synthetic_count=10)
    assert collapsed_job.diversity is None and fill.diversity == {} and fill.collapse_override_at is None


def test_the_api_the_page_and_the_command_say_collapsed_and_ask_for_the_reason(client, collapsed_job, capsys):
    admin = UserFactory(role="admins")
    client.force_login(admin)
    job = client.get(f"/api/v1/training-jobs/{collapsed_job.pk}/").json()
    assert job["diversity"]["verdict"] == "collapsed"
    page = client.get(f"/generator/training/{collapsed_job.pk}/").content.decode()
    assert "<strong>Collapsed</strong>" in page and 'name="collapse_override_reason"' in page
    assert "It trained 900 steps; modern-64 was diverse from about 300 steps" in page  # what to do about it

    refused = client.post("/api/v1/bank-fills/", {"training_job": collapsed_job.pk, "synthetic_count": 5})
    assert refused.status_code == 400 and "collapsed" in refused.content.decode()
    accepted = client.post(
        "/api/v1/bank-fills/",
        {"training_job": collapsed_job.pk, "synthetic_count": 5, "collapse_override_reason": "a pilot"},
    )
    assert accepted.status_code == 201, accepted.content
    assert accepted.json()["collapse_override_by"] == admin.username and accepted.json()["collapse_override_at"]

    response = client.post(
        f"/generator/training/{collapsed_job.pk}/fill/",
        {"synthetic_count": 5, "seed": 0, "collapse_override_reason": "from the page"},
    )
    assert response.status_code == 302
    assert BankFillJob.objects.filter(collapse_override_reason="from the page", collapse_override_by=admin).exists()
    page = client.get(f"/generator/training/{collapsed_job.pk}/").content.decode()
    assert "collapsed, filled anyway" in page and "from the page" in page

    with pytest.raises(CommandError, match="collapsed"):
        call_command("fill_bank", "--job", str(collapsed_job.pk), "--count", "5")
    call_command("fill_bank", "--job", str(collapsed_job.pk), "--count", "5", "--override-collapse", "scripted")
    assert BankFillJob.objects.get(collapse_override_reason="scripted").collapse_override_by is None


def test_the_audit_log_lists_fills_from_a_collapsed_generator(collapsed_job):
    from readerstudy.results.exports import _audit_log, _generators

    admin = UserFactory(role="admins", username="ada")
    fill = bank_fill_create(training_job=collapsed_job, synthetic_count=2, user=admin, collapse_override_reason="why")
    bank_images(2, BankImage.ImageClass.SYNTHETIC, training_job=collapsed_job, fill_job=fill)
    used = BankImage.objects.filter(fill_job=fill)
    [entry] = [entry for entry in _audit_log(used) if entry["what"] == "bank filled from a collapsed generator"]
    assert (entry["bank_fill"], entry["by"], entry["reason"], entry["diversity"]["verdict"]) == (
        fill.pk,
        "ada",
        "why",
        "collapsed",
    )
    assert _generators(used)[0]["diversity"]["verdict"] == "collapsed"
