# Tollgate: `make run` (local stack), `make test` (offline suite), `make bench`, `make deploy STAGE=dev`,
# `make smoke STAGE=dev` (or BASE_URL=…).
# Python 3.13, the functions' runtime (`make package` refuses any other): the first python3.13 that runs,
# pyenv's included.
PYTHON ?= $(shell for p in python3.13 $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.13*/bin/python3.13 2>/dev/null) \
  python3; do $$p -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null && { command -v $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
# A .venv of another Python has no such marker: it is made anew.
INSTALLED := $(VENV)/.installed-3.13
STAGE ?= dev

.PHONY: run test bench package deploy smoke clean dashboard browser

$(INSTALLED): requirements.txt requirements-dev.txt
	@test -n "$(PYTHON)" || { echo "error: Python 3.13 not found (the Lambda functions run on python3.13): install it, e.g. \`pyenv install 3.13\` or your system's python3.13 package" >&2; exit 2; }
	$(BIN)/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null || { rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade "pip<26.3"  # chalice 1.34 requires pip<26.3
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(INSTALLED)

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --silent

dashboard: node_modules/.package-lock.json
	$(BIN)/python -m local.build_dashboard

browser:  # Debian's Chromium for the browser tests (never a downloaded browser build)
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	  || echo "chromium could not be installed: the browser tests will be skipped" >&2

run: $(INSTALLED) dashboard
	$(BIN)/python -m local.stack

# three workers on two cores, each taking whole files (module fixtures, ordered modules): much of the e2e time is
# waiting on stacks, pumps and caches in other processes, which a third worker fills
test: $(INSTALLED) dashboard browser
	$(BIN)/python -m pytest -n 3 --dist loadfile --no-loadscope-reorder

bench: $(INSTALLED)
	$(BIN)/python -m bench

package: $(INSTALLED)
	$(BIN)/python -m infra.package --stage $(STAGE)

deploy: $(INSTALLED)  # infra/deploy.sh checks the account, the stage and npm first, one line per missing piece
	STAGE=$(STAGE) PYTHON=$(BIN)/python infra/deploy.sh

smoke: $(INSTALLED)  # after a deploy: one line per check, non-zero on any failure (infra/smoke.py); BASE_URL wins over STAGE
	$(BIN)/python -m infra.smoke --stage "$(STAGE)" $(if $(BASE_URL),--base-url "$(BASE_URL)")

clean:
	rm -rf $(VENV) .tollgate dist .pytest_cache .hypothesis node_modules
