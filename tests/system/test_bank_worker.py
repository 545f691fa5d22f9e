"""The image bank: filled from a training job by a real worker (screened, rendered alike),
images from any generator imported, evidence frozen, and admins only."""

import numpy as np
import pytest
from django.db.models import ProtectedError

from generator.bank import bank_image_store
from generator.bank_fill import bank_fill_create
from generator.ml.rendering import pixel_checksum, png_chunks, rendered_length, to_display_uint8
from generator.models import BankFillJob, TrainingJob
from generator.training_jobs import training_job_create, training_job_work
from readerstudy.core.errors import ApplicationError
from readerstudy.core.jobs import JobState, job_run
from tests.factories import aligned_template_volume
from tests.support import wait_for


@pytest.fixture
def trained_job(transactional_db, tmp_path, settings) -> TrainingJob:
    """A finished quick-64 job of a few steps, trained in this process (transactional: the lease's
    heartbeat thread has a connection of its own)."""
    settings.TRAINING_WORK_DIR = tmp_path / "training"
    volume = aligned_template_volume(tmp_path)
    job = training_job_create(dataset=volume.dataset, steps=3, batch_size=8, mixed_precision="off")
    assert job_run(model=TrainingJob, job_id=job.pk, work=training_job_work) == JobState.SUCCEEDED
    job.refresh_from_db()
    return job


@pytest.mark.services
def test_a_worker_fills_the_bank_with_screened_images_rendered_alike(trained_job, start_worker, tmp_path):
    from generator.ml.training import generate, load_generator

    start_worker("gpu")
    # Three steps make one image whatever z is: the verdict says so, and the fill needs a reason.
    assert trained_job.diversity["verdict"] == "collapsed"
    with pytest.raises(ApplicationError, match="collapsed"):
        bank_fill_create(training_job=trained_job, synthetic_count=20, real_count=10, seed=3)
    fill = bank_fill_create(
        training_job=trained_job, synthetic_count=20, real_count=10, seed=3, collapse_override_reason="a test"
    )
    wait_for(lambda: BankFillJob.objects.get(pk=fill.pk).is_finished, timeout=300, what="the bank fill")
    fill.refresh_from_db()
    assert fill.state == JobState.SUCCEEDED, fill.error + fill.log
    synthetic = list(fill.images.filter(image_class="synthetic").order_by("latent_seed"))
    real = list(fill.images.filter(image_class="real"))
    assert (len(synthetic), len(real)) == (20, 10)
    assert all(image.volume_id and image.grid_index is not None for image in real)
    assert all(image.nearest_training_distance is not None for image in synthetic)
    for image in synthetic + real:
        data = image.file.open("rb").read()
        assert len(data) == rendered_length(64) and png_chunks(data) == ["IHDR", "IDAT", "IEND"]
        assert image.file.name == f"bank/{image.storage_key}.png"  # an opaque name, nothing else
    # Provenance recomputes the pixels: (training job, latent seed) -> the same image.
    local = tmp_path / "generator.keras"
    with trained_job.generator_file.open("rb") as stored:
        local.write_bytes(stored.read())
    regenerated = generate(load_generator(local), 1, synthetic[0].latent_seed)[0]
    assert pixel_checksum(to_display_uint8(regenerated)) == synthetic[0].pixel_checksum
    report = fill.report
    assert report["threshold_basis"] == "training_fallback" and report["threshold"] > 0
    assert report["data_copying"] is None and "n/a: no held-out subject" in report["data_copying_note"]


def test_bank_images_protect_their_provenance(trained_job):
    bank_image_store(
        pixels=np.zeros((64, 64), np.float32), image_class="synthetic", training_job=trained_job, latent_seed=1
    )
    with pytest.raises(ProtectedError):
        trained_job.delete()
