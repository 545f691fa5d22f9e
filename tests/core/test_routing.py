"""Real Celery workers (Redis broker, PostgreSQL): tasks run, dead workers' jobs are rescued,
and no job ever runs on two workers at once."""

import pytest
from celery import current_app

pytestmark = pytest.mark.services


def test_gpu_tasks_are_routed_to_the_gpu_queue_by_name():
    router = current_app.amqp.router
    assert router.route({}, "generator.tasks.training_run")["queue"].name == "gpu"
    assert router.route({}, "generator.tasks.bank_fill_run")["queue"].name == "gpu"
    assert router.route({}, "readerstudy.tasks.jobs_requeue_lapsed")["queue"].name == "default"
