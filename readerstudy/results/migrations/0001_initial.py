"""The results app takes over its models from the reading app (label ``readerstudy``): their
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
                    name='MachineObserverJob',
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
                        ('seed', models.PositiveIntegerField(default=0)),
                        ('epochs', models.PositiveIntegerField(default=8)),
                        ('batch_size', models.PositiveIntegerField(default=32)),
                        ('result', models.JSONField(blank=True, default=dict)),
                        ('study', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='observer_jobs', to='readerstudy.study')),
                    ],
                    options={
                        'db_table': 'readerstudy_machineobserverjob',
                    },
                ),
            ],
        ),
        migrations.RunPython(
            functools.partial(content_types_move, models=('machineobserverjob',), old="readerstudy", new="results"),
            functools.partial(content_types_move, models=('machineobserverjob',), old="results", new="readerstudy"),
        ),
    ]
