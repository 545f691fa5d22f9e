"""Set up Django for a benchmark on a throwaway test database (created, then dropped)."""

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def benchmark_database(name: str | None = None) -> Iterator[None]:
    """A fresh test database, dropped afterwards; ``name`` gives it a name of its own, so a
    benchmark never touches the database of a test run on the same server."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "readerstudy.settings")
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_test_environment, teardown_test_environment

    test_settings = connection.settings_dict.setdefault("TEST", {})
    previous_name = test_settings.get("NAME")
    if name is not None:
        test_settings["NAME"] = name
    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        yield
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        teardown_test_environment()
        test_settings["NAME"] = previous_name
