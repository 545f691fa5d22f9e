# Written by hand: the study pools move from two many-to-many fields to ranked PoolEntry rows
# (issue #6), and the pools already set are copied over, ranked per class by bank image id.

import django.db.models.deletion
from django.db import migrations, models

POOLS = ("main", "training")


def copy_pools_to_entries(apps, schema_editor):
    Study = apps.get_model("readerstudy", "Study")
    PoolEntry = apps.get_model("readerstudy", "PoolEntry")
    for study in Study.objects.all():
        placed = set()  # the old pools were kept apart by code only; the first one wins
        for pool in POOLS:
            ranks = {}
            entries = []
            for image_id, image_class in getattr(study, f"{pool}_pool").order_by("pk").values_list("pk", "image_class"):
                if image_id in placed:
                    continue
                placed.add(image_id)
                rank = ranks[image_class] = ranks.get(image_class, -1) + 1
                entries.append(
                    PoolEntry(study=study, pool=pool, image_class=image_class, rank=rank, bank_image_id=image_id)
                )
            PoolEntry.objects.bulk_create(entries, batch_size=5000)


def copy_entries_to_pools(apps, schema_editor):
    Study = apps.get_model("readerstudy", "Study")
    PoolEntry = apps.get_model("readerstudy", "PoolEntry")
    for study in Study.objects.all():
        for pool in POOLS:
            ids = PoolEntry.objects.filter(study=study, pool=pool).values_list("bank_image_id", flat=True)
            getattr(study, f"{pool}_pool").set(list(ids))


class Migration(migrations.Migration):

    dependencies = [
        ('generator', '0003_image_bank'),
        ('readerstudy', '0004_reading_flow'),
    ]

    operations = [
        migrations.CreateModel(
            name='PoolEntry',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('pool', models.CharField(choices=[('main', 'Main'), ('training', 'Training')], max_length=16)),
                ('image_class', models.CharField(choices=[('real', 'Real'), ('synthetic', 'Synthetic')], help_text='Copied from the bank image.', max_length=16)),
                ('rank', models.PositiveIntegerField(help_text='0…n-1 within the study, pool and class.')),
                ('bank_image', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='pool_entries', to='generator.bankimage')),
                ('study', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='pool_entries', to='readerstudy.study')),
            ],
            options={
                'verbose_name_plural': 'pool entries',
                'constraints': [models.UniqueConstraint(fields=('study', 'pool', 'image_class', 'rank'), name='one_pool_entry_per_rank'), models.UniqueConstraint(fields=('bank_image', 'study'), name='one_pool_per_image_and_study')],
            },
        ),
        migrations.RunPython(copy_pools_to_entries, copy_entries_to_pools),
        migrations.RemoveField(
            model_name='study',
            name='main_pool',
        ),
        migrations.RemoveField(
            model_name='study',
            name='training_pool',
        ),
    ]
