"""The platform models leave for the core app, the machine-observer job for the results app:
state only, their tables keep their names (core 0001 and results 0001 take them over)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('readerstudy', '0007_machine_observer'),
    ]

    operations = [
        # The tables stay where they are: only Django's idea of which app owns them changes.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name='machineobserverjob',
                    name='study',
                ),
                migrations.RemoveField(
                    model_name='probetick',
                    name='job',
                ),
                migrations.DeleteModel(
                    name='WorkerHeartbeat',
                ),
                migrations.DeleteModel(
                    name='MachineObserverJob',
                ),
                migrations.DeleteModel(
                    name='ProbeJob',
                ),
                migrations.DeleteModel(
                    name='ProbeTick',
                ),
            ],
        ),
    ]
