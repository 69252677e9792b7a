"""The endpoint node agents call when netlink says their node changed.

Authenticated with the node's own key (nodeagent.auth, docs/agent-auth.md), not with a user
credential: the agent signs the method, path, node, a timestamp, a nonce and the body with the
key derived for its node. A signature is good for one request: the timestamp must be within
MAX_CLOCK_SKEW of our clock and each nonce is accepted once (remembered in the cache, which is
Redis shared by every web process in production, or in the database while the cache does not
answer). A hint signed with node A's key can refresh node A only: naming another node is 403 and
changes nothing.

A hint only asks for an earlier poll: it carries no facts, so even a valid hint can at worst
cause one extra poll, and hints are debounced per node.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from kombu.exceptions import OperationalError as BrokerUnavailable

from inventory import tasks
from inventory.clients.agents import AgentKeyring
from inventory.models import AgentNonce, Cluster, Node
from inventory.rules import bounded_json
from inventory.services.cluster_clients import sweep_targets
from nodeagent import auth

log = logging.getLogger(__name__)

MAX_HINT_BYTES = 4096
MAX_HINT_DEPTH = 4
HINT_FIELDS = ("node", "reason")
# How long a nonce is remembered: a signature's timestamp may be MAX_CLOCK_SKEW either side.
NONCE_WINDOW = 2 * auth.MAX_CLOCK_SKEW + 1


def _authenticate(request: HttpRequest) -> tuple[auth.SignedRequest, Cluster]:
    """The verified signature of the request and the cluster whose node key made it, or
    AuthError. Every swept cluster derives its own key for a node name (AgentKeyring.for_cluster):
    the key id the agent sent says which cluster's agent it is, so a hint from cluster A's node
    n1 refreshes A's n1 and never B's."""
    signed = auth.parse_authorization(request.headers.get("Authorization"))
    keys: dict[str, bytes] = {}
    owners: dict[str, Cluster] = {}
    for cluster in sweep_targets():
        keyring = AgentKeyring.for_cluster(cluster)
        for kid, key in keyring.verification_keys(signed.node).items():
            keys[kid] = key
            owners[kid] = cluster
    if not keys:
        raise auth.AuthError("no_key", "NICPORTAL_AGENT_MASTER_KEY is not set")
    kid = auth.verify_request(
        signed,
        keys,
        direction=auth.AGENT_TO_PORTAL,
        method=request.method or "POST",
        path=request.get_full_path(),
        body=request.body,
    )
    # Remembered only once the signature verified, so nobody without a key can fill the store.
    if not _first_use(signed.node, signed.nonce):
        raise auth.AuthError("replayed", "this nonce was already used")
    return signed, owners[kid]


def _first_use(node: str, nonce: str) -> bool:
    """True the first time this node's nonce is seen within the signature's window.

    In the cache: cache.add is atomic on Redis, so two web processes cannot both accept one
    nonce. While the cache does not answer (cache.add gives None: django-redis
    IGNORE_EXCEPTIONS), in the database instead (a unique row, expired rows dropped on the
    way), so that a Redis outage neither refuses every hint as replayed nor accepts one twice.
    Only a hint replayed across the moment Redis goes or comes back could pass once more: an
    extra poll of its node, at worst."""
    added = cache.add(f"agent-hint-nonce:{node}:{nonce}", 1, timeout=NONCE_WINDOW)
    if added is not None:
        return bool(added)
    now = timezone.now()
    AgentNonce.objects.filter(expires_at__lt=now).delete()
    try:
        with transaction.atomic():
            AgentNonce.objects.create(
                node=node, nonce=nonce, expires_at=now + timedelta(seconds=NONCE_WINDOW)
            )
    except IntegrityError:
        return False
    return True


@csrf_exempt
@require_POST
def agent_hint(request: HttpRequest) -> JsonResponse:
    if len(request.body) > MAX_HINT_BYTES:
        # Before the signature is checked: no HMAC over a body that is refused anyway.
        return JsonResponse(
            {"detail": f"The hint is larger than the limit of {MAX_HINT_BYTES} bytes."}, status=400
        )
    try:
        signed, cluster = _authenticate(request)
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
    node = Node.objects.filter(name=node_name, cluster=cluster).first()
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
