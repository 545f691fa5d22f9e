"""The machine observer beside the readers (readerstudy/results/observer.py): it trains on the study's
own bank images, split by group, and its row joins the results table and table.csv."""

import csv
import io

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from generator.bank import bank_image_store
from readerstudy.core.jobs import JobState, job_run
from readerstudy.reading.models import Study
from readerstudy.reading.sessions import study_set_pools
from readerstudy.results.models import MachineObserverJob
from readerstudy.results.observer import machine_observer_create, machine_observer_work
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


@pytest.mark.django_db(transaction=True)  # the job's lease keeper writes from a thread of its own
def test_the_observer_tells_an_easy_generator_apart_and_joins_the_table(client, study):
    job = machine_observer_create(study=study, seed=3, epochs=20)
    assert job_run(model=MachineObserverJob, job_id=job.pk, work=machine_observer_work) == JobState.SUCCEEDED
    job.refresh_from_db()
    result = job.result
    assert result["n_scored"] >= 16 and result["tp"] + result["fn"] + result["fp"] + result["tn"] == result["n_scored"]
    assert result["accuracy"] > 0.8 and result["p_value"] < 0.05 and result["significant"]
    client.force_login(UserFactory(role="researchers"))
    table = list(
        csv.DictReader(
            io.StringIO(client.get(f"/api/v1/studies/{study.pk}/results/table/?format=csv").content.decode())
        )
    )
    row = next(r for r in table if r["reader"] == "machine observer")
    assert int(row["tp"]) == result["tp"] and "held-out test set" in row["note"]
    assert "machine observer" in client.get(f"/results/{study.pk}/").content.decode()
