"""The shared bearer token, read from a file (a mounted Secret) and re-read when it changes."""

from __future__ import annotations

import hmac
import os
import threading


class TokenError(Exception):
    pass


class TokenFile:
    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._token = b""
        self.current()  # fail at start-up, not on the first request

    def current(self) -> bytes:
        """The token; re-read when the file changed (Secret rotation). Raises TokenError."""
        try:
            stat = os.stat(self.path)
        except OSError as error:
            raise TokenError(f"cannot read token file {self.path}: {error.strerror}") from None
        stamp = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        with self._lock:
            if stamp != self._stamp:
                try:
                    with open(self.path, "rb") as handle:
                        token = handle.read().strip()
                except OSError as error:
                    raise TokenError(f"cannot read token file {self.path}: {error}") from None
                if not token:
                    raise TokenError(f"token file {self.path} is empty")
                self._token, self._stamp = token, stamp
            return self._token

    def matches(self, authorization: str | None) -> bool:
        """Constant-time check of an ``Authorization: Bearer <token>`` header."""
        try:
            expected = b"Bearer " + self.current()
        except TokenError:
            return False
        offered = (authorization or "").encode("utf-8", errors="replace")
        return hmac.compare_digest(offered, expected)
