"""What /healthz reports: does the database answer, the broker, and at least one worker? And the
admin's banner when the broker does not answer."""

from celery import current_app
from django.db import connection
from django.http import HttpRequest

from .workers import workers_alive

HEALTHZ_BROKER_TIMEOUT_S = 3.0
# Every admin page asks the broker (a few ms on a healthy one); a broker that hangs must not
# make the admin slow, so the banner gives up sooner than /healthz does.
BANNER_BROKER_TIMEOUT_S = 0.5


def _check_database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return {"ok": True, "vendor": connection.vendor}
    except Exception as exc:
        return {"ok": False, "error": str(exc).strip()}


def _check_broker(timeout_s: float = HEALTHZ_BROKER_TIMEOUT_S) -> dict:
    # socket_timeout bounds a broker that accepts the connection but never answers; the
    # transport's own options (the filesystem broker's folders) are kept.
    options = {**(current_app.conf.broker_transport_options or {}), "socket_timeout": timeout_s}
    try:
        with current_app.connection_for_write(connect_timeout=timeout_s, transport_options=options) as broker:
            broker.ensure_connection(max_retries=1, interval_start=0, interval_step=0.2, timeout=timeout_s)
            transport = broker.transport_cls
        return {"ok": True, "transport": str(transport)}
    except Exception as exc:
        return {"ok": False, "error": str(exc).strip() or type(exc).__name__}


def _check_workers() -> dict:
    try:
        alive = workers_alive()
    except Exception as exc:
        return {"ok": False, "error": str(exc).strip()}
    return {
        "ok": bool(alive),
        "alive": [{"name": w.name, "queues": w.queues.split(","), "last_seen": w.last_seen.isoformat()} for w in alive],
    }


def health_report() -> dict:
    report = {"database": _check_database(), "broker": _check_broker()}
    report["workers"] = _check_workers() if report["database"]["ok"] else {"ok": False, "error": "no database"}
    report["ok"] = all(part["ok"] for part in report.values())
    return report


def broker_down() -> bool:
    return not _check_broker(timeout_s=BANNER_BROKER_TIMEOUT_S)["ok"]


def broker_context(request: HttpRequest) -> dict:
    """Template context: ``broker_down``, a callable the template engine calls only where a
    template uses it (the admin's banner), so no other page, and no reading page above all,
    ever waits on the broker."""
    return {"broker_down": broker_down}
