"""Celery app, job planning and chunk execution."""
