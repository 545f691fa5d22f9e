"""The machine observer beside the readers (readerstudy/results/observer.py): it trains on the study's
own bank images, split by group, and its row joins the results table and table.csv."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from generator.bank import bank_image_store
from readerstudy.reading.models import Study
from readerstudy.reading.sessions import study_set_pools
from readerstudy.results.models import MachineObserverJob
from readerstudy.results.observer import _group, machine_observer_create
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _smooth(rng, size=32) -> np.ndarray:
    field = gaussian_filter(rng.normal(size=(size, size)), 2.0)
    return np.clip(field / (3 * field.std()), -1, 1).astype(np.float32)


@pytest.fixture
def study() -> Study:
    """Real: smooth fields; synthetic: the same kind of fields with speckle on top (an easy tell),
    from 24 imported "generators" so the held-out side has many synthetic groups (the observer
    scores one image per held-out group)."""
    rng = np.random.default_rng(0)
    real = [bank_image_store(pixels=_smooth(rng), image_class="real", generator_name="scanner") for _ in range(48)]
    synthetic = [
        bank_image_store(
            pixels=np.clip(_smooth(rng) + rng.normal(scale=0.5, size=(32, 32)), -1, 1).astype(np.float32),
            image_class="synthetic",
            generator_name=f"gan-{index % 24}",
        )
        for index in range(48)
    ]
    study = Study.objects.create(name="Observed", training_images=2)
    study_set_pools(study=study, main_pool=real[2:] + synthetic[2:], training_pool=real[:2] + synthetic[:2])
    return study


def test_groups_keep_subjects_and_generators_together(study):
    image = study.pool_entries.first().bank_image
    assert _group(image).startswith(("file:", "generator:"))
    image.volume_id, image.training_job_id = 7, None
    assert _group(image) == "volume:7"


def test_researchers_queue_it_from_the_results_page_and_a_study_without_pools_is_refused(client, study):
    client.force_login(UserFactory(role="researchers"))
    response = client.post(f"/results/{study.pk}/machine-observer", follow=True)
    assert MachineObserverJob.objects.filter(study=study, state="queued").count() == 1
    assert "queued" in response.content.decode()
    empty = Study.objects.create(name="Empty")
    with pytest.raises(ValueError, match="no pools"):
        machine_observer_create(study=empty)
    client.force_login(UserFactory(role="readers"))
    assert client.post(f"/results/{study.pk}/machine-observer").status_code == 403
