"""People in pools (issue #19): every pool entry learns its person (the bank image's subject, or
minus the image's id: a person of one image) and its rank among that person's entries, and each
study's real pools list their people, so sessions spread people without loading a pool. Sessions
built before keep their images; their largest per-person count stays empty."""

from collections import defaultdict

import django.db.models.deletion
from django.db import migrations, models


def rank_people(apps, schema_editor) -> None:
    PoolEntry = apps.get_model("readerstudy", "PoolEntry")
    PoolSubject = apps.get_model("readerstudy", "PoolSubject")
    Study = apps.get_model("readerstudy", "Study")
    for study in Study.objects.all():
        entries = list(
            PoolEntry.objects.filter(study=study)
            .select_related("bank_image")
            .order_by("pool", "image_class", "bank_image_id")
        )
        ranks: dict[tuple, int] = defaultdict(int)
        for entry in entries:
            entry.subject_key = entry.bank_image.subject_id or -entry.bank_image_id
            group = (entry.pool, entry.image_class, entry.subject_key)
            entry.subject_rank = ranks[group]
            ranks[group] += 1
        PoolEntry.objects.bulk_update(entries, ["subject_key", "subject_rank"], batch_size=2000)
        people: dict[tuple, list] = defaultdict(list)
        for (pool, image_class, key), size in sorted(ranks.items()):
            if image_class == "real":
                people[(pool, image_class)].append((key, size))
        PoolSubject.objects.bulk_create(
            PoolSubject(study=study, pool=pool, image_class=image_class, rank=rank, subject_key=key, size=size)
            for (pool, image_class), members in people.items()
            for rank, (key, size) in enumerate(members)
        )


class Migration(migrations.Migration):
    dependencies = [
        ("generator", "0006_one_copy_per_image"),
        ("readerstudy", "0008_platform_and_observer_leave"),
    ]

    operations = [
        migrations.CreateModel(
            name="PoolSubject",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("pool", models.CharField(choices=[("main", "Main"), ("training", "Training")], max_length=16)),
                (
                    "image_class",
                    models.CharField(choices=[("real", "Real"), ("synthetic", "Synthetic")], max_length=16),
                ),
                ("rank", models.PositiveIntegerField()),
                ("subject_key", models.BigIntegerField()),
                ("size", models.PositiveIntegerField(help_text="The person's entries in this pool and class.")),
            ],
        ),
        migrations.AddField(
            model_name="poolentry",
            name="subject_key",
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="poolentry",
            name="subject_rank",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="readingsession",
            name="max_images_per_subject",
            field=models.PositiveIntegerField(
                blank=True,
                help_text="The most main-phase real images of one person (empty: built before #19).",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="poolsubject",
            name="study",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="pool_subjects",
                to="readerstudy.study",
            ),
        ),
        migrations.RunPython(rank_people, migrations.RunPython.noop, elidable=False),
        migrations.AddConstraint(
            model_name="poolentry",
            constraint=models.UniqueConstraint(
                fields=("study", "pool", "image_class", "subject_key", "subject_rank"),
                name="one_pool_entry_per_subject_rank",
            ),
        ),
        migrations.AddConstraint(
            model_name="poolsubject",
            constraint=models.UniqueConstraint(
                fields=("study", "pool", "image_class", "rank"), name="one_pool_subject_per_rank"
            ),
        ),
    ]
