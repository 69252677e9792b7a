"""The admission webhook's door: POST an AdmissionReview v1, get one back.

Served by the webhook server only (nicportal/urls_webhook.py, its own Deployment with TLS from a
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
def validate(request: HttpRequest) -> JsonResponse:
    status, body = admission.review(request.body)
    return JsonResponse(body, status=status)
