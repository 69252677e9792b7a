"""The admission webhook's door: POST an AdmissionReview v1, get one back.

One server serves every cluster: the path says whose API server sent the review (`/validate`
the default cluster, `/clusters/<name>/validate` a registered one). Served by the webhook server
only (nicportal/urls_webhook.py, its own Deployment with TLS from a
Secret), never by the web pods: see docs/WEBHOOK.md for why. Everything else is in
inventory/services/admission.py.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from inventory.services import admission


@csrf_exempt  # the API server authenticates by TLS; there is no browser session here
@require_POST
def validate(request: HttpRequest, cluster: str = "") -> JsonResponse:
    """POST /validate: a review from the default cluster's API server; POST
    /clusters/<name>/validate: from the API server of the registered cluster <name> (each
    cluster's webhook configuration names its own path: docs/WEBHOOK.md)."""
    status, body = admission.review(request.body, cluster=cluster)
    return JsonResponse(body, status=status)
