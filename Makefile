# The two commands a newcomer needs (see README.md). Both install what they need first.
# Everything Python runs from the project's own virtual environment (made by
# scripts/prereqs/10-python.sh): the system Python is never changed (PEP 668).
PYTHON := .venv/bin/python
OUT ?= build
# Extra answers for `make service`, e.g. ANSWERS="project_name='Billing API' port=8080".
ANSWERS ?=

.PHONY: service test test-fast lint

## Generate a service with the default answers into ./build and verify it (build + curl).
service:
	bash scripts/prereqs/10-python.sh
	rm -rf $(OUT)
	$(PYTHON) -m cookiecutter --no-input . --output-dir $(OUT) $(ANSWERS)

## Install every prerequisite (engines, Docker, stand-in images, tools), then run every tier.
test:
	bash scripts/install-prerequisites.sh
	$(PYTHON) -m pytest

## Only the fast tier: rendering, parity, validation, schemas, lint (seconds).
test-fast:
	bash scripts/prereqs/10-python.sh
	$(PYTHON) -m pytest -m "not slow and not docker and not pipeline and not update"

lint:
	bash scripts/prereqs/10-python.sh
	.venv/bin/ruff check hooks tests scripts benchmarks local_extensions.py
	.venv/bin/ruff format --check hooks tests scripts benchmarks local_extensions.py
