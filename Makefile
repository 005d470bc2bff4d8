# Tillit: `make run` starts everything, `make test` runs every test. Both set up what they need.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
export PYTHONUNBUFFERED := 1

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is needed (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(VENV)/.installed ## create the virtual environment and install the dependencies

run: install ## start the whole system in the foreground (Ctrl-C stops it)
	$(PY) -m tillit run

migrate: install ## create the database if missing and apply migrations
	$(PY) -m tillit migrate

test: install ## run every test against the real PostgreSQL and RabbitMQ (isolated per run)
	$(PY) -m pytest

lint: install ## ruff (lint and format) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy shared services tillit tests

format: install ## apply ruff's formatting and fixes
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install ## load benchmarks beside the machine's raw limits; writes docs/benchmarks.md
	$(PY) -m bench

load: install ## the intranet mix at rising rates until p99 passes 500 ms; writes docs/load.md and docs/load-latency.png
	$(PY) -m bench.mix

chaos: install ## the chaos suite: every fault under a steady load, then every projection against the truth
	$(PY) -m tests.chaos

browser: ## install Debian's Chromium, which the browser tests and screenshots drive (needs root)
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

screenshots: install browser ## PNGs of the web client's main screens, desktop and phone, into docs/screenshots/
	$(PY) -m tests.browser.screenshots

.PHONY: help install run migrate test lint format bench browser screenshots chaos load
