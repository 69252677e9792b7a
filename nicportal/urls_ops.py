"""Operations endpoints (liveness, readiness, Prometheus), included at the root of the site by
nicportal/urls.py. Kept apart so that probes and scrapers never depend on the app's URLconf."""

from django.urls import path

from inventory import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
]
