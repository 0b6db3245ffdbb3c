# syntax=docker/dockerfile:1
# Build stage: wheels compiled once, nothing of the toolchain reaches the runtime image.
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY requirements.txt requirements-dev.txt ./
RUN python -m venv /venv && /venv/bin/pip install -r requirements-dev.txt

FROM python:3.11-slim AS runtime
ENV PATH=/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    APP_HOST=0.0.0.0 APP_PORT=8000 TICKET_SPOOL_DIR=/var/spool/tickets
RUN useradd --system --uid 10001 --home /app app \
    && mkdir -p /var/spool/tickets && chown app /var/spool/tickets
COPY --from=build /venv /venv
WORKDIR /app
COPY --chown=app . .
USER app
EXPOSE 8000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"APP_PORT\"]}/ping', timeout=2)"
CMD ["gunicorn", "-c", "config/gunicorn.py", "config.wsgi"]
