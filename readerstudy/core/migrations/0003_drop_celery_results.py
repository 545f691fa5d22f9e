"""django-celery-results is gone (jobs keep their state on their own rows): drop its tables, its
rows in Django's migration history, and its content types with their permissions."""

from django.db import migrations
from django.db.migrations.recorder import MigrationRecorder

# Every table its migrations (2.6.0: 0001 to 0014) created; indexes and sequences go with them.
TABLES = [
    "django_celery_results_taskresult",
    "django_celery_results_groupresult",
    "django_celery_results_chordcounter",
]


def celery_results_drop(apps, schema_editor):
    """Plain ``DROP TABLE IF EXISTS``, which SQLite and PostgreSQL both accept: a database created
    after the app was removed never had the tables. No other table points at them, so no CASCADE
    (which SQLite lacks) is needed."""
    for table in TABLES:
        schema_editor.execute(f"DROP TABLE IF EXISTS {schema_editor.quote_name(table)}")
    MigrationRecorder(schema_editor.connection).migration_qs.filter(app="django_celery_results").delete()
    # Its permissions ("Can view task result") would linger in the admin's permission lists; the
    # ORM delete takes them along, and admin log entries keep their text with no content type.
    content_type = apps.get_model("contenttypes", "ContentType")
    content_type.objects.using(schema_editor.connection.alias).filter(app_label="django_celery_results").delete()


class Migration(migrations.Migration):

    dependencies = [
        ('admin', '0003_logentry_add_action_flag_choices'),
        ('auth', '0012_alter_user_first_name_max_length'),
        ('contenttypes', '0002_remove_content_type_name'),
        ('core', '0002_password_reset_requests'),
    ]

    operations = [
        # Nothing to undo into: the rows were task results nobody read, and installing the app
        # again would create its tables with its own migrations.
        migrations.RunPython(celery_results_drop, migrations.RunPython.noop),
    ]
