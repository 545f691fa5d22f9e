"""Hostile input (issue #9): dead or foreign trial tokens, forged and malformed calls, bad
uploads, readers and researchers probing pages that are not theirs, weak passwords and the
cookie settings behind HTTPS."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from readerstudy.reading.models import Study
from readerstudy.reading.pools import study_set_pools
from readerstudy.reading.sessions import study_open
from tests.factories import REAL, SYNTHETIC, bank_images
from tests.support import REPO

pytestmark = pytest.mark.django_db


def _study(name: str, rng) -> Study:
    study = Study.objects.create(name=name, images_per_session=4, synthetic_min=2, synthetic_max=2, training_images=2)
    study_set_pools(
        study=study,
        main_pool=bank_images(3, REAL, size=32) + bank_images(3, SYNTHETIC, size=32),
        training_pool=bank_images(1, REAL, size=32) + bank_images(1, SYNTHETIC, size=32),
    )
    return study_open(study=study)


@pytest.fixture
def study() -> Study:
    return _study("hostile", np.random.default_rng(9))


# --- trial tokens ---------------------------------------------------------------------------------


# --- uploads -----------------------------------------------------------------------------------


# --- probing other roles' pages --------------------------------------------------------------------


# --- passwords and cookies -------------------------------------------------------------------------


def _settings_under(env: dict) -> dict:
    code = (
        "import json; from readerstudy import settings as s; print(json.dumps({name: getattr(s, name, None) "
        "for name in ['SESSION_COOKIE_SECURE', 'SESSION_COOKIE_HTTPONLY', 'CSRF_COOKIE_SECURE', "
        "'CSRF_COOKIE_HTTPONLY', 'SECURE_PROXY_SSL_HEADER', 'SECURE_HSTS_SECONDS', 'AXES_IPWARE_PROXY_COUNT', "
        "'AXES_IPWARE_META_PRECEDENCE_ORDER']} | {'NUM_PROXIES': s.REST_FRAMEWORK['NUM_PROXIES']}))"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env={**clean, **env}, capture_output=True, encoding="utf-8", timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


PRODUCTION = {
    "DJANGO_HTTPS": "true",
    "DJANGO_SECRET_KEY": "a-long-random-production-key-for-this-test-only-0123456789",
    "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
}


def _refusal_under(env: dict) -> str:
    """What the server says when it refuses to start with these settings (it must refuse)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_") and k != "EMAIL_BACKEND"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=REPO, env={**clean, **env}, capture_output=True, encoding="utf-8",
        timeout=60,
    )  # fmt: skip
    assert result.returncode != 0, result.stdout
    return result.stderr


def test_production_refuses_to_start_with_the_default_key_or_the_console_mail_naming_the_variable():
    without_key = {name: value for name, value in PRODUCTION.items() if name != "DJANGO_SECRET_KEY"}
    assert "set DJANGO_SECRET_KEY" in _refusal_under(without_key)
    with_console_mail = {name: value for name, value in PRODUCTION.items() if name != "EMAIL_BACKEND"}
    assert "set EMAIL_BACKEND" in _refusal_under(with_console_mail)
    assert _settings_under(PRODUCTION)["SESSION_COOKIE_SECURE"]  # both set: it starts
    assert not _settings_under({})["SESSION_COOKIE_SECURE"]  # the embedded default needs neither


def test_behind_https_cookies_are_secure_and_the_session_cookie_httponly():
    https = _settings_under(PRODUCTION)
    assert https["SESSION_COOKIE_SECURE"] and https["CSRF_COOKIE_SECURE"] and https["SESSION_COOKIE_HTTPONLY"]
    assert https["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert https["SECURE_HSTS_SECONDS"] > 0
    # Behind one proxy the client is the X-Forwarded-For entry that proxy wrote, the last: python-ipware
    # counts listed proxies (none listed), DRF's throttles the proxies themselves (one).
    assert https["AXES_IPWARE_META_PRECEDENCE_ORDER"] == ["HTTP_X_FORWARDED_FOR"]
    assert https["AXES_IPWARE_PROXY_COUNT"] == 0 and https["NUM_PROXIES"] == 1
    # The reading page's script reads the CSRF cookie to send it back, so that one stays readable.
    assert not https["CSRF_COOKIE_HTTPONLY"]
    local = _settings_under({})
    assert not local["SESSION_COOKIE_SECURE"] and local["SESSION_COOKIE_HTTPONLY"]
    assert local["AXES_IPWARE_META_PRECEDENCE_ORDER"] == ["REMOTE_ADDR"] and local["NUM_PROXIES"] == 0
