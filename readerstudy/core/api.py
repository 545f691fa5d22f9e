"""The API's one mapping of application errors: ``ApplicationError`` → its status (400, or 409
for a conflict with stored evidence) with ``{"detail": message}``; DRF's own errors as DRF
renders them; anything else is a programming error and stays a 500."""

from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import ApplicationError


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, ApplicationError):
        return Response({"detail": str(exc)}, status=exc.status)
    return drf_exception_handler(exc, context)
