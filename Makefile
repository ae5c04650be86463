# Tollgate: `make run` (local stack), `make test` (offline suite), `make bench`, `make deploy STAGE=dev`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
STAGE ?= dev

.PHONY: run test bench deploy clean

$(INSTALLED): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(INSTALLED)

run: $(INSTALLED)
	$(BIN)/python -m local.stack

test: $(INSTALLED)
	$(BIN)/python -m pytest

bench: $(INSTALLED)
	$(BIN)/python -m bench

deploy:
	@echo "make deploy is not built yet: see the issue 'Deploy to AWS' (infra/ holds the tables and queue so far)." >&2
	@exit 2

clean:
	rm -rf $(VENV) .tollgate dist .pytest_cache .hypothesis
