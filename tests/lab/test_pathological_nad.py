"""A NAD whose spec.config nests `[` 3,000 deep, in the lab's cluster among ordinary NADs: the
sweep (`manage.py poll`) records it as one finding on that NAD, lints the others, exits 0, and
every NAD page and the lint page answer 200."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from inventory.models import NetworkAttachment
from tests.factories import make_team, make_user

pytestmark = [pytest.mark.lab, pytest.mark.django_db(transaction=True)]

DEEP_CONFIG = "[" * 3000 + "]" * 3000


@pytest.fixture
def cluster_with_a_deep_nad(lab_portal):
    lab = lab_portal
    lab.create_nad("default", "deep", DEEP_CONFIG)
    lab.create_nad(
        "other",
        "deep-object",
        '{"cniVersion": "0.3.1", "type": "host-device", "ipam": ' + '{"a":' * 3000 + "1"
        + "}" * 3001,
    )  # fmt: skip
    lab.create_nad(
        "default",
        "on-eth0",
        {"cniVersion": "0.3.1", "name": "on-eth0", "type": "host-device", "device": "eth0"},
    )
    return lab


def codes(namespace: str, name: str) -> list[str]:
    row = NetworkAttachment.objects.get(namespace=namespace, name=name)
    return [finding["code"] for finding in row.findings]


def test_poll_lints_past_a_pathological_nad_and_exits_0(cluster_with_a_deep_nad, client):
    # call_command raises SystemExit(1) on a failed sweep, and let a lint crash through.
    call_command("poll", "--quiet")

    assert codes("default", "deep") == ["CONFIG_TOO_DEEP"]
    assert codes("other", "deep-object") == ["CONFIG_TOO_DEEP"]
    assert codes("default", "on-eth0")  # linted: eth0 is never free
    assert "CONFIG_TOO_DEEP" not in codes("default", "on-eth0")

    client.force_login(make_user("alice", teams=[make_team("blue")]))
    assert client.get("/nads/").status_code == 200
    for row in NetworkAttachment.objects.filter(name__in=["deep", "deep-object", "on-eth0"]):
        page = client.get(f"/nads/{row.pk}/")
        assert page.status_code == 200, row.name
    assert (
        "CONFIG_TOO_DEEP"
        in client.get(f"/nads/{NetworkAttachment.objects.get(name='deep').pk}/").content.decode()
    )
    assert client.get("/nads/lint/").status_code == 200
    pasted = client.post(
        "/nads/lint/",
        {
            "manifest": "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\n"
            f"metadata:\n  name: deep\nspec:\n  config: '{DEEP_CONFIG}'\n"
        },
    )
    assert pasted.status_code == 200
    assert "CONFIG_TOO_DEEP" in pasted.content.decode()
