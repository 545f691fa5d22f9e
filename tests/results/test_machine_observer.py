"""The machine observer beside the readers (readerstudy/results/observer.py): it trains on the study's
own bank images, split by group, and its row joins the results table and table.csv."""

import pytest

from readerstudy.reading.models import Study
from readerstudy.results.models import MachineObserverJob
from readerstudy.results.observer import _group, machine_observer_create
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_groups_keep_subjects_and_generators_together(observed_study):
    image = observed_study.pool_entries.first().bank_image
    assert _group(image).startswith(("file:", "generator:"))
    image.volume_id, image.training_job_id = 7, None
    assert _group(image) == "volume:7"


def test_researchers_queue_it_from_the_results_page_and_a_study_without_pools_is_refused(client, observed_study):
    client.force_login(UserFactory(role="researchers"))
    response = client.post(f"/results/{observed_study.pk}/machine-observer", follow=True)
    assert MachineObserverJob.objects.filter(study=observed_study, state="queued").count() == 1
    assert "queued" in response.content.decode()
    empty = Study.objects.create(name="Empty")
    with pytest.raises(ValueError, match="no pools"):
        machine_observer_create(study=empty)
    client.force_login(UserFactory(role="readers"))
    assert client.post(f"/results/{observed_study.pk}/machine-observer").status_code == 403
