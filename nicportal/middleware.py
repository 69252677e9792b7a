"""Cross-cutting request guards: what no view should have to think about.

- DatabaseUnavailableMiddleware: a database that is down, restarting or refusing connections is
  a 503 with Retry-After (JSON for the API, plain text for /metrics, a short page for people),
  never a 500. Django's CONN_HEALTH_CHECKS (settings) replaces a connection broken by a restart
  before its first use, so after the restart no request pays for the old connection.
- ControlCharactersMiddleware: NUL and control characters in the path or in a query parameter are
  a 400 naming the parameter. PostgreSQL refuses NUL in text ("A string literal cannot contain
  NUL"), so such a value reaching a filter was a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

from inventory.rules import bounded_json

log = logging.getLogger(__name__)

Handler = Callable[[HttpRequest], HttpResponse]


def wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get(
        "Accept", ""
    )


class DatabaseUnavailableMiddleware:
    """OperationalError and InterfaceError are what Django raises when the server cannot be
    reached, the connection broke, or a lock/serialization timeout ended the statement: all
    transient, all worth a retry."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        log.warning(
            "database unavailable path=%s error=%s",
            request.path,
            " ".join(str(exception).split())[:300],
        )
        return database_unavailable(request)


def database_unavailable(request: HttpRequest) -> HttpResponse:
    detail = "The database is unavailable; retry shortly."
    if wants_json(request):
        response: HttpResponse = JsonResponse({"detail": detail}, status=503)
    elif request.path.startswith("/metrics"):
        response = HttpResponse(detail + "\n", status=503, content_type="text/plain")
    else:
        # No request context: the context processors would ask the database for the user.
        response = HttpResponse(render_to_string("503.html", {"detail": detail}), status=503)
    response["Retry-After"] = str(settings.RETRY_AFTER)
    response["Cache-Control"] = "no-store"
    return response


class ControlCharactersMiddleware:
    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        refused = self._refused(request)
        if refused is not None:
            field, problem = refused
            if wants_json(request):
                return JsonResponse({field: [problem]}, status=400)
            body = render_to_string("400.html", {"field": field, "problem": problem})
            return HttpResponse(body, status=400)
        return self.get_response(request)

    @staticmethod
    def _refused(request: HttpRequest) -> tuple[str, str] | None:
        problem = bounded_json.text_problem(request.path)
        if problem:
            return "path", problem
        for name, values in request.GET.lists():
            problem = bounded_json.text_problem(name)
            if problem:
                return "query", f"A parameter name is refused: {problem}"
            for value in values:
                problem = bounded_json.text_problem(value)
                if problem:
                    return name, problem
        return None
