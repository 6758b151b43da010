"""Settings, read from the environment.

Two modes, chosen by TRAIN_ENV:
- development (default): works with nothing set; SQLite in WAL mode under TRAIN_DATA_DIR, the local
  backend on, DEBUG on.
- production: refuses to start without a real SECRET_KEY, secure cookies/HSTS/SSL redirect on, local
  backend off unless TRAIN_LOCAL_BACKEND=1 and TRAIN_LOCAL_SINGLE_TENANT=1. `manage.py check --deploy`
  is clean in this mode.
"""

import ipaddress
import os
import shutil
import sys
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def env_int(name, default):
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_list(name, default):
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


TRAIN_ENV = os.environ.get("TRAIN_ENV", "development")
if TRAIN_ENV not in ("development", "production"):
    raise ImproperlyConfigured("TRAIN_ENV must be 'development' or 'production'.")
PRODUCTION = TRAIN_ENV == "production"

DEV_SECRET_KEY = "dev-insecure-train-secret-key-do-not-use-in-production"  # noqa: S105 (development only)
SECRET_KEY = os.environ.get("SECRET_KEY", "" if PRODUCTION else DEV_SECRET_KEY)
if PRODUCTION and (len(SECRET_KEY) < 50 or SECRET_KEY == DEV_SECRET_KEY or len(set(SECRET_KEY)) < 5):
    raise ImproperlyConfigured(
        "Production needs SECRET_KEY set to a random value of at least 50 characters "
        "(python -c 'import secrets; print(secrets.token_urlsafe(64))')."
    )
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS", [])

DEBUG = env_bool("DEBUG", default=not PRODUCTION)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
PORT = env_int("PORT", 8000)

# Everything Train writes (the SQLite database, registry blobs, the token signing key, job run
# directories) is private to Train's user: local jobs run as other users and must not read it. Octal;
# 027 lets a group read (gateways and workers running as different users of one group).
TRAIN_UMASK = int(os.environ.get("TRAIN_UMASK", "077"), 8)
if TRAIN_UMASK & 0o007 != 0o007:
    raise ImproperlyConfigured("TRAIN_UMASK must deny all access to other users (end in 7, e.g. 077 or 027).")
os.umask(TRAIN_UMASK)
TRAIN_DATA_DIR = Path(os.environ.get("TRAIN_DATA_DIR", BASE_DIR / "var")).resolve()
TRAIN_DATA_DIR.mkdir(parents=True, exist_ok=True)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "trainsvc.accounts",
    "backends",
    "jobs",
    "registry",
]

MIDDLEWARE = [
    # First: forwarding headers from peers that are not trusted proxies are dropped before anything
    # (the HTTPS redirect, request.is_secure(), the login limit) reads them.
    "trainsvc.clientip.TrustedProxyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "trainsvc.urls"
WSGI_APPLICATION = "trainsvc.wsgi.application"

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
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------
DEFAULT_SQLITE_URL = f"sqlite:///{TRAIN_DATA_DIR / 'train.sqlite3'}"
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", DEFAULT_SQLITE_URL),
        conn_max_age=env_int("TRAIN_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the gateway read while the worker writes; IMMEDIATE transactions take the write lock up
    # front, so two processes never deadlock upgrading a read lock ("database is locked").
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {}).update({"connect_timeout": 5})

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = TRAIN_DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve static files straight from the apps' folders so `make run` needs no collectstatic step.
WHITENOISE_USE_FINDERS = True

# Request bodies: job specs are small; the registry streams its large bodies itself.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("TRAIN_MAX_REQUEST_BYTES", 1024 * 1024)

# --- Proxies ---------------------------------------------------------------------------------------
# The load balancers and reverse proxies (CIDRs, comma-separated) whose forwarding headers are
# believed: X-Forwarded-Proto (HTTPS behind TLS termination) and TRAIN_CLIENT_IP_HEADER (the client's
# address, for the login limit). From any other peer both headers are dropped (trainsvc/clientip.py).
TRAIN_TRUSTED_PROXIES = env_list("TRAIN_TRUSTED_PROXIES", [])
TRAIN_CLIENT_IP_HEADER = os.environ.get("TRAIN_CLIENT_IP_HEADER", "X-Forwarded-For")
for _cidr in TRAIN_TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_cidr, strict=False)
    except ValueError as _exc:
        raise ImproperlyConfigured(f"TRAIN_TRUSTED_PROXIES: {_exc}") from _exc

# --- Security (production) ------------------------------------------------------------------------
if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("TRAIN_SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    SECURE_HSTS_SECONDS = env_int("TRAIN_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("TRAIN_HSTS_PRELOAD", False)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    if env_bool("TRAIN_BEHIND_TLS_PROXY", True):
        if not TRAIN_TRUSTED_PROXIES:
            raise ImproperlyConfigured(
                "TRAIN_BEHIND_TLS_PROXY needs TRAIN_TRUSTED_PROXIES: the CIDRs of the proxies whose "
                "X-Forwarded-Proto is believed (or set TRAIN_BEHIND_TLS_PROXY=0 when Train terminates TLS)."
            )
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SILENCED_SYSTEM_CHECKS = [] if env_bool("TRAIN_HSTS_PRELOAD", False) else ["security.W021"]

# --- REST API -------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["trainsvc.accounts.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["trainsvc.accounts.permissions.AccountRolePermission"],
    "DEFAULT_PARSER_CLASSES": ["trainsvc.api.parsers.SafeJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "trainsvc.api.openapi.TrainAutoSchema",
    "EXCEPTION_HANDLER": "trainsvc.api.errors.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "trainsvc.api.pagination.NewestFirstCursorPagination",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Train API",
    "DESCRIPTION": "Submit and track GPU training jobs on Vertex AI, SageMaker, Azure ML or the local host.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SCHEMA_PATH_PREFIX": "/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Job.status and JobEvent.from_status/to_status share one choice set: one enum in the schema.
    "ENUM_NAME_OVERRIDES": {"JobStatusEnum": "jobs.models.JobStatus"},
}

# --- Worker (django-q2 on the ORM broker) ---------------------------------------------------------
# The ORM broker redelivers a task whose worker died once `retry` seconds have passed; `retry` must
# exceed `timeout` or a slow task runs twice while the first is still going.
TRAIN_TASK_TIMEOUT_SECONDS = env_int("TRAIN_TASK_TIMEOUT_SECONDS", 120)
TRAIN_TASK_RETRY_SECONDS = env_int("TRAIN_TASK_RETRY_SECONDS", 180)
if TRAIN_TASK_RETRY_SECONDS <= TRAIN_TASK_TIMEOUT_SECONDS:
    raise ImproperlyConfigured("TRAIN_TASK_RETRY_SECONDS must be greater than TRAIN_TASK_TIMEOUT_SECONDS.")
Q_CLUSTER = {
    "name": "train",
    "orm": "default",
    "workers": env_int("TRAIN_WORKER_PROCESSES", 2),
    "timeout": TRAIN_TASK_TIMEOUT_SECONDS,
    "retry": TRAIN_TASK_RETRY_SECONDS,
    # Failed tasks are recorded, not redelivered: every task is re-driven from the database by the
    # sweeper, and attempts are counted on the Job row (django-q2 does not count killed attempts).
    "ack_failures": True,
    "max_attempts": 1,
    "catch_up": False,
    "save_limit": 1000,
    "poll": 1,
    "recycle": 500,
    "bulk": 1,
    "queue_limit": 4,
    "sync": env_bool("TRAIN_TASKS_SYNC", False),
    "label": "Worker queue",
}

# --- Jobs -----------------------------------------------------------------------------------------
TRAIN_DEFAULT_MAX_RUNTIME_SECONDS = env_int("TRAIN_DEFAULT_MAX_RUNTIME_SECONDS", 24 * 3600)
TRAIN_PENDING_DEADLINE_SECONDS = env_int("TRAIN_PENDING_DEADLINE_SECONDS", 24 * 3600)
# How often the scheduler starts a poll run, and how long one run keeps polling what falls due.
# The run outlasts the interval a little so there is no gap between runs (scheduler ticks are ~30 s).
TRAIN_POLL_INTERVAL_SECONDS = env_int("TRAIN_POLL_INTERVAL_SECONDS", 60)
TRAIN_POLL_WINDOW_SECONDS = env_int("TRAIN_POLL_WINDOW_SECONDS", 90)
# The running loop wakes at least this often to pick up new work (seconds).
TRAIN_POLL_TICK_SECONDS = env_int("TRAIN_POLL_TICK_SECONDS", 3)
TRAIN_POLL_BATCH_SIZE = env_int("TRAIN_POLL_BATCH_SIZE", 500)
# Time budget of one poll cycle (seconds): no backend call starts after it, and claimed jobs not yet
# polled are released. The budget is also cut to what is left of the task timeout.
TRAIN_POLL_BATCH_SECONDS = env_int("TRAIN_POLL_BATCH_SECONDS", 20)
# How long a claimed job is withheld from other pollers (seconds): the batch budget plus room for one
# backend call that started just before it ran out (a SageMaker poll request takes at most ~33 s).
# A killed poll's jobs are polled again after this.
TRAIN_POLL_LEASE_SECONDS = env_int("TRAIN_POLL_LEASE_SECONDS", 55)
# The poll loop's own lease (seconds), renewed by a heartbeat every third of it: a dead loop's lease
# lapses this soon, and the next poll run takes over.
TRAIN_POLL_LOOP_LEASE_SECONDS = env_int("TRAIN_POLL_LOOP_LEASE_SECONDS", 10)
# A submission's claim on a job (seconds), renewed by a heartbeat while the submitting task lives: a
# killed submission can be taken over this soon (by its redelivered task or the sweep).
TRAIN_SUBMIT_CLAIM_SECONDS = env_int("TRAIN_SUBMIT_CLAIM_SECONDS", 15)
if TRAIN_POLL_WINDOW_SECONDS + 10 >= TRAIN_TASK_TIMEOUT_SECONDS:
    raise ImproperlyConfigured("TRAIN_POLL_WINDOW_SECONDS must end at least 10 s before the task timeout.")
if TRAIN_POLL_BATCH_SECONDS >= TRAIN_POLL_LEASE_SECONDS:
    raise ImproperlyConfigured("TRAIN_POLL_LEASE_SECONDS must exceed TRAIN_POLL_BATCH_SECONDS.")
if min(TRAIN_POLL_LOOP_LEASE_SECONDS, TRAIN_SUBMIT_CLAIM_SECONDS) < 3:
    raise ImproperlyConfigured("Heartbeat leases (TRAIN_POLL_LOOP_LEASE_SECONDS, TRAIN_SUBMIT_CLAIM_SECONDS) "
                               "must be at least 3 seconds.")
if TRAIN_SUBMIT_CLAIM_SECONDS >= TRAIN_TASK_RETRY_SECONDS:
    raise ImproperlyConfigured("TRAIN_SUBMIT_CLAIM_SECONDS must be shorter than TRAIN_TASK_RETRY_SECONDS, so a "
                               "redelivered submission can take over at once.")

# --- Registry -------------------------------------------------------------------------------------
# The host[:port] clients use for Train's registry (`docker push HOST/account/repo:tag`). Job images
# naming this host (or its localhost / 127.0.0.1 forms) are resolved to a digest at submission.
TRAIN_REGISTRY_HOST = os.environ.get("TRAIN_REGISTRY_HOST", f"localhost:{PORT}")
# The `service` in the Bearer challenge and the `aud` of every registry token; tokens for another
# service (another Train installation) are refused.
TRAIN_REGISTRY_SERVICE = os.environ.get("TRAIN_REGISTRY_SERVICE", "train-registry")
# ES256 private key (PEM, EC P-256) that signs registry tokens. Every gateway must use the same key,
# or a token issued by one is refused by the next: the PEM itself (TRAIN_REGISTRY_SIGNING_KEY_PEM, e.g.
# from a secret store) or a file (TRAIN_REGISTRY_SIGNING_KEY). Development creates the file on first
# use; production refuses to start without one (docs/decisions/0035-registry-signing-key-is-provided.md).
TRAIN_REGISTRY_SIGNING_KEY_PEM = os.environ.get("TRAIN_REGISTRY_SIGNING_KEY_PEM", "")
TRAIN_REGISTRY_SIGNING_KEY = Path(
    os.environ.get("TRAIN_REGISTRY_SIGNING_KEY", TRAIN_DATA_DIR / "registry" / "token-signing-key.pem")
)
TRAIN_REGISTRY_SIGNING_KEY_CREATE = not PRODUCTION
if PRODUCTION and not TRAIN_REGISTRY_SIGNING_KEY_PEM and not TRAIN_REGISTRY_SIGNING_KEY.is_file():
    raise ImproperlyConfigured(
        "Production needs the registry's token signing key, shared by every gateway: set "
        "TRAIN_REGISTRY_SIGNING_KEY to a PEM file or TRAIN_REGISTRY_SIGNING_KEY_PEM to its text "
        "(openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out signing-key.pem)."
    )
TRAIN_REGISTRY_TOKEN_TTL_SECONDS = env_int("TRAIN_REGISTRY_TOKEN_TTL_SECONDS", 300)
# Blob store: "filesystem" (under TRAIN_REGISTRY_DATA_DIR) or "s3" (any S3-compatible endpoint).
TRAIN_REGISTRY_STORE = os.environ.get("TRAIN_REGISTRY_STORE", "filesystem")
TRAIN_REGISTRY_DATA_DIR = Path(os.environ.get("TRAIN_REGISTRY_DATA_DIR", TRAIN_DATA_DIR / "registry")).resolve()
TRAIN_REGISTRY_S3_BUCKET = os.environ.get("TRAIN_REGISTRY_S3_BUCKET", "")
TRAIN_REGISTRY_S3_PREFIX = os.environ.get("TRAIN_REGISTRY_S3_PREFIX", "registry/")
TRAIN_REGISTRY_S3_ENDPOINT_URL = os.environ.get("TRAIN_REGISTRY_S3_ENDPOINT_URL", "") or None
TRAIN_REGISTRY_S3_REGION = os.environ.get("TRAIN_REGISTRY_S3_REGION", "us-east-1")
# Limits: manifests as distribution caps them, list pages as after
# CVE-2023-2253, unfinished uploads kept a day, and failed logins per presented key id and per client
# address (docs/decisions/0034-login-limit-per-key-and-address.md).
TRAIN_REGISTRY_MAX_MANIFEST_BYTES = env_int("TRAIN_REGISTRY_MAX_MANIFEST_BYTES", 4 * 1024 * 1024)
TRAIN_REGISTRY_MAX_BLOB_BYTES = env_int("TRAIN_REGISTRY_MAX_BLOB_BYTES", 64 * 1024**3)
TRAIN_REGISTRY_MAX_PAGE = env_int("TRAIN_REGISTRY_MAX_PAGE", 1000)
# Seconds an upload body may go without a single byte before the gateway cuts it off (408; the upload
# stays resumable at its last offset). There is no limit on a body's total duration while bytes flow.
TRAIN_REGISTRY_BODY_IDLE_SECONDS = env_int("TRAIN_REGISTRY_BODY_IDLE_SECONDS", 60)
TRAIN_REGISTRY_UPLOAD_TTL_SECONDS = env_int("TRAIN_REGISTRY_UPLOAD_TTL_SECONDS", 24 * 3600)
# Seconds a request's claim on an upload session lasts without renewal (renewed while its bytes flow).
# Only the holder writes; after a holder dies, the session accepts bytes again once this has passed.
TRAIN_REGISTRY_UPLOAD_LEASE_SECONDS = env_int("TRAIN_REGISTRY_UPLOAD_LEASE_SECONDS", 60)
# Per account: bytes of the blobs in its repositories plus its unfinished uploads (0: no quota), and how
# many upload sessions may be open at once.
TRAIN_REGISTRY_ACCOUNT_QUOTA_BYTES = env_int("TRAIN_REGISTRY_ACCOUNT_QUOTA_BYTES", 500 * 1024**3)
TRAIN_REGISTRY_MAX_OPEN_UPLOADS = env_int("TRAIN_REGISTRY_MAX_OPEN_UPLOADS", 100)
# Mirroring: a blob above 64 MiB goes to the target registry in PATCH chunks of this many bytes (0: the
# copier's default, 256 MiB); a killed copy resumes at the target's offset, re-sending at most one chunk.
TRAIN_MIRROR_CHUNK_BYTES = env_int("TRAIN_MIRROR_CHUNK_BYTES", 0)
TRAIN_REGISTRY_LOGIN_FAILURES = env_int("TRAIN_REGISTRY_LOGIN_FAILURES", 10)
TRAIN_REGISTRY_LOGIN_WINDOW_SECONDS = env_int("TRAIN_REGISTRY_LOGIN_WINDOW_SECONDS", 600)
# Garbage collection (registry/gc.py, docs/decisions/0038-*.md). An upload session that received no
# bytes for this long is discarded with its bytes, freeing the account's slot (seconds; a client whose
# connection dropped resumes within minutes or starts over).
TRAIN_REGISTRY_UPLOAD_IDLE_SECONDS = env_int("TRAIN_REGISTRY_UPLOAD_IDLE_SECONDS", 3600)
# How long a blob no manifest references is kept after its last push or mount, and a blob file without
# a row after its last write (seconds). It must cover a whole push: clients upload every blob before the
# manifest naming them, and a multi-GB push over a slow link takes hours. A day, as long as an upload
# session may live, and far above the idle timeout (so a promoted upload file is never taken for an
# orphan).
TRAIN_REGISTRY_GC_GRACE_SECONDS = env_int("TRAIN_REGISTRY_GC_GRACE_SECONDS", 24 * 3600)
# How often the worker runs the whole collection (minutes; idle uploads are reclaimed every 10).
TRAIN_REGISTRY_GC_INTERVAL_MINUTES = env_int("TRAIN_REGISTRY_GC_INTERVAL_MINUTES", 60)

# --- Backends -------------------------------------------------------------------------------------
TRAIN_LOCAL_BACKEND = env_bool("TRAIN_LOCAL_BACKEND", default=not PRODUCTION)
# A local job runs on the Train host. Even isolated (docs/backends/local.md) it shares the host's
# kernel, CPU and disk with Train and every other account's jobs: production must say that one tenant
# (or only trusted ones) uses this deployment.
TRAIN_LOCAL_SINGLE_TENANT = env_bool("TRAIN_LOCAL_SINGLE_TENANT", False)
if PRODUCTION and TRAIN_LOCAL_BACKEND and not TRAIN_LOCAL_SINGLE_TENANT:
    raise ImproperlyConfigured(
        "TRAIN_LOCAL_BACKEND=1 in production runs every account's jobs on this host; set "
        "TRAIN_LOCAL_SINGLE_TENANT=1 to confirm the deployment serves a single tenant (docs/backends/local.md)."
    )
TRAIN_LOCAL_RUN_DIR = TRAIN_DATA_DIR / "local-jobs"
TRAIN_LOCAL_MOUNT_ROOTS = [
    Path(p).resolve() for p in env_list("TRAIN_LOCAL_MOUNT_ROOTS", [str(TRAIN_DATA_DIR / "storage")])
]
if any(root == TRAIN_DATA_DIR or root in TRAIN_DATA_DIR.parents for root in TRAIN_LOCAL_MOUNT_ROOTS):
    raise ImproperlyConfigured("TRAIN_LOCAL_MOUNT_ROOTS may not contain TRAIN_DATA_DIR: jobs could mount its files.")
TRAIN_LOCAL_KILL_GRACE_SECONDS = env_int("TRAIN_LOCAL_KILL_GRACE_SECONDS", 10)
# When Train runs as root, each local job runs as a user id of its own from
# [BASE, BASE + COUNT): no passwd entry is needed, and COUNT bounds how many jobs run at once.
TRAIN_LOCAL_JOB_UID_BASE = env_int("TRAIN_LOCAL_JOB_UID_BASE", 2_000_000)
TRAIN_LOCAL_JOB_UID_COUNT = env_int("TRAIN_LOCAL_JOB_UID_COUNT", 1000)
# Above the 16-bit range where system and login users live, and below 2^31 (tools that read ids as
# signed 32-bit numbers): a job id must never be a real user's, let alone root's.
if TRAIN_LOCAL_JOB_UID_BASE < 65536 or TRAIN_LOCAL_JOB_UID_COUNT < 1 or \
        TRAIN_LOCAL_JOB_UID_BASE + TRAIN_LOCAL_JOB_UID_COUNT > 2**31:
    raise ImproperlyConfigured("TRAIN_LOCAL_JOB_UID_BASE must be at least 65536, with BASE + COUNT at most 2^31.")
# "none": an isolated job gets a network namespace with loopback only (no database, metadata service
# or internet); "host": the host's network (then it can reach whatever the host can).
TRAIN_LOCAL_JOB_NETWORK = os.environ.get("TRAIN_LOCAL_JOB_NETWORK", "none")
if TRAIN_LOCAL_JOB_NETWORK not in ("none", "host"):
    raise ImproperlyConfigured("TRAIN_LOCAL_JOB_NETWORK must be 'none' or 'host'.")

# How a local job runs: "auto" uses podman, else docker, when one answers its health check, and falls
# back to a host process (the image is then not run); "podman"/"docker" insist on that engine (jobs fail
# to start without it); "process" never uses an engine (docs/backends/local.md).
TRAIN_LOCAL_RUNTIME = os.environ.get("TRAIN_LOCAL_RUNTIME", "auto")
if TRAIN_LOCAL_RUNTIME not in ("auto", "podman", "docker", "process"):
    raise ImproperlyConfigured("TRAIN_LOCAL_RUNTIME must be 'auto', 'podman', 'docker' or 'process'.")
# Images outside Train's registry (docker.io/…, ghcr.io/…) are pulled as they are unless this is off.
TRAIN_LOCAL_ALLOW_EXTERNAL_IMAGES = env_bool("TRAIN_LOCAL_ALLOW_EXTERNAL_IMAGES", True)
# podman's configuration, image store and state for local jobs: Train's own, never the user's.
TRAIN_LOCAL_CONTAINERS_DIR = TRAIN_DATA_DIR / "containers"
# The hourly prune of that image store keeps the images of local jobs that finished this recently.
TRAIN_LOCAL_IMAGE_KEEP_HOURS = env_int("TRAIN_LOCAL_IMAGE_KEEP_HOURS", 24)


def default_local_path() -> str:
    """The system directories, after the one holding the python3 Train's own PATH finds first (a
    pyenv or /opt python), leaving out Train's virtualenv: jobs should not run in Train's environment."""
    venv_bin = (Path(sys.prefix) / "bin").resolve() if sys.prefix != sys.base_prefix else None
    dirs = []
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if entry and Path(entry).resolve() != venv_bin and shutil.which("python3", path=entry):
            dirs.append(entry)
            break
    dirs += [d for d in ("/usr/local/bin", "/usr/bin", "/bin") if d not in dirs]
    return os.pathsep.join(dirs)


# The PATH a local job's command is looked up on (a command without "/" is searched here; one with
# "/" is relative to the job's work directory).
TRAIN_LOCAL_PATH = os.environ.get("TRAIN_LOCAL_PATH") or default_local_path()
# sagemaker: an account's endpoints (`endpoint_url`, `sts_endpoint_url`, `logs_endpoint_url`,
# `ecr_endpoint_url`: VPC endpoints, emulators) may only name these hosts (exact, or a leading "." for
# any host name under it), so no account can aim Train's signed AWS requests at an internal service (decision 0057).
TRAIN_AWS_ENDPOINT_HOSTS = env_list(
    "TRAIN_AWS_ENDPOINT_HOSTS",
    [".amazonaws.com", ".amazonaws.com.cn", ".api.aws"] + ([] if PRODUCTION else ["localhost", "127.0.0.1"]),
)
# sagemaker: the registry hosts an account's `registry_endpoint` (where mirrored images are pushed instead
# of ECR's own proxyEndpoint: a proxy or an emulator) may name. Train sends the account's ECR token there,
# so the list is as strict as TRAIN_AWS_ENDPOINT_HOSTS (exact hosts, or a leading "." for any host under it).
TRAIN_AWS_REGISTRY_HOSTS = env_list(
    "TRAIN_AWS_REGISTRY_HOSTS",
    [".amazonaws.com", ".amazonaws.com.cn"] + ([] if PRODUCTION else ["localhost", "127.0.0.1"]),
)
# Mirror targets on Google Cloud and Azure: endpoint overrides (emulators, private endpoints) may only
# name these hosts, so no account can aim Train's Google or Entra ID tokens at another service.
TRAIN_GOOGLE_ENDPOINT_HOSTS = env_list(
    "TRAIN_GOOGLE_ENDPOINT_HOSTS",
    [".googleapis.com", ".pkg.dev"] + ([] if PRODUCTION else ["localhost", "127.0.0.1"]),
)
TRAIN_AZURE_ENDPOINT_HOSTS = env_list(
    "TRAIN_AZURE_ENDPOINT_HOSTS",
    [".azurecr.io", "login.microsoftonline.com"] + ([] if PRODUCTION else ["localhost", "127.0.0.1"]),
)
# Each backend's own settings (poll interval bounds, read timeouts) are TRAIN_<BACKEND>_<NAME>, read
# and checked by backends/common/settings.py, not here: TRAIN_SAGEMAKER_POLL_SECONDS,
# TRAIN_SAGEMAKER_READ_TIMEOUT_SECONDS (alias TRAIN_AWS_READ_TIMEOUT_SECONDS), TRAIN_VERTEX_AI_POLL_SECONDS…

# azure-ml: Train's own multi-tenant Entra ID app, used in each customer's tenant (the tenant_id an
# account configures). Exactly one credential: a client secret, a certificate (PEM with its private
# key), or a federated token file (workload identity: the file holds a JWT Train's platform renews).
# Deployment settings only: no account stores an Azure secret (docs/backends/azure-ml.md).
TRAIN_AZURE_CLIENT_ID = os.environ.get("TRAIN_AZURE_CLIENT_ID", "")
TRAIN_AZURE_CLIENT_SECRET = os.environ.get("TRAIN_AZURE_CLIENT_SECRET", "")
TRAIN_AZURE_CLIENT_CERTIFICATE_PATH = os.environ.get("TRAIN_AZURE_CLIENT_CERTIFICATE_PATH", "")
TRAIN_AZURE_FEDERATED_TOKEN_FILE = os.environ.get("TRAIN_AZURE_FEDERATED_TOKEN_FILE", "")
# The Entra ID authority Train's app signs in at (a sovereign cloud's, or an emulator outside production).
TRAIN_AZURE_AUTHORITY = os.environ.get("TRAIN_AZURE_AUTHORITY", "https://login.microsoftonline.com").rstrip("/")
if PRODUCTION and not TRAIN_AZURE_AUTHORITY.startswith("https://"):
    raise ImproperlyConfigured("TRAIN_AZURE_AUTHORITY must be an https URL in production.")
# azure-ml: the hosts Train sends its ARM token to (an account's `arm_endpoint`, a workspace's
# run-history endpoint from its discovery URL) and reads run-history log files from: exact hosts, or a
# leading "." for any host under it.
TRAIN_AZURE_ML_ENDPOINT_HOSTS = env_list(
    "TRAIN_AZURE_ML_ENDPOINT_HOSTS",
    ["management.azure.com", ".api.azureml.ms", ".blob.core.windows.net"]
    + ([] if PRODUCTION else ["localhost", "127.0.0.1"]),
)
# azure-ml's read timeout and poll bounds follow the per-backend convention (backends/common/settings.py):
# TRAIN_AZURE_ML_READ_TIMEOUT_SECONDS (alias TRAIN_AZURE_READ_TIMEOUT_SECONDS), TRAIN_AZURE_ML_POLL_SECONDS.

# --- Cloud emulator (development only) -------------------------------------------------------------
# A base URL (http://127.0.0.1:P) that serves fakes of every cloud Train speaks to (the test suite's
# `python -m tests.fakecloud`). When set, each cloud backend sends all of its calls there: its APIs,
# Train's own cloud credentials (token endpoints) and its registries' logins, so an account
# configures a backend with its usual fields alone. Refused in production: it would send every
# account's jobs to whatever listens there.
TRAIN_CLOUD_EMULATOR = os.environ.get("TRAIN_CLOUD_EMULATOR", "").rstrip("/")
if PRODUCTION and TRAIN_CLOUD_EMULATOR:
    raise ImproperlyConfigured("TRAIN_CLOUD_EMULATOR is for development: production talks to the real clouds.")
if TRAIN_CLOUD_EMULATOR and not TRAIN_CLOUD_EMULATOR.startswith(("http://127.0.0.1:", "http://localhost:")):
    raise ImproperlyConfigured("TRAIN_CLOUD_EMULATOR must be http://127.0.0.1:<port> or http://localhost:<port>.")

# --- Fault injection (tests only) -----------------------------------------------------------------
TRAIN_FAULTS = "" if PRODUCTION else os.environ.get("TRAIN_FAULTS", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("TRAIN_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
