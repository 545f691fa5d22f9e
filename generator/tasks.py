"""Celery tasks of the generator app; GPU tasks are routed by name (training_*, bank_fill_*)."""
