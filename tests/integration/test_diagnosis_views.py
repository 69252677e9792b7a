"""The diagnosis pages and the REST endpoint through Django's test client: login, the pod picker's
order and filter, the diagnosis page, stranded NICs, escaping. The diagnosis itself reads the
cluster; here `services.diagnosis.diagnose` is replaced by a canned verdict (the lab tests run
the real one), everything else is the real database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from inventory.choices import AttachmentStatus, OwnershipState
from inventory.rules import diagnosis as rules
from inventory.services import diagnosis
from tests.factories import make_cluster, make_interface, make_node, make_pod_attachment, make_user

pytestmark = pytest.mark.django_db

HOSTILE = "<script>alert(1)</script>"


@pytest.fixture
def logged_in(client):
    client.force_login(make_user("alice"))
    return client


@pytest.fixture
def node(settings):
    return make_node(make_cluster(name=settings.CLUSTER_NAME), name="worker-1")


def canned(**fields) -> rules.Diagnosis:
    values = {
        "code": "EEXIST_COLLISION",
        "severity": rules.ERROR,
        "title": '"device": "eth0" collides with the pod\'s own eth0 (file exists)',
        "explanation": "host-device moves the link into the pod under its host name eth0.",
        "namespace": "default",
        "pod": "web-0",
        "node": "worker-1",
        "attachment": "default/eth0-nic@net1",
        "evidence": (rules.Evidence("Event", "failed to move link file exists"),),
        "fix": rules.Fix(
            "Select the device by hwaddr.", nad_yaml="kind: NetworkAttachmentDefinition"
        ),
    }
    values.update(fields)
    return rules.Diagnosis(**values)


@pytest.mark.parametrize(
    "url",
    [
        "/pods/",
        "/pods/default/web-0/diagnosis/",
        "/stranded/",
        "/api/v1/pods/default/web-0/diagnosis/",
    ],
)
def test_it_requires_a_login(client, url):
    response = client.get(url)
    assert response.status_code in (302, 401, 403)
    if response.status_code == 302:
        assert "/accounts/login/" in response["Location"]


def test_the_picker_lists_failing_pods_first_then_pending_then_attached(logged_in, node):
    nic = make_interface(node)
    make_pod_attachment(nic, namespace="default", pod_name="a-healthy")
    make_pod_attachment(nic, namespace="default", pod_name="b-pending", status="pending")
    make_pod_attachment(
        nic,
        namespace="default",
        pod_name="c-failed",
        status=AttachmentStatus.FAILED,
        error="failed to move link file exists",
    )
    make_pod_attachment(nic, namespace="default", pod_name="d-gone", status=AttachmentStatus.GONE)

    response = logged_in.get(reverse("inventory:pod-diagnosis-list"))

    assert response.status_code == 200
    pods = [p.name for p in response.context["pods"]]
    assert pods == ["c-failed", "b-pending", "a-healthy"]
    assert response.context["failing"] == 2
    body = response.content.decode()
    assert body.index("c-failed") < body.index("b-pending") < body.index("a-healthy")
    assert "failed to move link file exists" in body
    assert reverse("inventory:pod-diagnosis", args=["default", "c-failed"]) in body


def test_the_picker_filters_by_name_and_namespace(logged_in, node):
    nic = make_interface(node)
    make_pod_attachment(nic, namespace="ml", pod_name="trainer-0")
    make_pod_attachment(nic, namespace="web", pod_name="frontend")

    by_name = logged_in.get(reverse("inventory:pod-diagnosis-list"), {"q": "train"})
    by_key = logged_in.get(reverse("inventory:pod-diagnosis-list"), {"q": "web/front"})

    assert [p.name for p in by_name.context["pods"]] == ["trainer-0"]
    assert [p.name for p in by_key.context["pods"]] == ["frontend"]


def test_an_htmx_filter_gets_only_the_results_fragment(logged_in, node):
    make_pod_attachment(make_interface(node), pod_name="trainer-0")

    response = logged_in.get(
        reverse("inventory:pod-diagnosis-list"), {"q": "trainer"}, headers={"HX-Request": "true"}
    )

    body = response.content.decode()
    assert 'id="live"' in body and "trainer-0" in body
    assert "<html" not in body


def test_the_diagnosis_page_shows_verdict_evidence_and_fix(logged_in, monkeypatch):
    calls = []

    def fake(**kwargs):
        calls.append(kwargs)
        return canned()

    monkeypatch.setattr(diagnosis, "diagnose", fake)

    response = logged_in.get(reverse("inventory:pod-diagnosis", args=["default", "web-0"]))

    assert response.status_code == 200
    assert calls[0]["namespace"] == "default" and calls[0]["name"] == "web-0"
    body = response.content.decode()
    assert "EEXIST_COLLISION" in body
    assert "failed to move link file exists" in body
    assert "Select the device by hwaddr." in body
    assert "kind: NetworkAttachmentDefinition" in body


def test_the_diagnosis_page_escapes_everything_from_the_cluster(logged_in, monkeypatch):
    monkeypatch.setattr(
        diagnosis,
        "diagnose",
        lambda **kwargs: canned(
            title=HOSTILE,
            explanation=HOSTILE,
            evidence=(rules.Evidence(HOSTILE, HOSTILE),),
            fix=rules.Fix(HOSTILE, nad_yaml=HOSTILE, commands=(HOSTILE,)),
        ),
    )

    body = logged_in.get("/pods/default/web-0/diagnosis/").content.decode()

    assert HOSTILE not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_a_pod_that_does_not_exist_gets_a_verdict_not_an_error(logged_in, monkeypatch):
    facts = rules.DiagnosisFacts(rules.PodFacts("default", "ghost", found=False))
    monkeypatch.setattr(diagnosis, "diagnose", lambda **kwargs: rules.diagnose(facts))

    response = logged_in.get("/pods/default/ghost/diagnosis/")

    assert response.status_code == 200
    assert "Pod default/ghost does not exist" in response.content.decode()


def test_the_api_serializes_the_diagnosis(logged_in, monkeypatch):
    monkeypatch.setattr(diagnosis, "diagnose", lambda **kwargs: canned())

    response = logged_in.get("/api/v1/pods/default/web-0/diagnosis/")

    assert response.status_code == 200
    data = response.json()
    assert data["code"] == "EEXIST_COLLISION"
    assert data["evidence"] == [{"label": "Event", "value": "failed to move link file exists"}]
    assert data["fix"]["nad_yaml"] == "kind: NetworkAttachmentDefinition"
    assert data["attachment"] == "default/eth0-nic@net1"


def test_stranded_lists_missing_and_orphan_nics_with_commands_oldest_first(logged_in, node):
    long_ago = timezone.now() - timedelta(hours=5)
    make_interface(node, name="eth2", state=OwnershipState.FREE)
    missing = make_interface(
        node,
        name="eth3",
        mac="02:aa:bb:cc:dd:03",
        present=False,
        state=OwnershipState.MISSING,
        reason="gone from the host and no pod claims it",
        state_changed_at=timezone.now() - timedelta(minutes=3),
    )
    orphan = make_interface(
        node,
        name="net1",
        alias="eth4",
        orphan=True,
        state=OwnershipState.FREE,
        reason="orphan returned from a dead pod as net1",
        state_changed_at=long_ago,
    )

    response = logged_in.get(reverse("inventory:stranded"))

    nics = response.context["nics"]
    assert [n.interface_id for n in nics] == [orphan.pk, missing.pk]
    assert nics[0].kind == "orphan" and nics[0].original_name == "eth4"
    assert nics[0].stranded_seconds >= 5 * 3600
    body = response.content.decode()
    assert "ip link set dev net1 down" in body
    assert "ip link set dev net1 name eth4" in body
    assert "02:aa:bb:cc:dd:03" in body
    assert "5\xa0hours" in body  # timesince, Django's non-breaking space
    assert "eth2" not in [n.name for n in nics]


def test_stranded_escapes_names_from_the_agent(logged_in, node):
    make_interface(
        node, name="net1", alias=HOSTILE, orphan=True, state=OwnershipState.FREE, reason=HOSTILE
    )

    body = logged_in.get(reverse("inventory:stranded")).content.decode()

    assert HOSTILE not in body
    assert "&lt;script&gt;" in body
