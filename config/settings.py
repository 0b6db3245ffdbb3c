"""Settings, read from the environment (and `.env` when present) by `config/environment.py`.

With no variable set the service runs on its embedded default: SQLite, an in-process cache and
Celery tasks run in-process. Configured with PostgreSQL and Redis it is the production service;
the code paths are the same, only the backends differ. A bad value stops start-up with
`ImproperlyConfigured` naming the variable.
"""

import logging
import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from config.environment import BASE_DIR, env, positive, read, server, share, whole


def _rate(name: str, default: str) -> tuple[int, int] | None:
    """`30/10s` is 30 requests per 10 seconds (units s, m, h); `off` is no limit."""
    value = env.str(name, default).strip().lower()
    if value in ("off", "none", "0", ""):
        return None
    match = re.fullmatch(r"(\d+)/(\d*)([smh])", value)
    if not match:
        raise ImproperlyConfigured(f"{name}={value!r} is not a rate like 30/10s, 600/m or off")
    count, amount, unit = match.groups()
    return int(count), int(amount or 1) * {"s": 1, "m": 60, "h": 3600}[unit]


def _database() -> dict[str, Any]:
    if env.str("DATABASE_URL", ""):
        db = env.db_url("DATABASE_URL")
    elif env.str("DB_HOST", ""):
        db = {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": env.str("DB_HOST"),
            "PORT": read("DB_PORT", int, 5432),
            "USER": env.str("DB_USER", "postgres"),
            "PASSWORD": env.str("DB_PASSWORD", ""),
            "NAME": env.str("DB_NAME", "postgres"),
            "OPTIONS": {"sslmode": env.str("DB_SSL_MODE", "prefer")},
        }
    else:
        return {
            "ENGINE": "django_prometheus.db.backends.sqlite3",
            "NAME": env.str("SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
            "OPTIONS": {
                # Concurrent writers queue on the write lock instead of failing mid-transaction.
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    if not db["ENGINE"].endswith("postgresql"):
        raise ImproperlyConfigured(f"DATABASE_URL must point at PostgreSQL, got {db['ENGINE']}")
    db["ENGINE"] = "core.postgresql"
    options = db.setdefault("OPTIONS", {})
    options["pool"] = {"min_size": 1, "max_size": positive("DB_POOL_SIZE", 16), "timeout": 10}
    db["CONN_MAX_AGE"] = 0  # the pool owns connection lifetime
    # Parameters bound by the server, and statements prepared after a few runs: PostgreSQL
    # parses the hot queries once per connection (Django prepares nothing unless told). Behind
    # PgBouncer in transaction mode a server connection is not ours between transactions, so
    # DB_PGBOUNCER turns off what would outlive one: prepared statements, server-side cursors.
    options["server_side_binding"] = True
    options["prepare_threshold"] = 5
    if read("DB_PGBOUNCER", bool, False):
        options["prepare_threshold"] = None
        db["DISABLE_SERVER_SIDE_CURSORS"] = True
    return db


def _redis_url() -> str:
    if url := env.str("REDIS_URL", ""):
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ImproperlyConfigured(f"REDIS_URL must be a redis:// URL, got {url!r}")
        return str(url)
    if host := env.str("REDIS_HOST", ""):
        password = env.str("REDIS_PASSWORD", "")
        auth = f":{quote(password, safe='')}@" if password else ""
        return f"redis://{auth}{host}:{read('REDIS_PORT', int, 6379)}/0"
    return ""


def _redis_cluster(url: str) -> tuple[bool, list[str], str]:
    """(cluster?, its startup nodes as host:port, the URL of one of them)."""
    nodes = env.list("REDIS_CLUSTER_NODES", default=[])
    for node in nodes:
        if not re.fullmatch(r"[^\s:/]+:\d+", node):
            raise ImproperlyConfigured(f"REDIS_CLUSTER_NODES: {node!r} is not host:port")
    if not read("REDIS_CLUSTER", bool, bool(nodes)):
        return False, [], url
    if not (url or nodes):
        raise ImproperlyConfigured("REDIS_CLUSTER needs REDIS_URL or REDIS_CLUSTER_NODES")
    if url and re.search(r"/[1-9]\d*$", url):
        raise ImproperlyConfigured(f"REDIS_URL={url!r}: a Redis Cluster has only db 0")
    return True, nodes, url or f"redis://{nodes[0]}/0"


# Core
EMBEDDED = not (env.str("DATABASE_URL", "") or env.str("DB_HOST", ""))
DEBUG = read("DJANGO_DEBUG", bool, False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", "")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=[])
if EMBEDDED:
    SECRET_KEY = SECRET_KEY or "embedded-default-not-for-production"
    ALLOWED_HOSTS = ALLOWED_HOSTS or ["127.0.0.1", "localhost", "[::1]", "testserver"]
else:
    # A production configuration must be explicit about what it exposes.
    if not SECRET_KEY:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DATABASE_URL or DB_HOST is")
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured(
            "DJANGO_ALLOWED_HOSTS must be set when DATABASE_URL or DB_HOST is"
        )
    if DEBUG and not read("DJANGO_ALLOW_DEBUG_IN_PRODUCTION", bool, False):
        raise ImproperlyConfigured("DJANGO_DEBUG must be off when DATABASE_URL or DB_HOST is set")

INSTALLED_APPS = [
    "operations.apps.OperatorAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_prometheus",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "operations",
    "sales",
    "tickets",
    "axes",
    "core",
]

MIDDLEWARE = [
    "core.middleware.RequestMetricsMiddleware",
    "core.middleware.ErrorShapeMiddleware",
    "core.middleware.BodyLimitMiddleware",
    "core.admission.AdmissionMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "core.middleware.PageMiddleware",
]
# Run by PageMiddleware, in this order, for pages (the admin, the docs, the landing page, static
# files) and the staff API: the API of buyers and tills uses no session, cookie or static file.
PAGE_MIDDLEWARE = [
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Last: turns a login refused for a lockout into the lockout page.
    "axes.middleware.AxesMiddleware",
]
# Those look for the pages' middleware in MIDDLEWARE; operations/apps.py checks PAGE_MIDDLEWARE.
SILENCED_SYSTEM_CHECKS = [
    "admin.E408",
    "admin.E409",
    "admin.E410",
    "axes.W002",
    "security.W003",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis: "default" is a cache that may fail quietly; "stock" is the flash-sale fast path, which
# must see every Redis error so that the fallback to PostgreSQL is explicit and counted.
# REDIS_CLUSTER: the URL (or REDIS_CLUSTER_NODES) names nodes of a Redis Cluster.
REDIS_CLUSTER, REDIS_CLUSTER_NODES, REDIS_URL = _redis_cluster(_redis_url())
if REDIS_URL:
    _redis_options: dict[str, Any] = {
        "CLIENT_CLASS": "django_redis.client.DefaultClient",
        "SOCKET_CONNECT_TIMEOUT": 0.5,
        "SOCKET_TIMEOUT": 0.5,
    }
    if REDIS_CLUSTER:
        _redis_options["CONNECTION_FACTORY"] = "core.redis.ClusterConnectionFactory"
    CACHES = {
        "default": {
            "BACKEND": "django_prometheus.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {**_redis_options, "IGNORE_EXCEPTIONS": True},
        },
        "stock": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": _redis_options,
        },
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Celery: without a broker, tasks run in-process (the embedded default). RabbitMQ (amqp://) is
# the production broker; a single Redis works too (a Redis Cluster cannot be Celery's broker).
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", "") or ("" if REDIS_CLUSTER else REDIS_URL)
if REDIS_CLUSTER and not CELERY_BROKER_URL:
    raise ImproperlyConfigured("REDIS_CLUSTER needs CELERY_BROKER_URL (amqp:// or a single Redis)")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
if CELERY_TASK_ALWAYS_EAGER:
    # Eager tasks reach no broker, but kombu still describes one for them and, given no URL,
    # warns on every task that it falls back to an AMQP server on localhost.
    CELERY_BROKER_URL = "memory://localhost/"
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True  # a task whose worker dies is redelivered, so tasks are idempotent
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# A worker that loses the broker mid-task stops the task: its message goes back to the queue
# (acknowledged late, so never acknowledged) and runs again, which the tasks allow.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 4
# Each worker also reads a queue of its own, where its watchdog's probes go (core/watchdog.py):
# a worker none of whose probes comes back in this many seconds stops, for its supervisor to
# start again. 0 turns the watchdog off.
CELERY_WORKER_DIRECT = True
WORKER_STALL_SECONDS = whole("WORKER_STALL_SECONDS", 120)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None  # a worker waits for its broker for ever
if CELERY_BROKER_URL.startswith("amqp"):
    # A publish returns once RabbitMQ has taken the message; RabbitMQ itself redelivers an
    # unacknowledged message as soon as its consumer's connection drops.
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {"confirm_publish": True}
else:
    # Redis redelivers an unacknowledged message only after this long.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TIMEZONE = "UTC"
TICKETS_SWEEP_SECONDS = positive("TICKETS_SWEEP_SECONDS", 60)
CELERY_BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "open-hourly-sale": {
        "task": "sales.tasks.open_hourly_sale",
        "schedule": crontab(minute=0),
        "options": {"expires": 30 * 60},
    },
    # Tickets left `received` (a lost nudge, a crashed worker) and tickets left in the spool
    # (PostgreSQL came back with no ticket arriving) wait a minute at most.
    # Sweeps that pick up what a lost nudge left behind: a sweep that finds nothing is cheap.
    "tickets-parse-backlog": {
        "task": "tickets.tasks.parse_backlog",
        "schedule": TICKETS_SWEEP_SECONDS,
        "options": {"expires": TICKETS_SWEEP_SECONDS},
    },
    "tickets-drain-spool": {
        "task": "tickets.tasks.drain_spool",
        "schedule": TICKETS_SWEEP_SECONDS,
        "options": {"expires": TICKETS_SWEEP_SECONDS},
    },
}

# The product
# Where the web server listens, as its launchers read it: for the links that commands print.
APP_URL = server().url
APP_ITEM_NUMBER = positive("APP_ITEM_NUMBER", 10_000)
APP_USER_LIMIT = positive("APP_USER_LIMIT", 10)
CHECKOUT_TTL_SECONDS = positive("CHECKOUT_TTL_SECONDS", 120)
# How long a web process serves a sale page's figures before reading them again (0: never kept).
SALE_PAGE_SECONDS = whole("SALE_PAGE_SECONDS", 1)
# How often the web fleet brings Redis to PostgreSQL's state (sales/stock/_reconcile.py).
STOCK_RECONCILE_SECONDS = positive("STOCK_RECONCILE_SECONDS", 2)
TICKET_MAX_BYTES = positive("TICKET_MAX_BYTES", 1024 * 1024)
TICKET_WEBHOOK_SECRET = env.str("TICKET_WEBHOOK_SECRET", "")
TICKET_SIGNATURE_TOLERANCE_SECONDS = positive("TICKET_SIGNATURE_TOLERANCE_SECONDS", 300)
TICKET_SPOOL_DIR = Path(env.str("TICKET_SPOOL_DIR", str(BASE_DIR / "var" / "spool")))

# Rate limits on checkout and purchase, per buyer (user_id; for a purchase, its code) and per
# client address, shared by every process through Redis. Behind N proxies that append to
# X-Forwarded-For, set TRUSTED_PROXY_COUNT=N so that the client address is the right one.
RATE_LIMITS = {
    "user": _rate("RATE_LIMIT_PER_USER", "30/10s"),
    "code": _rate("RATE_LIMIT_PER_CODE", "10/10s"),
    "address": _rate("RATE_LIMIT_PER_ADDRESS", "1000/10s"),
}
# Bodies of API requests are a few fields; a view may name another limit (`body_limit`), as the
# webhook does: TICKET_MAX_BYTES.
API_MAX_BODY_BYTES = positive("API_MAX_BODY_BYTES", 64 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES

# Admission control of checkout and purchase (core/admission.py, README "Admission"): per web
# process, at most a limit of requests inside, between MIN and MAX, adapted to keep their mean
# latency within the target; a queue of QUEUE before it, waited in for MAX_WAIT at most; a share
# of both reserved for purchases and returning buyers; busy answers counted per minute.
ADMISSION = {
    "enabled": read("ADMISSION", bool, True),
    "max_limit": positive("ADMISSION_MAX_LIMIT", 32),
    "min_limit": positive("ADMISSION_MIN_LIMIT", 8),
    "target": positive("ADMISSION_TARGET_MS", 250) / 1000,
    "queue": whole("ADMISSION_QUEUE", 32),
    "max_wait": positive("ADMISSION_MAX_WAIT_MS", 200) / 1000,
    "reserve": share("ADMISSION_RESERVE_PERCENT", 20),
    "return_share": share("ADMISSION_RETURN_PERCENT", 20),
    "token_ttl": positive("ADMISSION_TOKEN_TTL_SECONDS", 30),
    "max_retry_after": positive("ADMISSION_MAX_RETRY_AFTER", 30),
    "flush": positive("ADMISSION_FLUSH_SECONDS", 5),
}
if ADMISSION["min_limit"] > ADMISSION["max_limit"]:
    raise ImproperlyConfigured("ADMISSION_MIN_LIMIT must not exceed ADMISSION_MAX_LIMIT")

# A request slower than this is logged at WARNING, as is every 5xx; at DEBUG, every request.
SLOW_REQUEST_SECONDS = positive("SLOW_REQUEST_MS", 1000) / 1000

# API
REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "core.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # The API is public but for staff views, which name their authentication: no request of
    # a till or a buyer pays for a session lookup.
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.Pagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "core.errors.exception_handler",
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "core.negotiation.Negotiation",
    "DEFAULT_SCHEMA_CLASS": "core.schema.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    # 0: the client address is the connection's; X-Forwarded-For is trusted only when set.
    "NUM_PROXIES": read("TRUSTED_PROXY_COUNT", int, 0),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Flash sales and till receipts",
    "DESCRIPTION": "The hourly flash sale (`sales`) and the till-receipt webhook (`tickets`).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",  # assets served locally: the docs work offline
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # Each operation is tagged with the app that serves it (core.schema.AutoSchema).
    "TAGS": [
        {"name": "sales", "description": "The hourly flash sale: reserve, buy, follow a sale."},
        {"name": "tickets", "description": "The till webhook, its tickets and the catalogue."},
        {"name": "operations", "description": "Probes for load balancers and supervisors."},
    ],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.schema.require_bodies",
    ],
    "ENUM_NAME_OVERRIDES": {
        "ItemStatusEnum": "sales.selectors.ITEM_STATUSES",
        "HealthStatusEnum": ["ok", "degraded", "down"],
        "TicketStatusEnum": "tickets.models.Ticket.Status",
    },
}

# The admin: where it is served, and the lockout that keeps its password from being guessed.
# After ADMIN_LOCKOUT_FAILURES failed logins for one username, or from one client address (the
# address the rate limits use), every login of that username or from that address is refused
# with 429 for ADMIN_LOCKOUT_SECONDS; each refused try starts the wait again. The failures are
# rows in the database, so the lockout holds across processes and hosts.
ADMIN_PATH = env.str("ADMIN_PATH", "admin").strip("/") + "/"
if not re.fullmatch(r"[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*/", ADMIN_PATH):
    raise ImproperlyConfigured(f"ADMIN_PATH={ADMIN_PATH!r} is not a path like admin or ops/admin")
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out login before checking it
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = positive("ADMIN_LOCKOUT_FAILURES", 5)
AXES_COOLOFF_TIME = timedelta(seconds=positive("ADMIN_LOCKOUT_SECONDS", 15 * 60))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # either one locks
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_CLIENT_IP_CALLABLE = "operations.lockout.client_address"
AXES_LOCKOUT_CALLABLE = "operations.lockout.lockout_response"
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = True  # a try while locked out waits again
AXES_RESET_ON_SUCCESS = False  # a login of one's own must not wipe the failures of an address
AXES_VERBOSE = False  # no banner at every start; refusals are logged by operations.lockout

# Static files (admin and Swagger UI assets), served by WhiteNoise from the app packages.
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
WHITENOISE_USE_FINDERS = True

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
FORMAT_MODULE_PATH = ["config.formats"]  # dates with seconds, in ISO order

# Security headers; HTTPS redirects and secure cookies are on outside the embedded default.
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
CSRF_FAILURE_VIEW = "core.handlers.csrf_failure"
if not EMBEDDED and not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = read("DJANGO_SECURE_SSL_REDIRECT", bool, True)
    SECURE_REDIRECT_EXEMPT = [r"^health$", r"^ping$", r"^metrics$"]
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 60 * 60 * 24 * 365
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

LOG_FORMAT = env.str("LOG_FORMAT", "text" if EMBEDDED else "json")
LOG_LEVEL = env.str("LOG_LEVEL", "INFO").upper()


def _as_one_line_warning(record: logging.LogRecord) -> bool:
    """A Host header outside ALLOWED_HOSTS is the client's mistake (or a scanner's), answered
    400; Django logs it at ERROR with a traceback, which reads as a crash of the service."""
    record.levelno, record.levelname = logging.WARNING, "WARNING"
    record.exc_info, record.exc_text = None, None
    return True


LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"one_line_warning": {"()": lambda: _as_one_line_warning}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # The request middleware logs every request at DEBUG, failed and slow ones at WARNING:
        # the embedded default, one developer's server, shows every request; production, at a
        # thousand requests a second, only those unless LOG_LEVEL=DEBUG.
        "requests": {
            "level": "DEBUG" if EMBEDDED and LOG_LEVEL in ("DEBUG", "INFO") else LOG_LEVEL
        },
        "django.request": {"level": "ERROR"},
        "django.security.DisallowedHost": {"filters": ["one_line_warning"]},
        "django.server": {"level": "WARNING"},
        # Tasks run inside the request on the embedded default: a line per task is noise there.
        **({"celery.app.trace": {"level": "WARNING"}} if CELERY_TASK_ALWAYS_EAGER else {}),
    },
}
