"""The production proxy for real: Caddy (Debian's package) running deploy/Caddyfile in front of
bin/web, as docker-compose's `proxy` and `web` run them, with DJANGO_HTTPS=true behind it. The
site is "localhost", for which Caddy issues a certificate from its own authority (a public name
gets Let's Encrypt's the same way); the test trusts that authority and nothing else."""

import http.client
import http.cookiejar
import json
import re
import shutil
import ssl
import urllib.error
import urllib.parse
import urllib.request

import pytest
from axes.models import AccessAttempt

from tests.factories import UserFactory
from tests.support import REPO, free_port, wait_for

pytestmark = pytest.mark.services

CADDY = shutil.which("caddy") or "/usr/bin/caddy"


@pytest.fixture
def stack(service_env, collected_static, start_process, tmp_path) -> dict:
    """bin/web on a loopback port and Caddy in front of it; their addresses and Caddy's authority."""
    web_port, http_port, https_port = free_port(), free_port(), free_port()
    origin = f"https://localhost:{https_port}"
    web_env = service_env | {
        "STATIC_ROOT": str(collected_static),
        "WEB_BIND": f"127.0.0.1:{web_port}",
        "WEB_CONCURRENCY": "2",
        # What docker-compose.yml sets for its web service.
        "DJANGO_HTTPS": "true",
        "TRUSTED_PROXY_COUNT": "1",
        "DJANGO_SECRET_KEY": "a-test-key-" + "x" * 40,
        "DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1",
        "DJANGO_CSRF_TRUSTED_ORIGINS": origin,
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
    }
    web = start_process([REPO / "bin" / "web"], env=web_env, name="web")
    caddy_env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "caddy-data"),
        "XDG_CONFIG_HOME": str(tmp_path / "caddy-config"),
        "SYNTHREAD_DOMAIN": "localhost",
        "ACME_EMAIL": "admin@example.org",
        "CADDY_HTTP_PORT": str(http_port),
        "CADDY_HTTPS_PORT": str(https_port),
        "WEB_UPSTREAM_NAME": "localhost",
        "WEB_UPSTREAM_PORT": str(web_port),
    }
    caddyfile = REPO / "deploy" / "Caddyfile"
    caddy = start_process([CADDY, "run", "--config", caddyfile, "--adapter", "caddyfile"], env=caddy_env, name="caddy")
    authority = tmp_path / "caddy-data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"

    def serving() -> bool:
        for process, name in ((web, "bin/web"), (caddy, "caddy")):
            if process.popen.poll() is not None:
                pytest.fail(f"{name} exited with {process.popen.returncode}:\n{process.log_tail()}")
        if not authority.exists():
            return False
        try:
            return _get(authority, f"{origin}/accounts/login/").status == 200
        except OSError:
            return False

    wait_for(serving, timeout=120, what="Caddy to serve bin/web's login page over TLS")
    return {"origin": origin, "http": f"localhost:{http_port}", "authority": authority, "caddy": caddy}


def _tls(authority) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(authority))  # Caddy's authority only: verified TLS


def _get(authority, url: str, **headers) -> http.client.HTTPResponse:
    request = urllib.request.Request(url, headers=headers)
    return urllib.request.urlopen(request, context=_tls(authority), timeout=10)


def _browser(authority) -> tuple[urllib.request.OpenerDirector, http.cookiejar.CookieJar]:
    cookies = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=_tls(authority)), urllib.request.HTTPCookieProcessor(cookies)
    )
    return opener, cookies


def _log_in(opener, origin: str, username: str, password: str, **headers) -> http.client.HTTPResponse:
    page = opener.open(f"{origin}/accounts/login/", timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]
    form = urllib.parse.urlencode({"csrfmiddlewaretoken": token, "username": username, "password": password})
    request = urllib.request.Request(
        f"{origin}/accounts/login/", data=form.encode(), headers={"Referer": f"{origin}/accounts/login/", **headers}
    )
    return opener.open(request, timeout=10)


def test_caddy_serves_bin_web_over_verified_tls_and_redirects_plain_http(stack):
    plain = http.client.HTTPConnection(stack["http"], timeout=10)
    plain.request("GET", "/accounts/login/", headers={"Host": "localhost"})
    redirect = plain.getresponse()
    assert redirect.status in (301, 308)
    assert redirect.getheader("Location").startswith("https://localhost")

    response = _get(stack["authority"], f"{stack['origin']}/accounts/login/", **{"Accept-Encoding": "zstd, gzip"})
    # Django saw https (X-Forwarded-Proto from Caddy, SECURE_PROXY_SSL_HEADER): it sends HSTS only then.
    assert response.headers["Strict-Transport-Security"] == "max-age=3600"
    assert response.headers["Content-Encoding"] in ("zstd", "gzip")  # the proxy compresses pages
    assert "Secure" in response.headers["Set-Cookie"]  # the CSRF cookie travels over TLS only


def test_an_admin_signs_in_through_the_proxy_and_the_lockout_sees_the_real_client(stack):
    UserFactory(username="site-admin", password="a-long-passphrase-9", role="admins")
    opener, _ = _browser(stack["authority"])
    # A client that claims another address: Caddy replaces what it cannot vouch for, and Django
    # trusts exactly one proxy, so the failed login is counted against the real client.
    _log_in(opener, stack["origin"], "site-admin", "wrong", **{"X-Forwarded-For": "203.0.113.9"})
    attempts = list(AccessAttempt.objects.values_list("username", "ip_address"))
    assert attempts == [("site-admin", "127.0.0.1")]

    signed_in = _log_in(opener, stack["origin"], "site-admin", "a-long-passphrase-9")
    assert signed_in.status == 200 and signed_in.url == f"{stack['origin']}/admin/"  # an admin's home, over https
    try:
        health = opener.open(f"{stack['origin']}/healthz", timeout=10).read()
    except urllib.error.HTTPError as not_ok:  # 503: no worker runs in this test
        health = not_ok.read()
    assert set(json.loads(health)) == {"ok", "database", "broker", "workers"}  # an admin's view
