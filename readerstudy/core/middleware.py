"""The pages' one mapping of application errors: a refused request becomes a message and a
redirect back to the page the user came from (a form's page, a list), or, for a page that was
being opened, that message on a page of its own. Anything else stays a 500."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme

from .errors import ApplicationError


class ApplicationErrorMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        # API views never get here: DRF's exception handler (core/api.py) answers them first.
        if not isinstance(exception, ApplicationError):
            return None
        if request.method == "POST":
            messages.error(request, str(exception))
            back = request.headers.get("referer", "")
            safe = url_has_allowed_host_and_scheme(back, {request.get_host()}, request.is_secure())
            return redirect(back if back and safe else "home")
        return render(request, "core/refused.html", {"message": str(exception)}, status=exception.status)
