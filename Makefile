# Every target works from a fresh clone; `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MANAGE := $(BIN)/python manage.py

# The test suite talks to the PostgreSQL and Redis of this machine, or to throw-away ones that
# testkit/services.py starts when none answers there. pytest-django creates its own database
# (test_<name>) and the suite uses its own Redis db index.
TEST_ENV := DJANGO_ENV_FILE=/dev/null DATABASE_URL=$${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test} \
	REDIS_URL=$${TEST_REDIS_URL:-redis://127.0.0.1:6379/9} \
	CELERY_BROKER_URL=memory:// \
	DJANGO_SECRET_KEY=test-only DJANGO_ALLOWED_HOSTS=testserver,127.0.0.1,localhost \
	DJANGO_SECURE_SSL_REDIRECT=false LOG_LEVEL=WARNING DB_POOL_SIZE=40

.PHONY: help install install-runtime run serve serve-gunicorn migrate worker beat test test-smoke check lint fmt types imports fuzz audit up down

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

# Running needs only requirements.txt; the tests, linters and load tools come on top of it.
$(BIN)/.installed-runtime: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	mkdir -p staticfiles var
	touch $@

$(BIN)/.installed: $(BIN)/.installed-runtime requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed  ## create .venv and install everything pinned

install-runtime: $(BIN)/.installed-runtime  ## create .venv with what running the service needs only

run: install-runtime  ## install what running needs, migrate, demo admin, this hour's sale, serve on APP_PORT
	$(MANAGE) migrate --no-input
	$(MANAGE) demo_admin
	$(MANAGE) start_sale --hourly
	@url=$$($(BIN)/python -c 'from config.environment import server; print(server().url)'); printf '%s\n' "" \
		"  landing page   $$url/" \
		"  API docs       $$url/api/docs/" \
		"  dashboard      $$url/admin/  (admin / admin)" \
		"  health         $$url/health" \
		"  metrics        $$url/metrics" ""
	$(MAKE) --no-print-directory serve

serve: install-runtime  ## granian, configured from the environment (config/serve.py)
	$(BIN)/python -m config.serve

serve-gunicorn: install-runtime  ## gunicorn instead: only behind a buffering proxy such as nginx (README "Performance")
	$(BIN)/gunicorn -c config/gunicorn.py config.wsgi

migrate: install-runtime  ## apply migrations
	$(MANAGE) migrate --no-input

worker: install-runtime  ## a Celery worker
	$(BIN)/celery -A config worker --loglevel=INFO

beat: install-runtime  ## Celery beat (opens the hourly sale)
	$(BIN)/celery -A config beat --loglevel=INFO --schedule var/celerybeat-schedule

test: install  ## the whole suite on PostgreSQL and Redis (throw-away ones if none answers), then its smoke part on the embedded default
	$(TEST_ENV) $(BIN)/python -m testkit.services $(BIN)/pytest $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-smoke

test-smoke: install  ## the smoke tests with no variable set: SQLite, no Redis, no broker
	env -u DATABASE_URL -u DB_HOST -u REDIS_URL -u REDIS_HOST -u CELERY_BROKER_URL \
		DJANGO_ENV_FILE=/dev/null SQLITE_PATH=$$(mktemp -d)/smoke.sqlite3 $(BIN)/pytest -m smoke -q

lint: install  ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: install  ## ruff format and autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

types: install  ## mypy with django-stubs
	$(TEST_ENV) $(BIN)/mypy .

imports: install  ## the import contracts of pyproject.toml: the house's layers, no circles
	$(TEST_ENV) $(BIN)/lint-imports

check: lint types imports  ## lint + types + import contracts + missing migrations + tests (what CI runs)
	$(TEST_ENV) $(MANAGE) makemigrations --check --dry-run
	$(MAKE) --no-print-directory test

fuzz: install  ## schemathesis and the malformed-request sweep on a throw-away stack, up and with Redis or PostgreSQL down (FUZZ_SEED=random for a new seed)
	$(BIN)/python -m loadtests.fuzz $${FUZZ_SEED:+--seed $$FUZZ_SEED} $(FUZZ_ARGS)

audit: install  ## known vulnerabilities in the pinned runtime dependencies (needs the PyPI advisory service)
	$(BIN)/pip-audit --requirement requirements.txt --progress-spinner off

.PHONY: locust loadtest bench

locust: install  ## locust web UI on 127.0.0.1:LOCUST_WEB_PORT (8089) against LOCUST_HOST (http://127.0.0.1:8000)
	$(BIN)/locust -f loadtests/locustfile.py --host $${LOCUST_HOST:-http://127.0.0.1:8000} \
		--web-host $${LOCUST_WEB_HOST:-127.0.0.1} --web-port $${LOCUST_WEB_PORT:-8089} --class-picker $(LOCUST_ARGS)

loadtest: install  ## headless locust on its own stack (LOADTEST_USERS, _SPAWN_RATE, _DURATION), then the invariants
	$(BIN)/python -m loadtests.loadtest

bench: install  ## wrk on a stack of its own: every endpoint beside /ping; BENCH_BASELINE=<git ref> for A/B, BENCH_FLOOR=1 beside the floor
	@command -v wrk >/dev/null || { echo "make bench needs wrk (Debian/Ubuntu: sudo apt-get install wrk; macOS: brew install wrk)" >&2; exit 1; }
	$(BIN)/python -m loadtests.bench

up:  ## the full stack in Docker (PostgreSQL, Redis, web, worker, beat, locust)
	docker compose up --build

down:  ## stop the Docker stack
	docker compose down
