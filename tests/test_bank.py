"""The image bank: filled from a training job by a real worker (screened, rendered alike),
images from any generator imported, evidence frozen, and admins only."""

import io

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db.models import ProtectedError
from django.utils import timezone
from PIL import Image

from generator.bank import bank_fill_create, bank_image_store, images_import
from generator.ml.rendering import pixel_checksum, png_chunks, rendered_length, to_display_uint8
from generator.models import BankFillJob, BankImage, TrainingJob
from generator.training_jobs import training_job_create, training_job_work
from readerstudy.core.errors import EvidenceFrozen
from readerstudy.core.jobs import JobState, job_run
from tests.conftest import wait_for
from tests.factories import UserFactory, aligned_template_volume


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
    fill = bank_fill_create(training_job=trained_job, synthetic_count=20, real_count=10, seed=3)
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


def _png(path, pixels: np.ndarray, mode: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.django_db
def test_images_from_any_generator_import_with_provenance_and_bad_files_are_reported(tmp_path):
    rng = np.random.default_rng(0)
    png8 = tmp_path / "a.png"
    png8.write_bytes(_png(png8, rng.integers(0, 256, (64, 64), dtype=np.uint8), "L"))
    npy = tmp_path / "b.npy"
    np.save(npy, rng.uniform(-1, 1, (64, 64)).astype(np.float32))
    broken = tmp_path / "c.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    results = images_import(
        files=[(p, p.name) for p in (png8, npy, broken)],
        generator_name="their-diffusion",
        image_class="synthetic",
        note="run 7",
        expected_size=64,
    )
    assert [r.ok for r in results] == [True, True, False]
    assert results[2].message
    images = BankImage.objects.order_by("pk")
    assert images.count() == 2
    assert {(i.generator_name, i.note, i.status, i.image_class) for i in images} == {
        ("their-diffusion", "run 7", "active", "synthetic")
    }
    assert all(len(i.external_checksum) == 64 for i in images)
    assert {len(i.file.open("rb").read()) for i in images} == {rendered_length(64)}


@pytest.mark.django_db
def test_import_images_command_keeps_good_files_and_fails_loudly(tmp_path, capsys):
    good = tmp_path / "slice.npy"
    np.save(good, np.zeros((64, 64), np.float32))
    bad = tmp_path / "volume.npy"
    np.save(bad, np.zeros((4, 64, 64), np.float32))
    with pytest.raises(CommandError, match="1 file"):
        call_command("import_images", str(good), str(bad), "--generator", "theirs", "--class", "real")
    assert "imported" in capsys.readouterr().out
    assert BankImage.objects.get().image_class == "real"


@pytest.mark.django_db
def test_an_image_shown_to_a_reader_is_evidence(tmp_path):
    image = bank_image_store(pixels=np.zeros((64, 64), np.float32), image_class="real", generator_name="x")
    image.note = "editable before it is shown"
    image.save()
    image.first_shown_at = timezone.now()
    image.save()
    image.note = "changed after"
    with pytest.raises(EvidenceFrozen):
        image.save()
    image.refresh_from_db()
    image.status, image.exclusion_reason = "excluded", "artefact"
    image.save()  # excluding stays possible
    with pytest.raises(EvidenceFrozen):
        image.delete()
    assert BankImage.objects.filter(pk=image.pk, status="excluded").exists()


def test_bank_images_protect_their_provenance(trained_job):
    bank_image_store(
        pixels=np.zeros((64, 64), np.float32), image_class="synthetic", training_job=trained_job, latent_seed=1
    )
    with pytest.raises(ProtectedError):
        trained_job.delete()


@pytest.mark.django_db
def test_non_admins_get_403_on_the_bank(client, tmp_path):
    image = bank_image_store(pixels=np.zeros((64, 64), np.float32), image_class="real", generator_name="x")
    for role in ("readers", "researchers"):
        client.force_login(UserFactory(role=role))
        assert client.get("/generator/bank/").status_code == 403
        assert client.get(f"/generator/bank/{image.pk}.png").status_code == 403
        assert client.post("/generator/bank/", {"generator_name": "x"}).status_code == 403
        assert client.post("/generator/training/1/fill/", {"synthetic_count": 1}).status_code == 403
        assert client.get("/api/v1/bank-fills/").status_code == 403
    client.force_login(UserFactory(role="admins"))
    page = client.get("/generator/bank/?image_class=real")
    assert page.status_code == 200 and f"/generator/bank/{image.pk}.png".encode() in page.content
    assert client.get(f"/generator/bank/{image.pk}.png")["Cache-Control"] == "private, no-store"
