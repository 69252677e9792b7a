"""Password authentication for the token endpoint only (`curl -u alice POST /api/v1/tokens/`),
so that automation gets a token without a shell on the server. Everywhere else the API takes a
token or a session, never a password.

DRF authenticates before it throttles, so a throttle class would never see a wrong password:
failures are counted here instead, per client address, in the cache (Redis in production, so
every web process shares the count). After FAILURE_LIMIT failures in FAILURE_WINDOW seconds the
address gets 429 until the window has passed, whatever the password.
"""

from __future__ import annotations

from typing import Any

from django.core.cache import cache
from rest_framework import exceptions
from rest_framework.authentication import BasicAuthentication
from rest_framework.request import Request

FAILURE_LIMIT = 10
FAILURE_WINDOW = 300  # seconds


def _failures_key(request: Request) -> str:
    return f"password-failures:{request.META.get('REMOTE_ADDR', '')}"


class ThrottledBasicAuthentication(BasicAuthentication):
    www_authenticate_realm = "NICPortal API"

    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header.lower().startswith("basic "):
            return None
        key = _failures_key(request)
        if (cache.get(key) or 0) >= FAILURE_LIMIT:
            raise exceptions.Throttled(
                wait=FAILURE_WINDOW, detail="Too many wrong passwords from this address."
            )
        try:
            return super().authenticate(request)
        except exceptions.AuthenticationFailed:
            # add() starts the window on the first failure; incr() keeps its expiry.
            if not cache.add(key, 1, timeout=FAILURE_WINDOW):
                try:
                    cache.incr(key)
                except ValueError:  # expired between add() and incr()
                    cache.add(key, 1, timeout=FAILURE_WINDOW)
            raise
