"""The endpoint node agents call when netlink says their node changed.

Authenticated with the agent token (the same shared secret the portal uses to read the agents),
not with a user credential. A hint only asks for an earlier poll: it carries no facts, so a forged
hint can at worst cause one extra poll, and hints are debounced per node.
"""

from __future__ import annotations

import hmac
import logging

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from kombu.exceptions import OperationalError as BrokerUnavailable

from inventory import tasks
from inventory.models import Node
from inventory.rules import bounded_json

log = logging.getLogger(__name__)

MAX_HINT_BYTES = 4096
MAX_HINT_DEPTH = 4
HINT_FIELDS = ("node", "reason")


def _token_ok(request: HttpRequest) -> bool:
    expected = settings.AGENT_TOKEN
    header = request.headers.get("Authorization", "")
    if not expected or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer ") :].encode(), expected.encode())


@csrf_exempt
@require_POST
def agent_hint(request: HttpRequest) -> JsonResponse:
    if not _token_ok(request):
        return JsonResponse({"detail": "agent token missing or rejected"}, status=401)
    try:
        body = bounded_json.loads(
            request.body or b"{}", max_bytes=MAX_HINT_BYTES, max_depth=MAX_HINT_DEPTH
        )
    except bounded_json.JsonRefused as refused:
        if refused.field:
            return JsonResponse({refused.field: [refused.message]}, status=400)
        return JsonResponse({"detail": refused.message}, status=400)
    unknown = sorted(set(body) - set(HINT_FIELDS)) if isinstance(body, dict) else []
    if unknown:
        known = ", ".join(HINT_FIELDS)
        return JsonResponse(
            {name: [f"Unknown field. Known fields: {known}."] for name in unknown}, status=400
        )
    node_name = body.get("node") if isinstance(body, dict) else None
    if not isinstance(node_name, str) or not node_name:
        return JsonResponse({"node": ["a node name (string) is required"]}, status=400)
    node = Node.objects.filter(name=node_name, cluster__name=settings.CLUSTER_NAME).first()
    if node is None:
        log.info("hint for unknown node=%r ignored", node_name[:100])
        return JsonResponse({"node": [f"unknown node {node_name[:100]!r}"]}, status=404)

    try:
        queued = tasks.request_refresh(node_id=node.pk, reason=str(body.get("reason", "hint"))[:50])
    except BrokerUnavailable as exc:
        # The agent retries a 5xx with backoff; the next sweep polls the node anyway.
        log.warning("hint for node=%s not queued: task queue unavailable: %s", node.name, exc)
        response = JsonResponse(
            {"detail": "The task queue is unavailable; the refresh was not queued."}, status=503
        )
        response["Retry-After"] = str(settings.RETRY_AFTER)
        return response
    return JsonResponse({"node": node.name, "queued": queued}, status=202)
