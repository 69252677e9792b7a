"""The endpoint node agents call when netlink says their node changed.

Authenticated with the node's own key (nodeagent.auth, docs/agent-auth.md), not with a user
credential: the agent signs the method, path, node, a timestamp, a nonce and the body with the
key derived for its node. A signature is good for one request: the timestamp must be within
MAX_CLOCK_SKEW of our clock and each nonce is accepted once (remembered in the cache, which is
Redis shared by every web process in production). A hint signed with node A's key can refresh
node A only: naming another node is 403 and changes nothing.

A hint only asks for an earlier poll: it carries no facts, so even a valid hint can at worst
cause one extra poll, and hints are debounced per node.
"""

from __future__ import annotations

import json
import logging

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from inventory import tasks
from inventory.clients.agents import AgentKeyring
from inventory.models import Node
from nodeagent import auth

log = logging.getLogger(__name__)

MAX_HINT_BYTES = 4096


def _authenticate(request: HttpRequest) -> auth.SignedRequest:
    """The verified signature of the request, or AuthError."""
    keyring = AgentKeyring.from_settings()
    if not keyring:
        raise auth.AuthError("no_key", "NICPORTAL_AGENT_MASTER_KEY is not set")
    signed = auth.parse_authorization(request.headers.get("Authorization"))
    auth.verify_request(
        signed,
        keyring.verification_keys(signed.node),
        direction=auth.AGENT_TO_PORTAL,
        method=request.method or "POST",
        path=request.get_full_path(),
        body=request.body,
    )
    # Remembered only once the signature verified, so nobody without a key can fill the cache.
    # cache.add is atomic on Redis: two web processes cannot both accept one nonce.
    remembered = cache.add(
        f"agent-hint-nonce:{signed.node}:{signed.nonce}", 1, timeout=2 * auth.MAX_CLOCK_SKEW + 1
    )
    if not remembered:
        raise auth.AuthError("replayed", "this nonce was already used")
    return signed


@csrf_exempt
@require_POST
def agent_hint(request: HttpRequest) -> JsonResponse:
    if len(request.body) > MAX_HINT_BYTES:
        return JsonResponse({"detail": f"hint larger than {MAX_HINT_BYTES} bytes"}, status=400)
    try:
        signed = _authenticate(request)
    except auth.AuthError as error:
        log.warning(
            "agent hint refused: reason=%s client=%s %s",
            error.code,
            request.META.get("REMOTE_ADDR", ""),
            error,
        )
        response = JsonResponse(
            {"detail": "agent signature missing or rejected", "reason": error.code}, status=401
        )
        response["WWW-Authenticate"] = auth.SCHEME
        return response
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return JsonResponse({"node": ["body is not JSON"]}, status=400)
    node_name = body.get("node") if isinstance(body, dict) else None
    if not isinstance(node_name, str) or not node_name:
        return JsonResponse({"node": ["a node name (string) is required"]}, status=400)
    if node_name != signed.node:
        log.warning(
            "agent hint refused: the key of node=%s cannot refresh node=%r",
            signed.node,
            node_name[:100],
        )
        return JsonResponse(
            {"node": [f"a hint signed with node {signed.node}'s key can refresh that node only"]},
            status=403,
        )
    node = Node.objects.filter(name=node_name, cluster__name=settings.CLUSTER_NAME).first()
    if node is None:
        log.info("hint for unknown node=%r ignored", node_name[:100])
        return JsonResponse({"node": [f"unknown node {node_name[:100]!r}"]}, status=404)

    queued = tasks.request_refresh(node_id=node.pk, reason=str(body.get("reason", "hint"))[:50])
    return JsonResponse({"node": node.name, "queued": queued}, status=202)
