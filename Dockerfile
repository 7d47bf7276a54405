# One image for every process of the product: the worker (default), the API, the one-shot
# `migrate` job and the example product's worker (`product-worker archive`). docker-compose.yml
# builds it; `docker build -t account-deletion .` works alone.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# An unprivileged user runs the processes; the code stays root-owned and read-only to them.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /home/app --create-home app

WORKDIR /app
COPY . /app

# Editable install: the code finds its SQL migrations in /app/migrations, beside the sources.
# Without the `dev` extra: the embedded Temporal and PostgreSQL wheels are for `dev` and tests.
# The bytecode is compiled here, while /app is writable: the workflow sandbox imports the
# workflow module again for every run, and without bytecode each import compiles it anew.
RUN pip install -e /app \
    && python -m compileall -q /app/contract /app/core /app/store /app/accounts /app/registry \
        /app/activities /app/workflows /app/starter /app/demo /app/service /app/kit \
        /app/worker.py

USER app

# SIGTERM reaches the process directly (exec form): the worker finishes running activities
# for WORKER_SHUTDOWN_SECONDS, so give `docker stop` a longer grace period than that.
CMD ["account-deletion", "worker"]
