"""API tokens people manage themselves: create (shown once, stored hashed by knox), list,
revoke. Shared by the token page, the API (`/api/v1/tokens/`) and `manage.py createtoken`.

Every token expires: knox refuses it (and deletes it) once `expiry` has passed, so a token
forgotten in a script stops working by itself. The lifetime is chosen per token, at most
MAX_DAYS; listing shows only tokens still valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from knox.models import AuthToken

from inventory.models import TokenNote

DEFAULT_DAYS = 30
MAX_DAYS = 365
# The lifetimes the token page offers (the API and the command take any 1..MAX_DAYS).
DAY_CHOICES = (1, 7, 30, 90, 365)
NOTE_MAX_LENGTH = TokenNote._meta.get_field("text").max_length


@dataclass(frozen=True)
class NewToken:
    token: str  # the secret itself: shown once, never stored
    token_key: str  # its first characters, which name it in lists
    note: str
    created: datetime
    expiry: datetime
    user: str


def create(*, user: Any, note: str = "", expires_in_days: int = DEFAULT_DAYS) -> NewToken:
    """A new token for `user`. Raises ValidationError naming `note` or `expires_in_days`."""
    note = (note or "").strip()
    errors: dict[str, list[str]] = {}
    if len(note) > NOTE_MAX_LENGTH:
        errors["note"] = [f"At most {NOTE_MAX_LENGTH} characters."]
    if (
        isinstance(expires_in_days, bool)
        or not isinstance(expires_in_days, int)
        or not 1 <= expires_in_days <= MAX_DAYS
    ):
        errors["expires_in_days"] = [f"A whole number of days from 1 to {MAX_DAYS}."]
    if not getattr(user, "is_active", False):
        errors["user"] = ["Inactive users cannot have tokens."]
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        instance, token = AuthToken.objects.create(
            user=user, expiry=timedelta(days=expires_in_days)
        )
        TokenNote.objects.create(token=instance, text=note)
    return NewToken(
        token=token,
        token_key=instance.token_key,
        note=note,
        created=instance.created,
        expiry=instance.expiry,
        user=user.get_username(),
    )


def valid_tokens(user: Any) -> QuerySet[AuthToken]:
    """The user's tokens that still authenticate, newest first, with their notes."""
    now = timezone.now()
    return (
        AuthToken.objects.filter(user=user)
        .filter(Q(expiry__isnull=True) | Q(expiry__gt=now))
        .select_related("note")
        .order_by("-created", "token_key")
    )


def note_of(token: AuthToken) -> str:
    try:
        return token.note.text
    except ObjectDoesNotExist:  # made before notes existed, or by knox directly
        return ""


def revoke(*, user: Any, token_key: str) -> int:
    """Delete the user's token(s) named by `token_key`. Raises ObjectDoesNotExist when the user
    has none by that key (another user's token is not theirs to revoke)."""
    deleted, _ = AuthToken.objects.filter(user=user, token_key=token_key).delete()
    if not deleted:
        raise AuthToken.DoesNotExist(f"You have no token {token_key}.")
    return deleted
