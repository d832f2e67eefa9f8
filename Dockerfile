# The meeting-rotations service; compose.yaml builds and runs it next to Kafka and PostgreSQL.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# libpq: the PostgreSQL client library that psycopg loads at run time.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq5 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY events/ events/
COPY service/ service/
COPY projections/ projections/
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /app rotations \
    && mkdir -p /app/data \
    && chown rotations /app/data

USER rotations
# All interfaces: the published port reaches the server through the container's own interface
# (outside a container the service listens on 127.0.0.1 only). The store's default is the
# user's data folder, which this user cannot create under /app: keep SQLite in /app/data.
ENV ROTATIONS_HTTP_HOST=0.0.0.0 \
    ROTATIONS_HTTP_PORT=8080 \
    ROTATIONS_STORE=sqlite:////app/data/rotations.sqlite
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=6 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('ROTATIONS_HTTP_PORT', '8080'); sys.exit(urllib.request.urlopen(f'http://127.0.0.1:{port}/health/ready', timeout=4).status != 200)"]
CMD ["rotations", "serve"]
