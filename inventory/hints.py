"""The endpoint node agents call when netlink says their node changed.

Authenticated with the agent token (the same shared secret the portal uses to read the agents),
not with a user credential. A hint only asks for an earlier poll: it carries no facts, so a forged
hint can at worst cause one extra poll, and hints are debounced per node.
"""

from __future__ import annotations

import hmac
import json
import logging

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from inventory import tasks
from inventory.models import Node

log = logging.getLogger(__name__)

MAX_HINT_BYTES = 4096


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
    if len(request.body) > MAX_HINT_BYTES:
        return JsonResponse({"detail": f"hint larger than {MAX_HINT_BYTES} bytes"}, status=400)
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return JsonResponse({"node": ["body is not JSON"]}, status=400)
    node_name = body.get("node") if isinstance(body, dict) else None
    if not isinstance(node_name, str) or not node_name:
        return JsonResponse({"node": ["a node name (string) is required"]}, status=400)
    node = Node.objects.filter(name=node_name, cluster__name=settings.CLUSTER_NAME).first()
    if node is None:
        log.info("hint for unknown node=%r ignored", node_name[:100])
        return JsonResponse({"node": [f"unknown node {node_name[:100]!r}"]}, status=404)

    queued = tasks.request_refresh(node_id=node.pk, reason=str(body.get("reason", "hint"))[:50])
    return JsonResponse({"node": node.name, "queued": queued}, status=202)
