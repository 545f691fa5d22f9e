"""`manage.py demo` stays a demo: it refuses any database but the embedded SQLite unless --force,
since it resets demo-admin to the password the README prints."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db


def test_the_demo_refuses_a_postgresql_database_and_changes_nothing():
    with pytest.raises(CommandError, match=r"embedded SQLite only.*postgresql database.*--force"):
        call_command("demo", "--no-serve", "--no-pipeline")
    assert not get_user_model().objects.filter(username__startswith="demo-").exists()


def test_with_force_it_runs_where_it_is_told():
    call_command("demo", "--no-serve", "--no-pipeline", "--force")
    assert get_user_model().objects.filter(username="demo-admin").exists()
