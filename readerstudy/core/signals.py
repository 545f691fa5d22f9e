"""Worker start-up and shutdown hooks: start beating, and rescue jobs of dead workers."""

import logging

from celery.signals import worker_ready, worker_shutdown

logger = logging.getLogger(__name__)
_heartbeat = None


@worker_ready.connect
def on_worker_ready(sender, **kwargs) -> None:
    from .jobs import jobs_requeue_lapsed
    from .workers import WorkerHeartbeatThread

    global _heartbeat
    queues = ",".join(sorted(sender.app.amqp.queues.consume_from.keys()))
    _heartbeat = WorkerHeartbeatThread(name=sender.hostname, queues=queues)
    _heartbeat.start()
    # A job whose worker was killed would otherwise wait for the periodic check.
    requeued = jobs_requeue_lapsed()
    logger.info("Worker %s ready on queues %s; re-queued %d lapsed job(s)", sender.hostname, queues, len(requeued))


@worker_shutdown.connect
def on_worker_shutdown(**kwargs) -> None:
    if _heartbeat is not None:
        _heartbeat.stop()
