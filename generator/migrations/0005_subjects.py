"""Subjects are people (issue #18): every existing volume becomes one subject of its own.

Labels were unique per dataset and are unique in the installation now: an old label taken by an
earlier volume of another dataset becomes ``<dataset>-<label>``. Real bank images get their
volume's subject. Nothing a reader saw changes: calls, trials and image files are untouched."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def volumes_to_subjects(apps, schema_editor) -> None:
    Volume = apps.get_model("generator", "Volume")
    Subject = apps.get_model("generator", "Subject")
    BankImage = apps.get_model("generator", "BankImage")
    taken = set()
    for volume in Volume.objects.select_related("dataset").order_by("pk"):
        label = volume.subject_label
        if label in taken:
            label = f"{volume.dataset.name}-{volume.subject_label}"[:56]
        if label in taken:
            label = f"{label}-{volume.pk}"
        taken.add(label)
        subject = Subject.objects.create(label=label, note=f"Migrated from volume {volume.pk}.")
        Volume.objects.filter(pk=volume.pk).update(subject=subject)
        BankImage.objects.filter(volume_id=volume.pk).update(subject=subject)


class Migration(migrations.Migration):
    dependencies = [
        ("generator", "0004_training_metrics"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Subject",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("label", models.CharField(max_length=64, unique=True)),
                (
                    "kind",
                    models.CharField(
                        choices=[("person", "person"), ("demo-pseudo", "demo pseudo-subject")],
                        default="person",
                        max_length=16,
                    ),
                ),
                ("note", models.TextField(blank=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={"ordering": ["label"]},
        ),
        migrations.CreateModel(
            name="SubjectPatientKey",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("key", models.CharField(max_length=64, unique=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "subject",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="patient_keys",
                        to="generator.subject",
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="SubjectMerge",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("merged_label", models.CharField(max_length=64)),
                ("merged_kind", models.CharField(max_length=16)),
                ("volume_ids", models.JSONField(default=list)),
                ("bank_image_ids", models.JSONField(default=list)),
                ("patient_keys_moved", models.PositiveIntegerField(default=0)),
                ("reason", models.TextField(blank=True)),
                ("at", models.DateTimeField(auto_now_add=True)),
                (
                    "kept",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT, related_name="merges", to="generator.subject"
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        null=True, on_delete=django.db.models.deletion.PROTECT, to=settings.AUTH_USER_MODEL
                    ),
                ),
            ],
            options={"ordering": ["-at"]},
        ),
        migrations.AddField(
            model_name="volume",
            name="subject",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.PROTECT, related_name="volumes", to="generator.subject"
            ),
        ),
        migrations.AddField(
            model_name="bankimage",
            name="subject",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="bank_images",
                to="generator.subject",
            ),
        ),
        migrations.RunPython(volumes_to_subjects, elidable=False),
        migrations.RemoveConstraint(model_name="volume", name="unique_subject_per_dataset"),
        migrations.RemoveField(model_name="volume", name="subject_label"),
        migrations.AlterField(
            model_name="volume",
            name="subject",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="volumes", to="generator.subject"
            ),
        ),
        migrations.AlterModelOptions(name="volume", options={"ordering": ["dataset", "subject__label", "pk"]}),
    ]
