# Entry points for people and CI. Every target that needs the machine ready runs
# deploy/setup.sh first (about a quarter of a second when nothing is missing).
# Settings come from TICKETING_* environment variables; see ticketing/config.py.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
DEMO_EVENTS ?= 10000

.PHONY: help run test setup migrate demo reindex bench-search lint clean

help:
	@echo "make run           start the whole stack at http://127.0.0.1:8080 (Ctrl-C stops it)"
	@echo "make test          run the test suite against real servers (PYTEST_ARGS=... passes through)"
	@echo "make setup         install what is missing and start PostgreSQL, Redis, RabbitMQ"
	@echo "make migrate       apply database migrations"
	@echo "make demo          load demo data (DEMO_EVENTS=$(DEMO_EVENTS); skipped when present)"
	@echo "make reindex       rebuild the search collection with zero downtime"
	@echo "make bench-search  load-test search through the gateway (the stack must be running)"
	@echo "make lint          ruff, shell syntax and the rendered gateway config"
	@echo "make clean         remove generated state (.run/, caches); keeps .venv"

run:
	DEMO_EVENTS=$(DEMO_EVENTS) deploy/run.sh

setup:
	deploy/setup.sh

# pytest exits 5 when it collected nothing: a suite that silently ran zero tests must fail.
test: setup
	@status=0; $(VENV)/bin/pytest $(PYTEST_ARGS) || status=$$?; \
	if [ $$status -eq 5 ]; then \
		echo "make test: FAILED - pytest collected no tests (exit 5); check PYTEST_ARGS='$(PYTEST_ARGS)'" >&2; \
		exit 1; \
	fi; \
	exit $$status

migrate: setup
	$(PY) -m ticketing.db.migrate up

demo: migrate
	$(PY) -m ticketing.demo --events $(DEMO_EVENTS)

reindex: setup
	$(PY) -m search_sync reindex

bench-search: setup
	$(PY) bench/search.py

lint: setup
	$(VENV)/bin/ruff check .
	bash -n deploy/setup.sh deploy/run.sh .ci/run
	$(PY) -m deploy.render_nginx --output .run/lint/nginx.conf --prefix .run/lint/nginx
	PATH="$$PATH:/usr/sbin" nginx -t -q -c "$$PWD/.run/lint/nginx.conf" -p "$$PWD/.run/lint/nginx" -e stderr

clean:
	rm -rf .run .pytest_cache .ruff_cache .hypothesis bench/results
	find . -path ./.venv -prune -o -name __pycache__ -type d -exec rm -rf {} +
