"""The machine observer beside the readers (readerstudy/results/observer.py): it trains on the study's
own bank images, split by group, and its row joins the results table and table.csv."""

import pytest

from generator.ml.observer import split_by_group
from readerstudy.reading.models import Study
from readerstudy.results.models import MachineObserverJob
from readerstudy.results.observer import image_group, machine_observer_create
from tests.factories import REAL, SYNTHETIC, SubjectFactory, UserFactory, VolumeFactory, bank_images, researcher_of

pytestmark = pytest.mark.django_db


def test_a_persons_scans_form_one_group_and_synthetic_images_are_each_their_own():
    twice_scanned = SubjectFactory(label="sub-twice")
    first_scan, second_scan = VolumeFactory(subject=twice_scanned), VolumeFactory(subject=twice_scanned)
    assert first_scan.dataset != second_scan.dataset
    real = [
        *bank_images(3, REAL, volume=first_scan, grid_index=1),
        *bank_images(3, REAL, volume=second_scan, grid_index=2),
    ]
    others = [image for _ in range(4) for image in bank_images(2, REAL, volume=VolumeFactory(), grid_index=3)]
    imported = bank_images(6, SYNTHETIC, generator_name="their-diffusion-model")
    assert {image_group(image) for image in real} == {f"subject:{twice_scanned.pk}"}
    assert len({image_group(image) for image in imported}) == 6  # one external generator is enough

    images = real + others + imported
    for seed in range(20):
        split = split_by_group(
            [image.image_class for image in images],
            [image_group(image) for image in images],
            test_fraction=0.5,
            seed=seed,
        )
        sides = {("test" if index in set(split.test) else "train") for index in range(len(real))}
        assert len(sides) == 1, f"seed {seed}: one person's two scans fell on both sides"
        assert split.has_both_classes_on_both_sides()


def test_researchers_queue_it_from_the_results_page_and_a_study_without_pools_is_refused(client, observed_study):
    client.force_login(researcher_of(observed_study))
    response = client.post(f"/results/{observed_study.pk}/machine-observer", follow=True)
    assert MachineObserverJob.objects.filter(study=observed_study, state="queued").count() == 1
    assert "queued" in response.content.decode()
    empty = Study.objects.create(name="Empty")
    with pytest.raises(ValueError, match="no pools"):
        machine_observer_create(study=empty)
    client.force_login(UserFactory(role="readers"))
    assert client.post(f"/results/{observed_study.pk}/machine-observer").status_code == 403
