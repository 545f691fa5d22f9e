"""The core app takes over its models from the reading app (label ``readerstudy``): their
tables keep their names, and their content types (with permissions and admin log entries) move."""

import functools

import django.db.models.deletion
from django.db import migrations, models


def content_types_move(apps, schema_editor, *, models, old, new):
    """Admin log entries and permissions point at content types: rename them, keep their ids."""
    content_type = apps.get_model("contenttypes", "ContentType")
    content_type.objects.filter(app_label=old, model__in=models).update(app_label=new)


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('readerstudy', '0008_platform_and_observer_leave'),
    ]

    operations = [
        # The tables stay where they are: only Django's idea of which app owns them changes.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='ProbeJob',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('state', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('cancelled', 'Cancelled')], db_index=True, default='queued', max_length=16)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('queued_at', models.DateTimeField(blank=True, null=True)),
                        ('started_at', models.DateTimeField(blank=True, null=True)),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('heartbeat_at', models.DateTimeField(blank=True, null=True)),
                        ('lease_owner', models.CharField(blank=True, max_length=200)),
                        ('lease_expires_at', models.DateTimeField(blank=True, db_index=True, null=True)),
                        ('attempts', models.PositiveIntegerField(default=0, help_text='How many times a worker claimed this job.')),
                        ('cancel_requested', models.BooleanField(default=False)),
                        ('progress', models.JSONField(blank=True, default=dict)),
                        ('error', models.TextField(blank=True)),
                        ('log', models.TextField(blank=True, help_text='Lifecycle events: claims, re-queues, the end.')),
                        ('queue', models.CharField(choices=[('default', 'Default'), ('gpu', 'Gpu')], default='default', max_length=16)),
                        ('steps', models.PositiveIntegerField(default=10)),
                        ('step_seconds', models.FloatField(default=0.5)),
                    ],
                    options={
                        'db_table': 'readerstudy_probejob',
                    },
                ),
                migrations.CreateModel(
                    name='WorkerHeartbeat',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(help_text='Celery node name, e.g. gpu@host.', max_length=200, unique=True)),
                        ('queues', models.CharField(blank=True, max_length=200)),
                        ('pid', models.PositiveIntegerField()),
                        ('started_at', models.DateTimeField()),
                        ('last_seen', models.DateTimeField(db_index=True)),
                    ],
                    options={
                        'db_table': 'readerstudy_workerheartbeat',
                    },
                ),
                migrations.CreateModel(
                    name='ProbeTick',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('owner', models.CharField(max_length=200)),
                        ('step', models.PositiveIntegerField()),
                        ('at', models.DateTimeField(auto_now_add=True)),
                        ('job', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='ticks', to='core.probejob')),
                    ],
                    options={
                        'db_table': 'readerstudy_probetick',
                        'ordering': ['at', 'pk'],
                    },
                ),
            ],
        ),
        migrations.RunPython(
            functools.partial(content_types_move, models=('workerheartbeat', 'probejob', 'probetick'), old="readerstudy", new="core"),
            functools.partial(content_types_move, models=('workerheartbeat', 'probejob', 'probetick'), old="core", new="readerstudy"),
        ),
    ]
