# The two commands a newcomer needs (see README.md). Both install what they need first.
# Everything Python runs from the project's own virtual environment (made by
# harness/prerequisites/10-python.sh): the system Python is never changed (PEP 668).
PYTHON := .venv/bin/python
OUT ?= build
# Extra answers for `make service`, e.g. ANSWERS="project_name='Billing API' port=8080".
ANSWERS ?=

.PHONY: service test test-fast lint

## Generate a service with the default answers into ./build and verify it (build + curl).
service:
	bash harness/prerequisites/10-python.sh
	rm -rf $(OUT)
	$(PYTHON) -m cookiecutter --no-input . --output-dir $(OUT) $(ANSWERS)

## Install every prerequisite (engines, Docker, stand-in images, tools), then run every tier.
test:
	bash harness/install-prerequisites.sh
	$(PYTHON) -m pytest

## Only the fast tier: rendering, parity, validation, schemas, lint (seconds).
test-fast:
	bash harness/prerequisites/10-python.sh
	$(PYTHON) -m pytest -m "not slow and not docker and not pipeline and not update"

lint:
	bash harness/prerequisites/10-python.sh
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
