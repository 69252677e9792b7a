"""gunicorn settings of the admission webhook server (deploy/kubernetes/webhook.yaml):

    gunicorn -c python:nicportal.webhook_gunicorn nicportal.wsgi:application

HTTPS on 8443 with the certificate and key from a Secret (cert-manager's, or the one
`manage.py webhookcert` makes), serving only the webhook's URLs (NICPORTAL_WEBHOOK_SERVER=1).
gthread workers build their TLS context for each new connection, so a renewed certificate in
the mounted Secret is used by the next connection without a restart.
"""

from __future__ import annotations

import os
import ssl
from typing import Any

os.environ["NICPORTAL_WEBHOOK_SERVER"] = "1"
# Every statement capped well under the webhook's deadline (timeoutSeconds: 3 in the
# ValidatingWebhookConfiguration): a slow database gives an error the failure policy answers.
os.environ.setdefault("NICPORTAL_DB_STATEMENT_TIMEOUT_MS", "1500")

_tls = os.environ.get("NICPORTAL_WEBHOOK_TLS_DIR", "/var/run/secrets/nicportal-webhook")
bind = [os.environ.get("NICPORTAL_WEBHOOK_LISTEN", "0.0.0.0:8443")]
certfile = os.path.join(_tls, "tls.crt")
keyfile = os.path.join(_tls, "tls.key")
worker_class = "gthread"
workers = int(os.environ.get("NICPORTAL_WEBHOOK_WORKERS", "2"))
threads = int(os.environ.get("NICPORTAL_WEBHOOK_THREADS", "4"))
worker_tmp_dir = os.environ.get("NICPORTAL_WEBHOOK_TMP_DIR", "/tmp")
timeout = 30
graceful_timeout = 10
keepalive = 30  # the API server keeps connections to webhooks open
accesslog = None  # every decision is logged by the service, one key=value line


def ssl_context(config: Any, default_ssl_context_factory: Any) -> ssl.SSLContext:
    context = default_ssl_context_factory()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def worker_exit(server: Any, worker: Any) -> None:
    """A worker that stops (a restart, a scale-down, SIGTERM) first writes the denial records
    its writer thread still has queued, and its pending metrics, within a few seconds
    (inventory/services/admission_records.py)."""
    # Imported here: this file is read by the gunicorn master, which never sets Django up (the
    # workers load the application after the fork).
    from inventory.services import admission, admission_records

    admission_records.flush_before_exit()
    admission.flush_counters()
