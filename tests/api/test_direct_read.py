"""The read serializers' direct path (api/fields.py DirectReadMixin) answers exactly what DRF's
own `Serializer.to_representation` answers for the same rows: every field, nulls, relations
(a primary key, not the related row), properties, date-times in the request's time zone,
annotations and a selection of fields."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from inventory.api import serializers as s
from inventory.api.fields import DirectReadMixin
from inventory.models import HistoryEntry, Interface, Node, Reservation
from inventory.read import pages
from tests.factories import (
    make_history,
    make_interface,
    make_node,
    make_reservation,
    make_team,
)

pytestmark = pytest.mark.django_db


def both_ways(serializer_class, rows, query: str = ""):
    """(DRF's answer, the direct answer) for these rows, under a GET with this query string."""
    request = Request(APIRequestFactory().get(f"/api/v1/x/?{query}"))
    drf = serializer_class(context={"request": request})
    direct = serializer_class(context={"request": request})
    return (
        [serializers.Serializer.to_representation(drf, row) for row in rows],
        [direct.to_representation(row) for row in rows],
    )


@pytest.fixture
def fleet(db):
    node = make_node(name="node-a", labels={"zone": "a"})
    pf = make_interface(node, name="ens1f0", pci_address="0000:3b:00.0", sriov_total_vfs=8)
    vf = make_interface(
        node,
        name="ens1f0v1",
        pci_address="0000:3b:02.1",
        pf="ens1f0",
        pf_pci_address=pf.pci_address,
    )
    bare = make_interface(node, name="eth9", speed_mbps=None, driver="", mac="")
    team = make_team("blue")
    make_reservation(pf, team, expires_at=timezone.now() + timedelta(hours=5))
    released = make_reservation(vf, team)
    released.released_at = timezone.now()
    released.save()
    make_history(pf, message="reserved by blue")
    return [pf, vf, bare]


def test_every_serializer_that_reads_directly_is_covered():
    direct = {
        cls.__name__
        for cls in vars(s).values()
        if isinstance(cls, type) and issubclass(cls, DirectReadMixin) and cls is not DirectReadMixin
    }
    assert direct == {
        "NodeSerializer",
        "InterfaceSerializer",
        "ReservationSerializer",
        "NetworkAttachmentSerializer",
        "PodAttachmentSerializer",
        "HistoryEntrySerializer",
    }


@pytest.mark.parametrize("query", ["", "fields=id,cluster,reserved_until,sriov_role", "brief=true"])
def test_interfaces_as_drf_answers_them(fleet, query):
    rows = list(pages.with_active_reservation(Interface.objects.order_by("id")))
    drf, direct = both_ways(s.InterfaceSerializer, rows, query)
    assert direct == drf
    by_name = {row["name"]: row for row in direct} if "name" in direct[0] else None
    if query == "":
        assert by_name["ens1f0"]["reserved_team"] == "blue"
        assert by_name["ens1f0"]["cluster"] == fleet[0].node.cluster.name
        assert by_name["ens1f0v1"]["sriov_role"] == "vf"  # a property
        assert by_name["ens1f0v1"]["reserved_team"] is None  # released
        assert by_name["eth9"]["speed_mbps"] is None


@override_settings(TIME_ZONE="Asia/Kolkata")
def test_date_times_in_the_request_time_zone(fleet):
    rows = list(pages.with_active_reservation(Interface.objects.order_by("id")))
    drf, direct = both_ways(s.InterfaceSerializer, rows)
    assert direct == drf
    assert direct[0]["reserved_until"].endswith("+05:30")


def test_nodes_reservations_and_history_as_drf_answers_them(fleet):
    for serializer_class, rows in (
        (s.NodeSerializer, Node.objects.select_related("cluster").order_by("id")),
        (
            s.ReservationSerializer,
            Reservation.objects.select_related(
                "interface__node", "team", "created_by", "released_by"
            ).order_by("id"),
        ),
        (s.HistoryEntrySerializer, HistoryEntry.objects.order_by("id")),
    ):
        drf, direct = both_ways(serializer_class, list(rows))
        assert drf, serializer_class
        assert direct == drf, serializer_class


def test_a_missing_attribute_is_handled_as_drf_handles_it(fleet):
    """Rows read without the reservation annotations: DRF answers None for the nullable
    annotated fields (allow_null), and so does the direct path."""
    rows = list(Interface.objects.select_related("node__cluster").order_by("id"))
    for row in rows:
        row.cluster_name = row.node.cluster.name
    drf, direct = both_ways(s.InterfaceSerializer, rows)
    assert direct == drf
    assert {row["reserved_team"] for row in direct} == {None}
