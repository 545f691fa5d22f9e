"""Worker start-up hook of the generator app: remove what raw uploads of ended jobs left behind."""

import logging

from celery.signals import worker_ready

logger = logging.getLogger(__name__)


@worker_ready.connect
def remove_upload_leftovers(sender, **kwargs) -> None:
    from .uploads import uploads_leftovers_remove

    try:
        uploads_leftovers_remove()
    except Exception:  # storage briefly unreachable: the next start tries again; the worker must come up
        logger.exception("Could not remove the leftovers of ended uploads")
