"""`manage.py showconfig`: the configuration this process runs with, secrets masked.

Meant for an operator comparing what they think they deployed with what the pod actually reads
(`kubectl exec deploy/nicportal-web -- python manage.py showconfig`). Passwords inside URLs,
tokens and the secret key are printed as "****"; an unset secret as "(not set)".
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connections

from nicportal import runenv
from nicportal.env import DEVELOPMENT_SECRET_KEY

MASK = "****"
NOT_SET = "(not set)"
# Query parameters that carry credentials in broker/cache URLs (redis://...?password=...).
_SECRET_PARAMS = {"password", "passwd", "pass", "token", "secret", "key", "sslpassword"}


def mask_url(url: str) -> str:
    """The URL with any password (userinfo or query parameter) replaced by ****."""
    if not url or "://" not in url:
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, has_password, _ = userinfo.partition(":")
        if has_password:
            netloc = f"{user}:{MASK}@{hostport}"
        elif user and not hostport:
            netloc = f"{MASK}@"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_PARAMS for k, _ in pairs):
            query = urlencode(
                [(k, MASK if k.lower() in _SECRET_PARAMS else v) for k, v in pairs], safe="*"
            )
    if netloc == parts.netloc and query == parts.query:
        # Unchanged: keep it verbatim (urlunsplit turns "filesystem://" into "filesystem:").
        return url
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def mask_secret(value: str) -> str:
    return MASK if value else NOT_SET


def collect_config() -> dict[str, Any]:
    """Everything showconfig prints, as plain data (also used by its tests)."""
    db = settings.DATABASES["default"]
    cache = settings.CACHES["default"]
    cache_location = cache.get("LOCATION", "")
    if isinstance(cache_location, (list, tuple)):
        cache_location = ",".join(str(item) for item in cache_location)
    return {
        "production": bool(getattr(settings, "PRODUCTION", False)),
        "debug": bool(settings.DEBUG),
        "secret_key": (
            "(insecure development key)"
            if settings.SECRET_KEY == DEVELOPMENT_SECRET_KEY
            else mask_secret(settings.SECRET_KEY)
        ),
        "allowed_hosts": list(settings.ALLOWED_HOSTS),
        "database": {
            "vendor": connections["default"].vendor,
            "name": str(db.get("NAME", "")),
            "host": db.get("HOST", "") or "",
            "port": str(db.get("PORT", "") or ""),
            "user": db.get("USER", "") or "",
            "password": mask_secret(db.get("PASSWORD", "") or ""),
        },
        "broker_url": mask_url(settings.CELERY_BROKER_URL),
        "cache": {
            "backend": cache["BACKEND"].rsplit(".", 1)[-1],
            "location": mask_url(str(cache_location)),
        },
        "cluster": {
            "name": settings.CLUSTER_NAME,
            "in_cluster": bool(settings.KUBE_IN_CLUSTER),
            "kubeconfig": settings.KUBECONFIG or NOT_SET,
            "context": settings.KUBE_CONTEXT or "(current)",
            "read_by": (
                f"watch ({settings.KUBE_WATCH_SECONDS} s)" if settings.KUBE_WATCH else "listing"
            ),
            "multus_version": settings.MULTUS_VERSION or "(unknown)",
            # Other clusters are in the registry (manage.py cluster list), not the settings.
            "stale_after": settings.CLUSTER_STALE_AFTER,
            "secret_ttl": settings.CLUSTER_SECRET_TTL,
        },
        "poll_interval": settings.POLL_INTERVAL,
        "agent": {
            "namespace": settings.AGENT_NAMESPACE or "(any)",
            "daemonset": settings.AGENT_DAEMONSET,
            "selector": settings.AGENT_LABEL_SELECTOR,
            "port_name": settings.AGENT_PORT_NAME,
            "timeout": settings.AGENT_TIMEOUT,
            "max_bytes": settings.AGENT_MAX_BYTES,
            "stale_after": settings.AGENT_STALE_AFTER,
            "master_key": mask_secret(settings.AGENT_MASTER_KEY),
            "master_key_previous": mask_secret(settings.AGENT_MASTER_KEY_PREVIOUS),
        },
        "metrics_token": mask_secret(getattr(settings, "METRICS_TOKEN", "")),
        "webhook": {
            "server": bool(settings.WEBHOOK_SERVER),
            "mode": settings.WEBHOOK_MODE,
            "failure_policy": settings.WEBHOOK_FAILURE_POLICY,
            "index_max_age": settings.WEBHOOK_INDEX_MAX_AGE,
            "class_cache": settings.WEBHOOK_CLASS_CACHE,
        },
        "log_level": getattr(settings, "LOG_LEVEL", ""),
        # The file `make run` wrote that this command read (nicportal/runenv.py), if any.
        "run_env": str(runenv.loaded_from) if runenv.loaded_from else "(none)",
    }


def _flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    lines: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            lines.extend(_flatten(value, f"{name}."))
        else:
            lines.append((name, value))
    return lines


class Command(BaseCommand):
    help = "Print the configuration this process runs with (secrets masked)."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="one JSON object")

    def handle(self, *args, json: bool = False, **options):
        config = collect_config()
        if json:
            self.stdout.write(_dumps(config))
            return
        width = max(len(name) for name, _ in _flatten(config))
        for name, value in _flatten(config):
            if isinstance(value, list):
                value = ",".join(value)
            if value == "":
                value = "(none)"
            self.stdout.write(f"{name.ljust(width)}  {value}")


def _dumps(config: dict[str, Any]) -> str:
    # The option is named --json, which shadows the module inside handle().
    return json.dumps(config, indent=2, sort_keys=True)
