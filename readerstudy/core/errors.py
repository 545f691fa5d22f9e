"""The platform's application error: a request the rules refuse, as opposed to a bug.

Services raise ``ApplicationError`` (or a subclass named for its domain: ``SessionError``,
``EvidenceFrozen``, ...) with a message meant for the user. It is mapped once for pages
(``readerstudy.core.middleware.ApplicationErrorMiddleware``: a message, back to where the user
came from) and once for the API (``readerstudy.core.api.exception_handler``: 400, or the
subclass's ``status``). Views never catch ``ValueError``: anything else is a programming error,
stays a 500 and is logged.
"""


class ApplicationError(ValueError):
    """A request the rules refuse; its message is shown to the user as it is. A ValueError, so
    code that checks arguments the plain way still recognises it."""

    status = 400


class EvidenceFrozen(ApplicationError):
    """An attempt to change or delete data that has become evidence of a study."""

    status = 409  # the request is well formed; the data's state forbids it
