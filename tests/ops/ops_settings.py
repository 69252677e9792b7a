"""Settings for tests that run the app in a separate process: the project's settings with only
the operations URLs, so the test does not depend on when nicportal/urls.py includes them."""

from nicportal.settings import *  # noqa: F403

ROOT_URLCONF = "nicportal.urls_ops"
