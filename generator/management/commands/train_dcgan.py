"""Queue a DCGAN training job on a dataset (the same job the browser's form creates)."""

from django.core.management.base import BaseCommand, CommandError

from generator.models import Dataset, TrainingJob
from generator.training_jobs import training_job_create
from readerstudy.core.errors import ApplicationError
from readerstudy.core.follow import job_follow


class Command(BaseCommand):
    help = "Queue a DCGAN training job on the gpu queue; with --wait, show its progress until it ends."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--preset", choices=TrainingJob.Preset.values, default=TrainingJob.Preset.MODERN_64)
        budget = parser.add_mutually_exclusive_group()
        budget.add_argument("--epochs", type=int, help="passes over the whole slice grid (default: the preset's)")
        budget.add_argument("--steps", type=int, help="discriminator steps (default: the preset's)")
        budget.add_argument(
            "--minutes",
            type=float,
            help="minutes of training, on any machine; a resumed job gets the time it had left (default: the preset's)",
        )
        parser.add_argument("--batch-size", type=int)
        parser.add_argument("--seed", type=int)
        parser.add_argument("--mixed-precision", choices=["auto", "on", "off"])
        parser.add_argument("--wait", action="store_true", help="follow the job with a progress bar until it ends")

    def handle(
        self, *args, dataset, preset, epochs, steps, minutes, batch_size, seed, mixed_precision, wait, **options
    ):
        try:
            target = Dataset.objects.get(name=dataset)
        except Dataset.DoesNotExist:
            raise CommandError(f"No dataset named {dataset!r}; ingest volumes with ingest_volumes first.") from None
        try:
            job = training_job_create(
                dataset=target,
                preset=preset,
                epochs=epochs,
                steps=steps,
                minutes=minutes,
                batch_size=batch_size,
                seed=seed,
                mixed_precision=mixed_precision,
            )
        except ApplicationError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"Queued training job {job.pk} ({preset} on {target}, {job.budget_text}).")
        if wait:
            self._follow(job)

    def _follow(self, job: TrainingJob) -> None:
        job_follow(job, label=f"training job {job.pk}", postfix_keys=("d_loss", "g_loss"))
        self.stdout.write(self.style.SUCCESS(f"Training job {job.pk} succeeded; generator: {job.generator_file.name}"))
        diversity = job.diversity
        if diversity is None:
            self.stdout.write("Diversity not measured (metrics_every is off).")
            return
        verdict = (
            self.style.ERROR("COLLAPSED: synthetic pairs are far more alike than real pairs")
            if diversity["verdict"] == "collapsed"
            else "diverse"
        )
        self.stdout.write(
            f"Diversity: {verdict} (MS-SSIM synthetic {diversity['ms_ssim_synthetic']:.3f}, real "
            f"{diversity['ms_ssim_real']:.3f}: {diversity['excess']:+.3f}; collapsed above {diversity['margin']:.2f})."
        )
        if job.collapse_advice:
            self.stdout.write(job.collapse_advice)
