"""SynthRead settings: every value comes from the environment, with safe local defaults.

With nothing set, SynthRead runs on the embedded default: SQLite, media on local disk and a
Celery broker on the file system, all under ``var/``. Production (and ``make test``) sets
``DATABASE_URL`` and ``CELERY_BROKER_URL`` to PostgreSQL and Redis.
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

VAR_DIR = Path(env("SYNTHREAD_VAR_DIR", default=str(BASE_DIR / "var")))

INSECURE_DEVELOPMENT_KEY = "INSECURE-development-key-set-DJANGO_SECRET_KEY-in-production"
SECRET_KEY = env("DJANGO_SECRET_KEY", default=INSECURE_DEVELOPMENT_KEY)
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "readerstudy.core",
    "generator",
    "readerstudy.reading",
    "readerstudy.results",
    "readerstudy.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # A refused request (ApplicationError) becomes a page message; nothing else is caught.
    "readerstudy.core.middleware.ApplicationErrorMiddleware",
    # Last, as django-axes asks: answers a locked-out login with the lockout page.
    "axes.middleware.AxesMiddleware",
]

# Logins (the one form, the admins' too) lock out after repeated failures, per account and per
# address (django-axes): the sixth wrong password of an account, or from an address, in an hour
# is refused with a clear page; an admin unlocks in the admin (Axes → Access attempts: delete)
# or with `manage.py axes_reset_username NAME`; the lock also lifts by itself after the hour.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
# Axes locks on the attempt that reaches its limit: five wrong passwords are answered as such,
# the sixth is the lockout.
LOGIN_FAILURES_ALLOWED = env.int("LOGIN_FAILURES_ALLOWED", default=5)
AXES_FAILURE_LIMIT = LOGIN_FAILURES_ALLOWED + 1
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # each on its own: an account, an address
AXES_COOLOFF_TIME = timedelta(hours=env.float("LOGIN_LOCKOUT_HOURS", default=1.0))
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"

ROOT_URLCONF = "readerstudy.urls"
WSGI_APPLICATION = "readerstudy.wsgi.application"

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
                "readerstudy.core.roles.role_context",
                "readerstudy.core.health.broker_context",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'synthread.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # The web process and the worker write to one file: wait for the lock instead of failing,
        # and take it at BEGIN so a read-then-write (claiming a job) cannot interleave.
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if env.bool("DATABASE_PREPARED_STATEMENTS", default=True):
        # Each reading request repeats the same few queries; prepared on a connection after 5 uses,
        # PostgreSQL skips parsing and planning them (about half of its CPU per request). Parameters
        # must then travel apart from the SQL (server-side binding). Off behind a PgBouncer in
        # transaction mode, which cannot keep a connection's prepared statements.
        DATABASES["default"]["OPTIONS"] = {"server_side_binding": True, "prepare_threshold": 5}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth ---------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "landing"

# Behind HTTPS (production), cookies travel only over TLS; off by default so the local demo works.
HTTPS = env.bool("DJANGO_HTTPS", default=False)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SESSION_COOKIE_HTTPONLY = True
# The reverse proxies in front of the web processes: the client's address is the one the nearest
# of them appended to X-Forwarded-For (a client can write anything in front of it). Production
# (DJANGO_HTTPS) sits behind one by default; without a proxy the address is the connection's.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=1 if HTTPS else 0)
# python-ipware (the lockout's and the reset limit's address) counts the proxies *listed* in
# X-Forwarded-For, and the nearest one is never listed (its address is the connection's): behind
# one proxy the client is the last entry, ipware's count 0. With 1 it found no client behind Caddy,
# which writes only the client's address, and every address became one (tests/system/test_proxy.py).
AXES_IPWARE_PROXY_COUNT = TRUSTED_PROXY_COUNT - 1 if TRUSTED_PROXY_COUNT else None
AXES_IPWARE_META_PRECEDENCE_ORDER = ("HTTP_X_FORWARDED_FOR",) if TRUSTED_PROXY_COUNT else ("REMOTE_ADDR",)
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=3600)

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Files ----------------------------------------------------------------------------------
STATIC_URL = "static/"
# The production image collects static files when it is built (each web container has its own
# copy, so web nodes share no disk); elsewhere bin/web collects them into var/.
STATIC_ROOT = Path(env("STATIC_ROOT", default=str(VAR_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(VAR_DIR / "media")))

# Volumes, checkpoints and bank images go through Django's storage API only, so an S3/MinIO
# bucket replaces local disk by setting STORAGE_BACKEND=storages.backends.s3.S3Storage and the
# AWS_* variables below; no code changes.
STORAGES = {
    "default": {"BACKEND": env("STORAGE_BACKEND", default="django.core.files.storage.FileSystemStorage")},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# "or None": docker-compose passes an unset variable as an empty string, which boto3 would take
# for an endpoint or a key.
AWS_STORAGE_BUCKET_NAME = env("AWS_STORAGE_BUCKET_NAME", default=None) or None
AWS_S3_ENDPOINT_URL = env("AWS_S3_ENDPOINT_URL", default=None) or None
AWS_S3_REGION_NAME = env("AWS_S3_REGION_NAME", default=None) or None
AWS_ACCESS_KEY_ID = env("AWS_ACCESS_KEY_ID", default=None) or None
AWS_SECRET_ACCESS_KEY = env("AWS_SECRET_ACCESS_KEY", default=None) or None
AWS_DEFAULT_ACL = None
AWS_QUERYSTRING_AUTH = True
# Each web process keeps the bank images it has served (their bytes never change), so a reader's
# timed image does not wait for S3 again: at 256² an image is 65 kB, 64 MiB hold about a thousand.
READER_IMAGE_CACHE_MB = env.int("READER_IMAGE_CACHE_MB", default=64)

# Largest volume upload accepted (a single file, a DICOM folder or a zip of one), in bytes.
VOLUME_MAX_UPLOAD_BYTES = env.int("VOLUME_MAX_UPLOAD_BYTES", default=1024**3)
# Largest volume decoded, in voxels, checked from the headers before any pixel is decoded (a
# compressed or DICOM upload can decode to far more than its bytes): 100 M voxels are 400 MB as
# float32; a 1 mm T1-weighted head is about 11 M (256 × 256 × 176).
VOLUME_MAX_VOXELS = env.int("VOLUME_MAX_VOXELS", default=100_000_000)

# The key of the HMAC that links DICOM series of one patient to one subject without storing the
# patient ID (generator.subjects). Not SECRET_KEY: rotating that must not split every subject.
# Every machine that ingests must share it; unset, the embedded default generates one into
# SUBJECT_HASH_KEY_FILE on first use.
SUBJECT_HASH_KEY = env("SUBJECT_HASH_KEY", default="")
SUBJECT_HASH_KEY_FILE = VAR_DIR / "subject-hash.key"

# Where a worker keeps a training run's checkpoints while it trains (local disk); the run is
# mirrored to the storage above after every checkpoint, so any worker can resume it.
TRAINING_WORK_DIR = Path(env("TRAINING_WORK_DIR", default=str(VAR_DIR / "training")))
# Where a worker copies an upload's files while it ingests them (each removed once ingested; a
# worker starting up removes what a killed one left: generator.uploads).
UPLOAD_WORK_DIR = Path(env("UPLOAD_WORK_DIR", default=str(VAR_DIR / "uploads")))
# Django spools an upload over 2.5 MB to a file during the request: here, not /tmp, and bin/web
# empties the folder when it starts, so a killed web process leaves no raw upload behind.
FILE_UPLOAD_TEMP_DIR = str(VAR_DIR / "upload-tmp")
TRAINING_CHECKPOINT_EVERY_S = env.float("TRAINING_CHECKPOINT_EVERY_S", default=300.0)
# A generator whose synthetic pairs are more alike than real pairs by more than this (MS-SSIM) has
# collapsed: its page says so, and the bank is not filled from it without an admin's stated reason.
GENERATOR_COLLAPSE_MARGIN = env.float("GENERATOR_COLLAPSE_MARGIN", default=0.10)

# --- Celery --------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://localhost/")
FILESYSTEM_BROKER_DIR = VAR_DIR / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's filesystem transport: producer and consumer share one folder of message files.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(FILESYSTEM_BROKER_DIR / "queue"),
        "data_folder_out": str(FILESYSTEM_BROKER_DIR / "queue"),
        "control_folder": str(FILESYSTEM_BROKER_DIR / "control"),
        "processed_folder": str(FILESYSTEM_BROKER_DIR / "processed"),
        "store_processed": False,
    }
else:
    # Redis hands an unacknowledged message to another worker after this long. Training runs
    # for hours, so a short timeout would start duplicate deliveries; dead workers are handled
    # by the job lease instead (readerstudy/core/jobs.py), which does not wait for this.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT_S", default=12 * 3600)}
# No result backend: a job keeps its state, progress and log on its own row
# (readerstudy/core/jobs.py) and nothing reads what a task returns, so storing it would be a
# write per task, beat's every 30 s included, that nobody reads.
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
# Routes by task name: GPU work (training, bank filling) goes to the `gpu` queue, whose worker
# runs one task at a time; everything else to `default`.
CELERY_TASK_ROUTES = {
    "generator.tasks.training_*": {"queue": "gpu"},
    "generator.tasks.bank_fill_*": {"queue": "gpu"},
}
# A message is acknowledged only after its task finished, so a crash never silently drops one;
# tasks are idempotent (job rows, leases), so running a redelivered message again is safe.
CELERY_TASK_ACKS_LATE = True
# One message at a time per worker process: a long training task must not sit on messages that
# another, idle worker could run.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# With late acks, a task interrupted by a lost broker connection is redelivered anyway; cancel
# it rather than let it finish twice.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Job leases (readerstudy/core/jobs.py) --------------------------------------------------------
# A running job's heartbeat, every JOB_LEASE_HEARTBEAT_S, renews its lease, writes its progress
# and reads cancel requests (so progress reaches the page within seconds). A lease not renewed
# for JOB_LEASE_TTL_S means its worker died: the job is re-queued by the next worker to start
# and by the periodic check every JOB_LEASE_CHECK_S, so a dead worker costs about a minute.
JOB_LEASE_TTL_S = env.float("JOB_LEASE_TTL_S", default=60.0)
JOB_LEASE_HEARTBEAT_S = env.float("JOB_LEASE_HEARTBEAT_S", default=3.0)
JOB_LEASE_CHECK_S = env.float("JOB_LEASE_CHECK_S", default=30.0)
JOB_MAX_ATTEMPTS = env.int("JOB_MAX_ATTEMPTS", default=5)
# Each worker writes a heartbeat row this often; /healthz counts a worker alive for three beats.
WORKER_HEARTBEAT_S = env.float("WORKER_HEARTBEAT_S", default=10.0)
# /healthz gives anyone ok / not ok; its details (host names, error texts) go to admins and to
# monitoring that sends "Authorization: Bearer <HEALTHZ_TOKEN>" (unset: admins only).
HEALTHZ_TOKEN = env("HEALTHZ_TOKEN", default="")

CELERY_BEAT_SCHEDULE = {
    "requeue-jobs-with-lapsed-leases": {
        "task": "readerstudy.tasks.jobs_requeue_lapsed",
        "schedule": JOB_LEASE_CHECK_S,
    },
}

# --- API -------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # The browser's session, or an API token for scripts ("Authorization: Token <key>": exports).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # ApplicationError → 400/409 with its message, once for every endpoint.
    "EXCEPTION_HANDLER": "readerstudy.core.api.exception_handler",
    # Guessing and scraping slowed; the reader's own endpoints (a session's state, calls, viewing)
    # are exempt: a reader's call must never be refused by a throttle in the middle of a session.
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    # The throttles' client address: X-Forwarded-For's entry that the nearest trusted proxy wrote
    # (0: the connection's address; a client's own X-Forwarded-For is then ignored).
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    "DEFAULT_THROTTLE_RATES": {
        "anon": env("API_THROTTLE_ANON", default="120/minute"),
        "user": env("API_THROTTLE_USER", default="3000/hour"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "SynthRead API",
    "DESCRIPTION": "Blinded real-or-synthetic reader studies of GAN-made brain MR images.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Swagger UI's files ship with the app (no CDN): the platform must work offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # Several models have a "state" or a "role": name each choice set after its owner.
    "ENUM_NAME_OVERRIDES": {
        "JobStateEnum": "readerstudy.core.jobs.JobState",
        "StudyStateEnum": "readerstudy.reading.models.Study.State",
        "ReaderRoleEnum": "readerstudy.reading.models.Reader.Role",
        "UserRoleEnum": ["admins", "researchers", "readers", "none"],
    },
}

# Invitation links and password resets are e-mailed with absolute links to this address.
SITE_URL = env("SITE_URL", default="http://127.0.0.1:8000")
# An invitation is a password-reset link; readers may open it days after it was sent.
PASSWORD_RESET_TIMEOUT = env.int("PASSWORD_RESET_TIMEOUT_S", default=14 * 24 * 3600)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="synthread@localhost")
CONSOLE_EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
EMAIL_BACKEND = env("EMAIL_BACKEND", default=CONSOLE_EMAIL_BACKEND)
EMAIL_HOST = env("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=587)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=True)

# DJANGO_HTTPS=true is the production switch: refuse to start with what is safe only on a laptop.
# The public default key would let anyone forge sessions and reset links; the console backend
# writes every password-reset link (an admin's too) into the logs.
if HTTPS and SECRET_KEY == INSECURE_DEVELOPMENT_KEY:
    raise ImproperlyConfigured(
        "DJANGO_HTTPS=true (production) with the public default secret key: set DJANGO_SECRET_KEY to a long "
        "random value, e.g. python -c 'import secrets; print(secrets.token_urlsafe(50))'."
    )
if HTTPS and EMAIL_BACKEND == CONSOLE_EMAIL_BACKEND:
    raise ImproperlyConfigured(
        "DJANGO_HTTPS=true (production) with the console e-mail backend, which writes password-reset links "
        "into the logs: set EMAIL_BACKEND (django.core.mail.backends.smtp.EmailBackend, with EMAIL_HOST, "
        "EMAIL_PORT, EMAIL_HOST_USER, EMAIL_HOST_PASSWORD and EMAIL_USE_TLS)."
    )

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
