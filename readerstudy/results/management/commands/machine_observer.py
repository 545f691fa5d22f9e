"""Run the machine observer of a study: a CNN classifier two-sample test beside the readers."""

from django.core.management.base import BaseCommand, CommandError

from readerstudy.core.errors import ApplicationError
from readerstudy.core.follow import job_follow
from readerstudy.core.jobs import JobState
from readerstudy.reading.studies import study_get
from readerstudy.results.observer import machine_observer_create


class Command(BaseCommand):
    help = "Queue the machine observer of a study (gpu queue); --wait follows it and prints its result."

    def add_arguments(self, parser) -> None:
        parser.add_argument("study", help="the study's name or id")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--epochs", type=int, default=8)
        parser.add_argument("--wait", action="store_true", help="follow it with a progress bar")

    def handle(self, *args, study, seed, epochs, wait, **options) -> None:
        try:
            job = machine_observer_create(study=study_get(study), seed=seed, epochs=epochs)
        except ApplicationError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"Queued machine observer {job.pk}.")
        if not wait:
            return
        job_follow(job, label=f"machine observer {job.pk}", unit="epoch")
        if job.state != JobState.SUCCEEDED:
            raise CommandError(f"Machine observer {job.pk} {job.state}: {job.error}")
        result = job.result
        self.stdout.write(
            self.style.SUCCESS(
                f"Machine observer: accuracy {result['accuracy']:.3f} on {result['n_test']} held-out images, "
                f"p = {result['p_value']:.3g} (alpha {result['alpha']}), "
                f"TP {result['tp']} FN {result['fn']} FP {result['fp']} TN {result['tn']}."
            )
        )
