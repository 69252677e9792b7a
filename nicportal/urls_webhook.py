"""URLs of the admission webhook server (NICPORTAL_WEBHOOK_SERVER=1): the webhook (for the
default cluster, and per registered cluster under /clusters/<name>/) and its liveness probe,
nothing of the UI or the API. Readiness is liveness here: with the database down the server
still answers every review (as the failure policy says), which is better than no endpoint at
all. Its 404 and 500 are plain JSON: the dashboard's error pages link to pages this server does
not serve."""

from django.http import HttpRequest, JsonResponse
from django.urls import path

from inventory import health, webhook

urlpatterns = [
    path("validate", webhook.validate, name="admission-validate"),
    # The same webhook for a registered cluster's API server: its own inventory is checked.
    path("clusters/<str:cluster>/validate", webhook.validate, name="admission-validate-cluster"),
    path("healthz", health.healthz, name="healthz"),
]


def not_found(request: HttpRequest, exception: Exception) -> JsonResponse:
    return JsonResponse(
        {
            "error": "not found: this server serves POST /validate and "
            "/clusters/<name>/validate only"
        },
        status=404,
    )


def server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"error": "internal error"}, status=500)


handler404 = not_found
handler500 = server_error
