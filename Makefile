# Entry points for people and CI. Every target that needs the machine ready runs
# deploy/setup.sh first (about a quarter of a second when nothing is missing).
# Settings come from TICKETING_* environment variables; see ticketing/config.py.

SHELL := /bin/bash
# Every target is the development workflow, as `make run` is: without TICKETING_ENV a process
# runs as prod and refuses the development secrets (README, Production).
export TICKETING_ENV ?= dev
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
DEMO_EVENTS ?= 10000

.PHONY: help run run-cluster test test-cluster check venv lock setup migrate demo reindex bench-search lint clean

help:
	@echo "make run           start the whole stack at http://127.0.0.1:8080 (Ctrl-C stops it)"
	@echo "make run-cluster   the same stack on clusters of local processes (PostgreSQL with"
	@echo "                   pg_auto_failover, RabbitMQ, Redis, Typesense) at"
	@echo "                   http://127.0.0.1:$(CLUSTER_PORT) (CLUSTER_PORT; CLUSTER_DEMO_EVENTS=$(CLUSTER_DEMO_EVENTS))"
	@echo "make test          run the test suite against real servers (PYTEST_ARGS=... passes through)"
	@echo "make test-cluster  the tests on local clusters (Redis Cluster and Sentinel, RabbitMQ,"
	@echo "                   Typesense, pg_auto_failover; the node-loss on-sale): CI runs it after make test"
	@echo "make check         the quality gate, no servers: format, ruff, mypy --strict, import"
	@echo "                   boundaries, unit tests (CI runs it before make test)"
	@echo "make setup         install what is missing and start PostgreSQL, Redis, RabbitMQ"
	@echo "make lock          re-pin requirements.lock from pyproject.toml (then make setup)"
	@echo "make migrate       apply database migrations"
	@echo "make demo          load demo data (DEMO_EVENTS=$(DEMO_EVENTS); skipped when present)"
	@echo "make reindex       rebuild the search collection with zero downtime"
	@echo "make bench-search  load-test search through the gateway (the stack must be running)"
	@echo "make lint          make check, shell syntax and the rendered gateway config (nginx -t)"
	@echo "make clean         remove generated state (.run/, caches); keeps .venv"

run:
	DEMO_EVENTS=$(DEMO_EVENTS) deploy/run.sh

# The clusters are processes of its own (deploy/run_cluster.py): setup installs what is
# missing and starts none of the machine's servers.
CLUSTER_PORT ?= 18080
CLUSTER_DIR ?= .run/cluster
CLUSTER_DEMO_EVENTS ?= 2000
run-cluster:
	deploy/setup.sh --no-servers
	$(PY) -m deploy.run_cluster --port $(CLUSTER_PORT) --dir $(CLUSTER_DIR) \
		--demo-events $(CLUSTER_DEMO_EVENTS)

setup:
	deploy/setup.sh

# The virtualenv alone, from requirements.lock: what `make check` needs, no servers started.
venv:
	deploy/setup.sh --venv-only

# requirements.lock pins every package of the project and its [servers] and [dev] extras,
# with hashes, for the Python 3.11 of deploy/setup.sh; requirements-image.lock the subset
# deploy/Dockerfile installs, at the same versions. The index comes from pip's own config.
PIP_COMPILE := $(VENV)/bin/pip-compile --quiet --strip-extras --allow-unsafe --generate-hashes \
	--no-emit-index-url --no-emit-find-links
lock: venv
	$(VENV)/bin/python -m pip install -q 'pip-tools>=7.4'
	$(PIP_COMPILE) --extra servers --extra dev --output-file requirements.lock pyproject.toml
	$(PIP_COMPILE) --output-file requirements-image.lock pyproject.toml deploy/image-requirements.in

# The quality gate: nothing here needs a server. mypy's files and strictness, and ruff's
# rules, are in pyproject.toml; import boundaries in .importlinter once it exists.
check: venv
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	@if [ -f .importlinter ]; then $(VENV)/bin/lint-imports; else echo "check: no .importlinter, import boundaries skipped"; fi
	@status=0; $(VENV)/bin/pytest tests/unit -q || status=$$?; \
	if [ $$status -eq 5 ]; then echo "make check: FAILED - no unit tests collected" >&2; exit 1; fi; \
	exit $$status

# pytest exits 5 when it collected nothing: a suite that silently ran zero tests must fail.
test: setup
	@status=0; $(VENV)/bin/pytest $(PYTEST_ARGS) || status=$$?; \
	if [ $$status -eq 5 ]; then \
		echo "make test: FAILED - pytest collected no tests (exit 5); check PYTEST_ARGS='$(PYTEST_ARGS)'" >&2; \
		exit 1; \
	fi; \
	exit $$status

# The tests that start clusters of their own (tests/conftest.py ON_CLUSTERS, marked
# "cluster", which make test deselects): with the node-loss on-sale they would not fit make
# test's 20 minutes, so a target of their own, which CI runs after it.
test-cluster: setup
	@status=0; $(VENV)/bin/pytest -m cluster $(PYTEST_ARGS) || status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test-cluster: FAILED - no tests collected" >&2; exit 1; fi; \
	exit $$status

migrate: setup
	$(PY) -m ticketing.db.migrate up

demo: migrate
	$(PY) -m ticketing.demo --events $(DEMO_EVENTS)

reindex: setup
	$(PY) -m search_sync reindex

bench-search: setup
	$(PY) bench/search.py

lint: setup check
	bash -n deploy/setup.sh deploy/run.sh .ci/run
	$(PY) -m deploy.render_nginx --output .run/lint/nginx.conf --prefix .run/lint/nginx
	PATH="$$PATH:/usr/sbin" nginx -t -q -c "$$PWD/.run/lint/nginx.conf" -p "$$PWD/.run/lint/nginx" -e stderr

clean:
	rm -rf .run .pytest_cache .ruff_cache .mypy_cache .hypothesis bench/results
	find . -path ./.venv -prune -o -name __pycache__ -type d -exec rm -rf {} +
