"""Errors the workflows raise besides Django's own PermissionDenied and ValidationError.

The front doors map them: the API answers 409 for Conflict, 403 for PermissionDenied and 400 for
ValidationError (with the field names as keys); the UI shows the message next to the form.
"""

from __future__ import annotations


class Conflict(Exception):
    """The request is valid but the resource is not in a state that allows it (the NIC is
    already reserved, is not free, the reservation is already released...).

    `holder` names who is in the way, for the message a person reads: a team name for a
    reservation, the ownership holder for a NIC in use; None when nobody in particular.
    """

    def __init__(self, message: str, *, holder: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.holder = holder

    def __str__(self) -> str:
        return self.message
