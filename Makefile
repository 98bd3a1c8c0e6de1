# Two entry points do all the set-up on a fresh machine:
#   make demo   the main job on the embedded default (SQLite + qdrant-edge), offline
#   make test   the whole test suite (real Postgres, real qdrant-edge, real open_clip)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# torch 2.14.1 + torchvision 0.29.1 are on these machines' disk (pip takes them from there)
TORCH ?= torch==2.14.1 torchvision==0.29.1
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: setup demo test lint typecheck check bench postgres system-deps clean

setup: $(VENV)/.installed system-deps

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check $(TORCH) 2>&1 | grep -v "is ignored" || true
	$(PIP) install --quiet --disable-pip-version-check -e '.[dev]' 2>&1 | grep -v "is ignored" || true
	$(PY) -c "import torch, torchvision, open_clip, qdrant_edge, knnvocab"
	touch $@

# real labelled photos used by the demo and the tests (Debian's labelme-examples), and a
# browser for the web console's tests (Debian's chromium + chromium-driver, headless)
system-deps:
	@dpkg -s labelme-examples >/dev/null 2>&1 || { \
		echo "installing labelme-examples (real labelled photos)"; \
		$(SUDO) apt-get install -y -q labelme-examples >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q labelme-examples >/dev/null; }; }
	@dpkg -s chromium chromium-driver >/dev/null 2>&1 || { \
		echo "installing chromium and chromium-driver (the web console's browser tests)"; \
		$(SUDO) apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q chromium chromium-driver >/dev/null; }; }

# start the local PostgreSQL cluster if it is installed but down
postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || { \
		echo "starting PostgreSQL"; \
		$(SUDO) pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | tail -n 1) main start; \
		for i in $$(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; }

demo: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo.sh

test: setup postgres
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check knnvocab tests bench
	$(VENV)/bin/ruff format --check knnvocab tests bench

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy knnvocab

check: lint typecheck test

bench: setup
	$(PY) bench/ingest.py
	$(PY) bench/segment.py
	$(PY) bench/knn.py

clean:
	rm -rf $(VENV) .knnvocab-demo demo-output .pytest_cache .mypy_cache .ruff_cache
