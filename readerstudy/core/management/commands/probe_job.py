"""Queue a probe job (a diagnostic that exercises queue, lease, progress) and optionally wait."""

from django.core.management.base import BaseCommand, CommandError

from readerstudy.core.errors import ApplicationError
from readerstudy.core.follow import job_follow
from readerstudy.core.models import ProbeJob
from readerstudy.core.probes import probe_job_create


class Command(BaseCommand):
    help = "Check a worker set-up: queue a probe job on a queue; with --wait, follow it to its end."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--queue", choices=[q.value for q in ProbeJob.Queue], default=ProbeJob.Queue.DEFAULT)
        parser.add_argument("--steps", type=int, default=10)
        parser.add_argument("--step-seconds", type=float, default=0.5)
        parser.add_argument("--wait", action="store_true", help="show progress until the job ends")
        parser.add_argument("--timeout", type=float, default=600, help="seconds to wait at most (with --wait)")

    def handle(self, *args, queue: str, steps: int, step_seconds: float, wait: bool, timeout: float, **options) -> None:
        try:
            job = probe_job_create(queue=queue, steps=steps, step_seconds=step_seconds)
        except ApplicationError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Queued probe job {job.pk} on queue '{queue}'.")
        if not wait:
            return
        job_follow(
            job,
            label=f"probe job {job.pk}",
            poll_s=0.25,
            timeout_s=timeout,
            timeout_hint=f"Is a worker consuming the '{queue}' queue?",
        )
        self.stdout.write(self.style.SUCCESS(f"Probe job {job.pk} succeeded after {job.attempts} attempt(s)."))
