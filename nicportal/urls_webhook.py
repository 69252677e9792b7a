"""URLs of the admission webhook server (NICPORTAL_WEBHOOK_SERVER=1): the webhook and its
liveness probe, nothing of the UI or the API. Readiness is liveness here: with the database
down the server still answers every review (as the failure policy says), which is better than
no endpoint at all."""

from django.urls import path

from inventory import health, webhook

urlpatterns = [
    path("validate", webhook.validate, name="admission-validate"),
    path("healthz", health.healthz, name="healthz"),
]
