# syntax=docker/dockerfile:1
# Build stages: the pinned runtime dependencies (requirements.txt) installed into a virtualenv
# once; pip's cache and the test, lint and load tools never reach the runtime image.
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY requirements.txt ./
RUN python -m venv /venv && /venv/bin/pip install -r requirements.txt

# The compose file's load generator: the same virtualenv plus locust, at its pinned version.
FROM build AS build-locust
COPY requirements-dev.txt ./
RUN /venv/bin/pip install "$(grep -i '^locust==' requirements-dev.txt)"

FROM python:3.11-slim AS base
ENV PATH=/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    APP_HOST=0.0.0.0 APP_PORT=8000 TICKET_SPOOL_DIR=/var/spool/tickets
RUN useradd --system --uid 10001 --home /app app \
    && mkdir -p /var/spool/tickets && chown app /var/spool/tickets
WORKDIR /app

FROM base AS locust
COPY --from=build-locust /venv /venv
COPY --chown=app . .
USER app

# The runtime image, and the default target: the web server, Celery and manage.py.
FROM base AS runtime
COPY --from=build /venv /venv
COPY --chown=app . .
USER app
EXPOSE 8000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"APP_PORT\"]}/ping', timeout=2)"
# granian (config/serve.py): clients sending slow headers cannot hold its threads. Either
# server belongs behind a buffering proxy on the internet (README "Performance"); gunicorn is
# `gunicorn -c config/gunicorn.py config.wsgi`.
CMD ["python", "-m", "config.serve"]
