"""One copy of each image (generator/bank.py, bank_fill.py, bank_import.py): no two active bank
images share their pixels, a fill never reuses a latent seed or a grid slice, and an import of
pixels already in the bank is reported as a duplicate and not stored."""

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.db import IntegrityError, transaction

from generator.bank import DuplicatePixels, bank_image_exclude, bank_image_store, bank_image_store_or_exclude
from generator.bank_fill import _real_slice_picks, bank_fill_create
from generator.bank_import import images_import
from generator.ingest import dataset_get_or_create
from generator.ml.grid import PAPER_GRID
from generator.models import BankImage, TrainingJob
from readerstudy.core.jobs import JobState
from tests.factories import REAL, SYNTHETIC, VolumeFactory, random_pixels

pytestmark = pytest.mark.django_db


def test_the_same_pixels_are_stored_once_while_active():
    pixels = random_pixels(16, seed=1)
    first = bank_image_store(pixels=pixels, image_class=SYNTHETIC, generator_name="a")
    with pytest.raises(DuplicatePixels, match=f"same pixels as bank image {first.pk}"):
        bank_image_store(pixels=pixels, image_class=SYNTHETIC, generator_name="b")
    kept = bank_image_store_or_exclude(pixels=pixels, image_class=SYNTHETIC, generator_name="c")
    assert (kept.status, kept.exclusion_reason) == ("excluded", f"same pixels as bank image {first.pk}")
    # The database holds the line too: a second active copy cannot be written around the service.
    with pytest.raises(IntegrityError), transaction.atomic():
        BankImage.objects.filter(pk=kept.pk).update(status="active")
    kept.status = "active"
    with pytest.raises(ValueError, match=f"cannot be active again: same pixels as bank image {first.pk}"):
        kept.save()  # the admin's change form says so, rather than failing on the constraint
    bank_image_exclude(image=first, reason="test")
    assert bank_image_store(pixels=pixels, image_class=SYNTHETIC, generator_name="d").status == "active"


def test_an_import_of_pixels_already_in_the_bank_is_reported_and_not_stored(tmp_path, capsys):
    path = tmp_path / "slice.npy"
    np.save(path, random_pixels(32, seed=2))
    copy = tmp_path / "copy-of-slice.npy"
    copy.write_bytes(path.read_bytes())
    [first] = images_import(files=[(path, path.name)], generator_name="theirs", image_class=SYNTHETIC)
    [again] = images_import(files=[(copy, copy.name)], generator_name="theirs", image_class=SYNTHETIC)
    assert (first.outcome, again.outcome) == ("imported", "duplicate")
    assert again.message == f"Not stored: same pixels as bank image {first.image.pk}." and again.ok
    assert BankImage.objects.count() == 1
    call_command("import_images", str(path), "--generator", "theirs", "--class", "synthetic")  # not a failure
    assert "1 already in the bank" in capsys.readouterr().out


@pytest.fixture
def trained_job():
    job = TrainingJob.objects.create(dataset=dataset_get_or_create(name="train"), config={}, state=JobState.SUCCEEDED)
    job.generator_file.save("g.keras", ContentFile(b"not a model"), save=True)
    return job


def test_two_fills_of_one_job_never_share_a_latent_seed_whatever_their_seed(trained_job):
    first = bank_fill_create(training_job=trained_job, synthetic_count=200, seed=0)
    second = bank_fill_create(training_job=trained_job, synthetic_count=50, seed=0)
    assert (first.first_latent_seed, second.first_latent_seed) == (0, 200)
    trained_job.refresh_from_db()
    assert trained_job.next_latent_seed == 250


def test_real_slices_are_drawn_without_replacement_and_never_twice_across_fills(trained_job):
    volumes = [VolumeFactory(dataset=trained_job.dataset) for _ in range(2)]
    fill = bank_fill_create(training_job=trained_job, synthetic_count=1, real_count=3000, seed=0)
    picks = _real_slice_picks(fill, volumes)
    assert len(picks) == 3000 == len(set(picks))
    assert _real_slice_picks(fill, volumes) == picks  # a re-run after a dead worker draws the same
    for position, grid_index in picks[:5]:
        BankImage.objects.create(
            image_class=REAL, volume=volumes[position], grid_index=grid_index, storage_key=f"k{grid_index}-{position}",
            matrix_size=16, pixel_checksum=f"{position}-{grid_index}", subject=volumes[position].subject,
        )  # fmt: skip
    later = bank_fill_create(training_job=trained_job, synthetic_count=1, real_count=20, seed=0)
    assert not set(_real_slice_picks(later, volumes)) & set(picks[:5])
    greedy = bank_fill_create(training_job=trained_job, synthetic_count=1, real_count=2 * len(PAPER_GRID), seed=0)
    with pytest.raises(ValueError, match="grid slices not in the bank"):
        _real_slice_picks(greedy, volumes)
