"""The Admission page (would-be denials and denials) and `manage.py createteam --namespace`."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from inventory.models import AdmissionRecord, TeamNamespace
from tests.factories import make_team, make_user

pytestmark = pytest.mark.django_db


def record(**fields) -> AdmissionRecord:
    fields.setdefault("resource", "pods")
    fields.setdefault("namespace", "ml")
    fields.setdefault("name", "trainer-0")
    fields.setdefault("codes", "DEVICE_RESERVED")
    fields.setdefault("enforced", False)
    fields.setdefault("operation", "CREATE")
    fields.setdefault("message", "NICPortal: pod ml/trainer-0\nDEVICE_RESERVED [...]: <b>x</b>")
    return AdmissionRecord.objects.create(**fields)


def test_the_page_requires_a_login(client):
    response = client.get("/admission/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_it_lists_would_be_denials_and_denials_escaped(client, settings):
    settings.WEBHOOK_MODE = "warn"
    client.force_login(make_user())
    would = record()
    denied = record(name="seed", resource="network-attachment-definitions", enforced=True)
    page = client.get("/admission/").content.decode()
    assert (
        f'data-testid="record-{would.pk}"' in page and f'data-testid="record-{denied.pk}"' in page
    )
    assert "would deny" in page and "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    assert '<strong data-testid="webhook-mode">warn</strong>' in page
    only_warn = client.get("/admission/?mode=warn").content.decode()
    assert f"record-{would.pk}" in only_warn and f"record-{denied.pk}" not in only_warn
    everything = client.get("/admission/?mode=<script>&page=x").content.decode()
    assert f"record-{would.pk}" in everything and "<script>" not in everything


def test_createteam_gives_a_team_namespaces_idempotently():
    out = StringIO()
    call_command("createteam", "ml", "--namespace", "ml", "--namespace", "ml-*", stdout=out)
    call_command("createteam", "ml", "--namespace", "ml", stdout=out)
    assert sorted(TeamNamespace.objects.values_list("pattern", flat=True)) == ["ml", "ml-*"]
    assert "namespaces: ml, ml-*" in out.getvalue()
    make_team("x")
    with pytest.raises(CommandError, match="not a namespace name or pattern: Bad/NS"):
        call_command("createteam", "x", "--namespace", "Bad/NS")
