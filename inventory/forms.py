"""Forms of the dashboard: the team switcher and the reservation actions. The rules themselves
(who may reserve what, until when) live in inventory.services.reservations; these forms only
turn a browser's POST into typed arguments and show the service's answer next to the field."""

from __future__ import annotations

from datetime import datetime, timedelta

from django import forms
from django.contrib.auth.models import Group
from django.utils import timezone

from inventory.services import tokens

DATETIME_LOCAL = "%Y-%m-%dT%H:%M"
DEFAULT_RESERVATION = timedelta(days=7)


class DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self) -> None:
        super().__init__(format=DATETIME_LOCAL)


def default_expiry() -> datetime:
    return (timezone.localtime() + DEFAULT_RESERVATION).replace(second=0, microsecond=0)


def extension_default(current_end: datetime) -> datetime:
    """What the Extend form offers: another DEFAULT_RESERVATION after the current end (or after
    now, for a reservation about to end), to the minute the input shows. Submitting the form
    unchanged must extend, not answer "must be later than the current end"."""
    start = max(timezone.localtime(current_end), timezone.localtime())
    return (start + DEFAULT_RESERVATION).replace(second=0, microsecond=0) + timedelta(minutes=1)


class TeamSwitchForm(forms.Form):
    team = forms.ModelChoiceField(queryset=Group.objects.none(), empty_label=None)

    def __init__(self, *args, teams=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if teams is not None:
            self.fields["team"].queryset = teams


class ExpiryField(forms.DateTimeField):
    widget = DateTimeLocalInput

    def __init__(self, **kwargs) -> None:
        super().__init__(input_formats=[DATETIME_LOCAL, "iso-8601"], **kwargs)

    def validate(self, value: datetime | None) -> None:
        super().validate(value)
        if value is not None and value <= timezone.now():
            raise forms.ValidationError("Choose a time in the future.")


class ReserveForm(forms.Form):
    purpose = forms.CharField(
        max_length=500,
        widget=forms.TextInput(attrs={"placeholder": "e.g. SR-IOV test for the 5G core"}),
    )
    expires_at = ExpiryField(label="Until", initial=default_expiry)


class ExtendForm(forms.Form):
    # The initial value depends on the reservation: ExtendView gives extension_default().
    expires_at = ExpiryField(label="New end")


class TokenForm(forms.Form):
    note = forms.CharField(
        max_length=tokens.NOTE_MAX_LENGTH,
        required=False,
        label="What is it for?",
        widget=forms.TextInput(attrs={"placeholder": "e.g. CI pipeline, my laptop"}),
    )
    expires_in_days = forms.TypedChoiceField(
        label="Expires after",
        coerce=int,
        choices=[(days, f"{days} day{'s' if days > 1 else ''}") for days in tokens.DAY_CHOICES],
        initial=tokens.DEFAULT_DAYS,
    )
