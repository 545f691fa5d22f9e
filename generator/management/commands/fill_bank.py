"""Queue a bank fill from a finished training job: synthetic images screened, real slices beside them."""

from django.core.management.base import BaseCommand, CommandError

from generator.bank_fill import bank_fill_create
from generator.models import Dataset, TrainingJob
from readerstudy.core.errors import ApplicationError
from readerstudy.core.follow import job_follow


class Command(BaseCommand):
    help = "Fill the image bank from a training job (N synthetic images, M real ones; M = N by default)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--job", type=int, required=True, help="the training job's id")
        parser.add_argument("--count", type=int, required=True, help="synthetic images")
        parser.add_argument("--real-count", type=int, help="real images (default: --count)")
        parser.add_argument("--held-out-dataset", help="a dataset of other subjects, for the screen's threshold")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--override-collapse",
            metavar="REASON",
            default="",
            help="fill from a generator judged collapsed anyway, for this reason (kept with the fill)",
        )
        parser.add_argument("--wait", action="store_true", help="follow the fill with a progress bar")

    def handle(self, *args, job, count, real_count, held_out_dataset, seed, override_collapse, wait, **options) -> None:
        training_job = TrainingJob.objects.filter(pk=job).first()
        if training_job is None:
            raise CommandError(f"No training job {job}.")
        held_out = None
        if held_out_dataset:
            held_out = Dataset.objects.filter(name=held_out_dataset).first()
            if held_out is None:
                raise CommandError(f"No dataset named {held_out_dataset!r}.")
        try:
            fill = bank_fill_create(
                training_job=training_job,
                synthetic_count=count,
                real_count=real_count,
                held_out_dataset=held_out,
                seed=seed,
                collapse_override_reason=override_collapse,
            )
        except ApplicationError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"Queued bank fill {fill.pk} ({fill.synthetic_count} synthetic, {fill.real_count} real).")
        if not wait:
            return
        job_follow(fill, label=f"bank fill {fill.pk}", unit="image")
        report = fill.report
        copying = report.get("data_copying")
        self.stdout.write(
            self.style.SUCCESS(
                f"Bank fill {fill.pk} done: {report.get('excluded', 0)} excluded as near-copies "
                f"(threshold {report.get('threshold', 0):.4f}, {report.get('threshold_basis')}); data-copying C_T: "
                + (f"{copying:.2f}" if copying is not None else report.get("data_copying_note", "n/a"))
            )
        )
