"""Root test configuration: every test writes media to a temporary folder of its own, and
pages render without a collectstatic run."""

import pytest


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    # The manifest storage needs `collectstatic` first; the in-process tests render pages without it.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    return settings.MEDIA_ROOT


@pytest.fixture(autouse=True, scope="session")
def static_root_exists():
    """whitenoise warns about a missing STATIC_ROOT on every request; a fresh clone has none."""
    from django.conf import settings

    settings.STATIC_ROOT.mkdir(parents=True, exist_ok=True)
