"""One copy of each image (issue #19): the later twin of every pair of active bank images with
the same pixels is excluded (nothing is deleted, and an image a reader has seen stays active
rather than its unseen twin), then a partial unique constraint keeps it so. Latent seeds now come
from a per-job counter: each job's counter starts past every seed its fills have used, and a
fill made before keeps the seeds it was using (seed × 1,000,000 + i)."""

from django.db import migrations, models
from django.db.models import Count, Max

OLD_SEED_STRIDE = 1_000_000


def exclude_later_twins(apps, schema_editor) -> None:
    BankImage = apps.get_model("generator", "BankImage")
    active = BankImage.objects.filter(status="active")
    twinned = (
        active.values("pixel_checksum").annotate(n=Count("pk")).filter(n__gt=1).values_list("pixel_checksum", flat=True)
    )
    for checksum in twinned:
        # Keep the first shown (evidence), else the first stored.
        twins = list(
            active.filter(pixel_checksum=checksum).order_by(models.F("first_shown_at").asc(nulls_last=True), "pk")
        )
        kept = twins[0]
        BankImage.objects.filter(pk__in=[twin.pk for twin in twins[1:]]).update(
            status="excluded", exclusion_reason=f"same pixels as bank image {kept.pk}"
        )


def seed_counters(apps, schema_editor) -> None:
    TrainingJob = apps.get_model("generator", "TrainingJob")
    BankFillJob = apps.get_model("generator", "BankFillJob")
    for fill in BankFillJob.objects.all():
        BankFillJob.objects.filter(pk=fill.pk).update(first_latent_seed=fill.seed * OLD_SEED_STRIDE)
    for job in TrainingJob.objects.all():
        used = job.bank_images.aggregate(top=Max("latent_seed"))["top"]
        planned = max((fill.seed * OLD_SEED_STRIDE + fill.synthetic_count for fill in job.bank_fills.all()), default=0)
        TrainingJob.objects.filter(pk=job.pk).update(next_latent_seed=max(planned, (used or -1) + 1))


class Migration(migrations.Migration):
    dependencies = [("generator", "0005_subjects")]

    operations = [
        migrations.AddField(model_name="trainingjob", name="next_latent_seed", field=models.BigIntegerField(default=0)),
        migrations.AddField(
            model_name="bankfilljob",
            name="first_latent_seed",
            field=models.BigIntegerField(
                default=0, help_text="The fill's synthetic images use latent seeds first_latent_seed + 0, 1, …"
            ),
        ),
        migrations.AlterField(
            model_name="bankfilljob",
            name="seed",
            field=models.BigIntegerField(default=0, help_text="Draws the real slices and the held-out sample."),
        ),
        migrations.RunPython(seed_counters, migrations.RunPython.noop, elidable=False),
        migrations.RunPython(exclude_later_twins, migrations.RunPython.noop, elidable=False),
        migrations.AddConstraint(
            model_name="bankimage",
            constraint=models.UniqueConstraint(
                condition=models.Q(("status", "active")),
                fields=("pixel_checksum",),
                name="one_active_image_per_pixels",
            ),
        ),
    ]
