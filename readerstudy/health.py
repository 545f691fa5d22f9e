"""What /healthz reports: does the database answer, the broker, and at least one worker?"""

from celery import current_app
from django.db import connection

from .workers import workers_alive


def _check_database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return {"ok": True, "vendor": connection.vendor}
    except Exception as exc:
        return {"ok": False, "error": str(exc).strip()}


def _check_broker() -> dict:
    try:
        with current_app.connection_for_write() as broker:
            broker.ensure_connection(max_retries=1, interval_start=0, interval_step=0.2, timeout=3)
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
