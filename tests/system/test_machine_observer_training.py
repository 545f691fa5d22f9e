"""The machine observer beside the readers (readerstudy/results/observer.py): it trains on the study's
own bank images, split by group, and its row joins the results table and table.csv."""

import csv
import io

import pytest

from readerstudy.core.jobs import JobState, job_run
from readerstudy.results.models import MachineObserverJob
from readerstudy.results.observer import machine_observer_create, machine_observer_work
from tests.factories import researcher_of

pytestmark = pytest.mark.django_db


@pytest.mark.django_db(transaction=True)  # the job's lease keeper writes from a thread of its own
def test_the_observer_tells_an_easy_generator_apart_and_joins_the_table(client, observed_study):
    job = machine_observer_create(study=observed_study, seed=3, epochs=20)
    assert job_run(model=MachineObserverJob, job_id=job.pk, work=machine_observer_work) == JobState.SUCCEEDED
    job.refresh_from_db()
    result = job.result
    assert result["n_scored"] >= 16 and result["tp"] + result["fn"] + result["fp"] + result["tn"] == result["n_scored"]
    assert result["accuracy"] > 0.8 and result["p_value"] < 0.05 and result["significant"]
    client.force_login(researcher_of(observed_study))
    table = list(
        csv.DictReader(
            io.StringIO(client.get(f"/api/v1/studies/{observed_study.pk}/results/table/?format=csv").content.decode())
        )
    )
    row = next(r for r in table if r["reader"] == "machine observer")
    assert int(row["tp"]) == result["tp"] and "held-out test set" in row["note"]
    assert "machine observer" in client.get(f"/results/{observed_study.pk}/").content.decode()
