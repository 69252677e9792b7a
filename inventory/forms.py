"""Forms of the dashboard: the team switcher and the reservation actions. The rules themselves
(who may reserve what, until when) live in inventory.services.reservations; these forms only
turn a browser's POST into typed arguments and show the service's answer next to the field."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.contrib.auth.models import Group
from django.utils import timezone

from inventory import bounded_json

DATETIME_LOCAL = "%Y-%m-%dT%H:%M"
DEFAULT_RESERVATION = timedelta(days=7)


class DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self) -> None:
        super().__init__(format=DATETIME_LOCAL)


def default_expiry() -> datetime:
    return (timezone.localtime() + DEFAULT_RESERVATION).replace(second=0, microsecond=0)


def refuse_control_characters(value: str) -> None:
    """Control characters (tab and line breaks aside) and lone surrogates have no place in
    anything typed into the portal. NUL is left to Django's own validator of every CharField."""
    problem = bounded_json.text_problem(value.replace("\x00", ""))
    if problem:
        raise forms.ValidationError(problem, code="control_characters")


class PortalForm(forms.Form):
    """A form whose text fields refuse control characters with a form error."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            if isinstance(field, forms.CharField):
                field.validators.append(refuse_control_characters)


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


class ReserveForm(PortalForm):
    purpose = forms.CharField(
        max_length=500,
        widget=forms.TextInput(attrs={"placeholder": "e.g. SR-IOV test for the 5G core"}),
    )
    expires_at = ExpiryField(label="Until", initial=default_expiry)


class ExtendForm(PortalForm):
    expires_at = ExpiryField(label="New end", initial=default_expiry)
