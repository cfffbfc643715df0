# The image of the docker-compose demo (docker-compose.yml): aifdata with the demo extra.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1

WORKDIR /src

# As the README's install section: the pinned torch first (optional: the demo's PyTorch
# DataLoader step runs where it is installed), in its own layer so code changes keep it cached.
RUN pip install torch==2.13.0

COPY . .
# The demo extra, the catalog service's (aifdata serve over PostgreSQL), and the MinIO client for
# the compose file's setup service (docker/setup_bucket.py).
RUN pip install ".[demo,service,postgresql]" "minio>=7.2"

CMD ["aifdata", "demo"]
