# One image for web, workers and beat, with the runtime lock only (no test, browser or lint
# tools). The GPU worker builds it with --build-arg LOCK=requirements-gpu.lock
# (tensorflow[and-cuda] and its CUDA libraries instead of tensorflow-cpu).
FROM python:3.11-slim

ARG LOCK=requirements.lock
# The git commit (the image has no .git), recorded in every audit bundle:
# docker compose build with SYNTHREAD_CODE_VERSION=$(git rev-parse HEAD).
ARG CODE_VERSION=unknown
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PYTHON=python \
    STATIC_ROOT=/app/staticfiles SYNTHREAD_VAR_DIR=/app/var SYNTHREAD_CODE_VERSION=$CODE_VERSION

WORKDIR /app
COPY requirements.lock requirements-gpu.lock ./
# Every package at the version and with the hash the lock names, or the build fails.
RUN pip install --no-cache-dir --require-hashes -r "$LOCK"

COPY . .
# Static files collected once, here, into the image: every web replica serves its own copy
# (whitenoise), so replicas share no disk and none collects at start.
RUN python manage.py collectstatic --noinput -v 0 \
    && useradd --create-home --uid 1000 synthread \
    && mkdir -p /app/var && chown synthread /app/var
USER synthread

EXPOSE 8000
CMD ["bin/web"]
