"""NICPortal settings. Everything that differs between machines comes from the environment.

Defaults give the embedded set-up (SQLite, a filesystem Celery broker, a file cache) so that a
newcomer runs the product with no services; DATABASE_URL and CELERY_BROKER_URL switch to
PostgreSQL and Redis. NICPORTAL_PRODUCTION=1 turns on the hardened profile (`check --deploy`).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from nicportal.env import (
    DEVELOPMENT_SECRET_KEY,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_secret,
    env_str,
    production_secret,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("NICPORTAL_VAR_DIR", str(BASE_DIR / "var")))

PRODUCTION = env_bool("NICPORTAL_PRODUCTION", False)
DEBUG = env_bool("DJANGO_DEBUG", False)

SECRET_KEY = env_secret("DJANGO_SECRET_KEY")
if PRODUCTION:
    # 50: the length Django's own `check --deploy` asks for (security.W009).
    SECRET_KEY = production_secret("DJANGO_SECRET_KEY", SECRET_KEY, min_length=50)
elif not SECRET_KEY:
    SECRET_KEY = DEVELOPMENT_SECRET_KEY

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "inventory",
]

MIDDLEWARE = [
    # Outermost: a database that is down or restarting answers 503 + Retry-After, never 500.
    "nicportal.middleware.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # NUL and control characters in the path or a query parameter: 400 naming the parameter.
    "nicportal.middleware.ControlCharactersMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

# The admission webhook server (its own Deployment, gunicorn with TLS, see
# nicportal/webhook_gunicorn.py) serves only the webhook's URLs, never the UI or the API.
WEBHOOK_SERVER = env_bool("NICPORTAL_WEBHOOK_SERVER", False)
ROOT_URLCONF = "nicportal.urls_webhook" if WEBHOOK_SERVER else "nicportal.urls"
if WEBHOOK_SERVER:
    # No sessions, CSRF, users, messages or htmx for the API server's calls: each middleware is
    # time on every pod creation in the cluster.
    MIDDLEWARE = [
        "django.middleware.security.SecurityMiddleware",
        "django.middleware.common.CommonMiddleware",
    ]
WSGI_APPLICATION = "nicportal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "inventory.web.views.status.sweep_context",
            ],
        },
    }
]

# --- Database: SQLite embedded by default, PostgreSQL via DATABASE_URL -------------------------
DATABASE_URL = env_str("DATABASE_URL")
if PRODUCTION and any(m in DATABASE_URL.lower() for m in ("replace_me", "changeme")):
    raise ImproperlyConfigured(
        "DATABASE_URL still holds a placeholder password (REPLACE_ME): set the real one"
    )
if DATABASE_URL:
    try:
        # Persistent connections, checked before their first use in each request or task: a
        # connection broken by a PostgreSQL restart is replaced instead of failing a request.
        DATABASES = {
            "default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)
        }
        if DATABASES["default"]["ENGINE"].endswith("postgresql"):
            # An unreachable server fails the request fast (503) instead of hanging a worker.
            DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
                "connect_timeout", env_int("NICPORTAL_DB_CONNECT_TIMEOUT", 5, minimum=1)
            )
        # One test database per test process: runs side by side never drop each other's.
        DATABASES["default"]["TEST"] = {
            "NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"
        }
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {exc}") from None
    # A cap on every statement (milliseconds; 0 = none): the webhook server sets it well under
    # its own deadline, so a slow database ends a review in an error, not in the API server's
    # timeout.
    _statement_timeout = env_int("NICPORTAL_DB_STATEMENT_TIMEOUT_MS", 0, minimum=0)
    _session = [f"-c statement_timeout={_statement_timeout}"] if _statement_timeout else []
    if WEBHOOK_SERVER:
        # The webhook server writes only AdmissionRecords, a log rather than a promise: its
        # commits do not wait for the WAL flush (a crash can lose the last fraction of a second
        # of records, never corrupt them), so a denial's record is one statement, one round trip.
        _session.append("-c synchronous_commit=off")
    if _session and DATABASES["default"]["ENGINE"].endswith("postgresql"):
        DATABASES["default"].setdefault("OPTIONS", {})["options"] = " ".join(_session)
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "nicportal.sqlite3",
            # Web, worker and beat share the file: wait for the writer instead of failing.
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
            # A file, not the in-memory default: threads (Celery worker, live server) share it
            # and SQLite's shared-cache memory mode fails with "table is locked" instead of
            # waiting for the writer.
            "TEST": {"NAME": str(VAR_DIR / f"test-nicportal-{os.getpid()}.sqlite3")},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis / cache ---------------------------------------------------------------------------
REDIS_URL = env_str("NICPORTAL_REDIS_URL")
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if not REDIS_URL and CELERY_BROKER_URL.startswith("redis"):
    # Same server as the broker, another database: clearing the cache must not drop tasks.
    _broker = urlsplit(CELERY_BROKER_URL)
    REDIS_URL = urlunsplit(_broker._replace(path="/1"))
# The cache is an optimisation (agent contact times, sweep status, lint flags, locks, fleet
# counts): every reader falls back to the database. So a Redis that is down or slow is a cache
# miss (django-redis IGNORE_EXCEPTIONS), never a 500; /readyz reports it as degraded, and the
# locks fall back to PostgreSQL advisory locks (inventory.services.polling.cache_lock).
CACHE_TIMEOUT = env_float("NICPORTAL_CACHE_TIMEOUT", 0.5, minimum=0.05)
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "nicportal",
            "OPTIONS": {
                "IGNORE_EXCEPTIONS": True,
                "SOCKET_CONNECT_TIMEOUT": CACHE_TIMEOUT,
                "SOCKET_TIMEOUT": CACHE_TIMEOUT,
            },
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": VAR_DIR / "cache",
        }
    }

# --- Celery ----------------------------------------------------------------------------------
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    # The embedded broker: messages are files in var/celery (reliable, no server needed).
    _celery_dir = VAR_DIR / "celery"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_celery_dir / "queue"),
        "data_folder_out": str(_celery_dir / "queue"),
        "processed_folder": str(_celery_dir / "processed"),
        "control_folder": str(_celery_dir / "control"),
        "store_processed": False,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 4
CELERY_TASK_SOFT_TIME_LIMIT = env_int("NICPORTAL_TASK_SOFT_TIME_LIMIT", 60, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("NICPORTAL_TASK_TIME_LIMIT", 90, minimum=1)
CELERY_TASK_ALWAYS_EAGER = env_bool("NICPORTAL_CELERY_EAGER", False)
CELERY_TIMEZONE = "UTC"

POLL_INTERVAL = env_float("NICPORTAL_POLL_INTERVAL", 30.0, minimum=1.0)
CELERY_BEAT_SCHEDULE = {
    # Every entry expires: a sweep that could not start before the next one is pointless.
    "sweep": {
        "task": "inventory.tasks.sweep",
        "schedule": POLL_INTERVAL,
        "options": {"expires": POLL_INTERVAL},
    },
    "expire-reservations": {
        "task": "inventory.tasks.expire_reservations",
        "schedule": 60.0,
        "options": {"expires": 60.0},
    },
}

# --- Kubernetes and agents -------------------------------------------------------------------
KUBECONFIG = env_str("KUBECONFIG")
KUBE_IN_CLUSTER = env_bool("NICPORTAL_IN_CLUSTER", False)
KUBE_CONTEXT = env_str("NICPORTAL_KUBE_CONTEXT")
CLUSTER_NAME = env_str("NICPORTAL_CLUSTER_NAME", "default")
KUBE_TIMEOUT = env_float("NICPORTAL_KUBE_TIMEOUT", 10.0, minimum=0.1)
# Read the cluster by watch (a copy kept current from resourceVersions and bookmarks) instead of
# listing everything on every sweep; off for API servers without watch semantics (the KMock lab).
KUBE_WATCH = env_bool("NICPORTAL_KUBE_WATCH", True)
# timeoutSeconds of a sweep's watch reads: the longest a sweep waits for the cluster's changes
# (a busy collection's read ends earlier, at the server's bookmark).
KUBE_WATCH_SECONDS = env_int("NICPORTAL_KUBE_WATCH_SECONDS", 3, minimum=1)
# Which pods are the node agents (choose_agents in clients/cluster_objects.py): pods matching
# the selector are candidates; only those in AGENT_NAMESPACE, controlled by the DaemonSet
# AGENT_DAEMONSET, with hostNetwork and a pod IP that is one of their Node's addresses are used.
# An empty namespace (any) is for development only.
AGENT_NAMESPACE = env_str("NICPORTAL_AGENT_NAMESPACE", "nicportal")
AGENT_DAEMONSET = env_str("NICPORTAL_AGENT_DAEMONSET", "nicportal-agent")
AGENT_LABEL_SELECTOR = env_str("NICPORTAL_AGENT_SELECTOR", "app.kubernetes.io/name=nicportal-agent")
AGENT_PORT_NAME = env_str("NICPORTAL_AGENT_PORT_NAME", "agent")
# Agent authentication (docs/agent-auth.md): each node's key is derived from the master key,
# the cluster name and the node name. The previous master is still accepted while keys rotate.
AGENT_MASTER_KEY = env_secret("NICPORTAL_AGENT_MASTER_KEY")
AGENT_MASTER_KEY_PREVIOUS = env_secret("NICPORTAL_AGENT_MASTER_KEY_PREVIOUS", missing_file_ok=True)
for _gone in ("NICPORTAL_AGENT_TOKEN", "NICPORTAL_AGENT_TOKEN_FILE"):
    if os.environ.get(_gone):
        raise ImproperlyConfigured(
            f"{_gone} is no longer read: agents authenticate with per-node keys derived from "
            "NICPORTAL_AGENT_MASTER_KEY (see docs/agent-auth.md)"
        )
# Bearer token for /metrics; empty = open (protect it at the network level then).
METRICS_TOKEN = env_secret("NICPORTAL_METRICS_TOKEN")
if PRODUCTION:
    AGENT_MASTER_KEY = production_secret(
        "NICPORTAL_AGENT_MASTER_KEY", AGENT_MASTER_KEY, min_length=32
    )
    AGENT_MASTER_KEY_PREVIOUS = production_secret(
        "NICPORTAL_AGENT_MASTER_KEY_PREVIOUS",
        AGENT_MASTER_KEY_PREVIOUS,
        min_length=32,
        required=False,
    )
    METRICS_TOKEN = production_secret(
        "NICPORTAL_METRICS_TOKEN", METRICS_TOKEN, min_length=32, required=False
    )
    if not AGENT_NAMESPACE:
        raise ImproperlyConfigured(
            "NICPORTAL_AGENT_NAMESPACE must name the agents' namespace in production: with any "
            "namespace, whoever can create a DaemonSet somewhere could pose as the agents"
        )
if AGENT_MASTER_KEY_PREVIOUS and AGENT_MASTER_KEY_PREVIOUS == AGENT_MASTER_KEY:
    raise ImproperlyConfigured(
        "NICPORTAL_AGENT_MASTER_KEY_PREVIOUS equals NICPORTAL_AGENT_MASTER_KEY: unset it "
        "once the rotation is over"
    )
AGENT_TIMEOUT = env_float("NICPORTAL_AGENT_TIMEOUT", 5.0, minimum=0.1)
AGENT_MAX_BYTES = env_int("NICPORTAL_AGENT_MAX_BYTES", 4 * 1024 * 1024, minimum=1024)
AGENT_STALE_AFTER = env_float("NICPORTAL_AGENT_STALE_AFTER", 3 * POLL_INTERVAL, minimum=1.0)
# How long a cluster's API may fail to answer before its NICs turn `unknown` (sync/reach.py).
CLUSTER_STALE_AFTER = env_float("NICPORTAL_CLUSTER_STALE_AFTER", AGENT_STALE_AFTER, minimum=0.0)
# A kubeconfig read from a Secret (Cluster.kubeconfig_secret) is read again this often (seconds).
CLUSTER_SECRET_TTL = env_float("NICPORTAL_CLUSTER_SECRET_TTL", 300.0, minimum=1.0)
# Multus version of the cluster (MicroK8s' addon ships v3.9 -> cniVersion 0.3.1); "" = unknown.
MULTUS_VERSION = env_str("NICPORTAL_MULTUS_VERSION", "")

# --- Admission webhook (inventory/webhook.py, docs/WEBHOOK.md) -------------------------------
# enforce: deny what breaks the rules; warn: allow it with a warning and record the would-be
# denial (the page at /admission/), to watch a cluster before enforcing.
WEBHOOK_MODE = env_str("NICPORTAL_WEBHOOK_MODE", "enforce").strip().lower()
if WEBHOOK_MODE not in {"enforce", "warn"}:
    raise ImproperlyConfigured(
        f"NICPORTAL_WEBHOOK_MODE must be enforce or warn, got {WEBHOOK_MODE!r}"
    )
# Must match the ValidatingWebhookConfiguration's failurePolicy: what the server answers when it
# cannot decide (database down): Ignore allows with a warning, Fail denies.
WEBHOOK_FAILURE_POLICY = env_str("NICPORTAL_WEBHOOK_FAILURE_POLICY", "Ignore").strip().capitalize()
if WEBHOOK_FAILURE_POLICY not in {"Ignore", "Fail"}:
    raise ImproperlyConfigured(
        f"NICPORTAL_WEBHOOK_FAILURE_POLICY must be Ignore or Fail, got {WEBHOOK_FAILURE_POLICY!r}"
    )
# Nodes, NADs and team namespaces are held in memory and refreshed in the background at most
# this old (seconds; the sweep interval by default, the pace at which nodes and NADs change in
# the database anyway); NIC ownership and reservations are read fresh for every review.
WEBHOOK_INDEX_MAX_AGE = env_float("NICPORTAL_WEBHOOK_INDEX_MAX_AGE", POLL_INTERVAL, minimum=0.0)
# Fleet-wide reviews (a pod that may run on any node, a NAD without a node list) keep their
# device classes in memory until PostgreSQL notifies a commit that changes interfaces, nodes,
# reservations or teams (inventory/read/changes.py); off: every review reads the database.
WEBHOOK_CLASS_CACHE = env_bool("NICPORTAL_WEBHOOK_CLASS_CACHE", True)
# A denial's record (AdmissionRecord) is written by a writer thread in the process, off the
# review's response path (inventory/services/admission_records.py): on in the webhook server,
# off elsewhere (the web process, tests: the review writes it itself). At most this many records
# wait for the writer; past that a record is dropped and counted in /metrics, never waited for.
WEBHOOK_RECORD_ASYNC = env_bool("NICPORTAL_WEBHOOK_RECORD_ASYNC", WEBHOOK_SERVER)
WEBHOOK_RECORD_QUEUE = env_int("NICPORTAL_WEBHOOK_RECORD_QUEUE", 10000, minimum=1)

# --- Auth, REST ------------------------------------------------------------------------------
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

# Request bodies of the API (and agent hints): larger or deeper JSON is a 400 naming the limit.
API_MAX_JSON_BYTES = env_int("NICPORTAL_API_MAX_JSON_BYTES", 256 * 1024, minimum=1024)
API_MAX_JSON_DEPTH = env_int("NICPORTAL_API_MAX_JSON_DEPTH", 32, minimum=4)
# Seconds a client is asked to wait (Retry-After) when the database or the task queue is down.
RETRY_AFTER = env_int("NICPORTAL_RETRY_AFTER", 10, minimum=1)

REST_FRAMEWORK = {
    # JSON bodies only (form encodings turn "" into "absent" for optional fields, which would
    # make `{"team": ""}` mean "my only team" instead of a 400), within size and depth limits.
    "DEFAULT_PARSER_CLASSES": ["nicportal.parsers.BoundedJSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
# Tokens are created by inventory.services.tokens, which always sets an expiry (at most a
# year); TOKEN_TTL is the default for any other caller.
REST_KNOX = {"TOKEN_TTL": timedelta(days=30), "AUTO_REFRESH": False}
# knox's model is swappable; naming it lets inventory.TokenNote point at it in migrations.
KNOX_TOKEN_MODEL = "knox.AuthToken"
SPECTACULAR_SETTINGS = {
    "TITLE": "NICPortal API",
    "DESCRIPTION": "Who owns each NIC of a Kubernetes fleet; reservations; host-device NADs.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Static files, i18n ----------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# --- Logging: one line per event, key=value, to stderr ---------------------------------------
LOG_LEVEL = env_str("NICPORTAL_LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "kv": {"format": "ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "kv"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"kubernetes": {"level": "WARNING"}, "urllib3": {"level": "WARNING"}},
}

# --- Production profile ----------------------------------------------------------------------
if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    X_FRAME_OPTIONS = "DENY"
    # In-cluster callers (kubelet probes, Prometheus, the agents' hints) speak plain HTTP to the
    # Service; TLS terminates at the ingress for people.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$", r"^api/v1/agent-hints/$"]

if not PRODUCTION:
    # Serve static files straight from the app/project folders (no collectstatic in development,
    # the tests' live server, or the lab demo).
    WHITENOISE_USE_FINDERS = True
    WHITENOISE_AUTOREFRESH = True
