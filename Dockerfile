# One image for web, workers and beat. The GPU worker builds it with
# --build-arg REQUIREMENTS=requirements-gpu.txt (tensorflow[and-cuda] instead of tensorflow-cpu).
FROM python:3.11-slim

ARG REQUIREMENTS=requirements.txt
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PYTHON=python

WORKDIR /app
COPY requirements.txt requirements-gpu.txt ./
RUN pip install --no-cache-dir -r "$REQUIREMENTS"

COPY . .
RUN useradd --create-home --uid 1000 synthread && mkdir -p /data && chown synthread /data
USER synthread

EXPOSE 8000
CMD ["bin/web"]
