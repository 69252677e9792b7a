"""Speeds are shown with their unit."""

import pytest

from inventory.templatetags.nicportal import link_speed


@pytest.mark.parametrize(
    ("mbps", "shown"),
    [
        (10, "10 Mb/s"),
        (100, "100 Mb/s"),
        (1000, "1 Gb/s"),
        (2500, "2.5 Gb/s"),
        (10000, "10 Gb/s"),
        (25000, "25 Gb/s"),
        (100000, "100 Gb/s"),
        (400000, "400 Gb/s"),
        (None, "–"),
        (-1, "–"),
        (0, "–"),
    ],
)
def test_a_speed_is_shown_with_its_unit(mbps, shown):
    assert link_speed(mbps) == shown
