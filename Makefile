# Two commands set everything up on a fresh Debian machine (as root) and run:
#   make demo   the main job: a sandbox DR drill of the example graph on this machine
#   make test   the whole test suite (lint, types, unit, property and integration tests)

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMPS := .make
APT_PACKAGES := python3 python3-venv python3-pip etcd-server etcd-client restic pgbackrest \
                postgresql-15 graphviz openssh-client openssh-server rsync sudo iproute2 openssl socat \
                chromium-headless-shell
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test test-quick lint typecheck system venv bench docs clean toolchain mutation fresh-check

demo: system venv toolchain
	$(BIN)/dr plan --graph stacks/cluster.yaml --mode drill
	DR_TOOLCHAIN_BIN=$$(cat $(STAMPS)/toolchain-bin) $(BIN)/dr drill --sandbox --graph stacks/cluster.yaml

test: system venv toolchain lint typecheck
	$(BIN)/dr docs --check
	DR_TOOLCHAIN_BIN=$$(cat $(STAMPS)/toolchain-bin) $(BIN)/pytest -q

# The real programs dr runs and is tested against (Pulumi engine, the pulumi-kubernetes provider,
# kube-apiserver, controller-manager, scheduler, kubectl, etcd 3.6, kwok), built from the Go module proxy
# into ~/.cache/dr/toolchain; only what is missing is built. README.md gives the cold and warm times.
toolchain: system
	@bash toolchain/build.sh > $(STAMPS)/toolchain-bin.new && mv $(STAMPS)/toolchain-bin.new $(STAMPS)/toolchain-bin
	@echo "toolchain: $$(cat $(STAMPS)/toolchain-bin)"

# The cold path: `make demo` and `make test` in a clone of HEAD with nothing beside it and empty HOME, Go
# module and build caches and toolchain directory, as on a new user's machine (about 90 minutes here).
# FRESH_DIR=DIR keeps it there; the README gives the measured times.
fresh-check:
	bash .ci/fresh-check

# Mutation testing of the core rules, critical path, leak scanner, collapse guard and resume
# (docs/testing.md has the last score). Slow; not part of `make test`.
mutation: venv
	$(BIN)/mutmut run --max-children 2 || true
	$(BIN)/mutmut results

# Unit and property tests only: skips the tests that start real etcd, PostgreSQL, restic, Ansible.
test-quick: venv
	$(BIN)/pytest -q -m "not integration"

lint: venv
	$(BIN)/ruff check dr tests bench
	$(BIN)/lint-imports
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/ansible-lint --offline --profile production -q playbooks/

typecheck: venv
	$(BIN)/mypy dr

bench: system venv
	$(BIN)/python bench/plan.py
	$(BIN)/python bench/restore.py
	$(BIN)/python bench/drill.py
	$(BIN)/python bench/gitops_import.py
	$(BIN)/python bench/scenarios.py

# Regenerate the runbook of the example graph (docs/recovery-order.*).
docs: system venv
	$(BIN)/dr docs

system: $(STAMPS)/apt
venv: $(STAMPS)/venv

# Debian packages: installed only when one is missing, so repeated runs stay fast and offline.
$(STAMPS)/apt: Makefile
	@mkdir -p $(STAMPS)
	@missing=$$(for p in $(APT_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "Installing Debian packages:" $$missing; \
	    $(SUDO) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@touch $@

$(STAMPS)/venv: pyproject.toml
	@mkdir -p $(STAMPS)
	@if ! $(PYTHON) -c 'import venv, ensurepip' 2>/dev/null; then $(MAKE) --no-print-directory system; fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

clean:
	rm -rf $(VENV) $(STAMPS) .pytest_cache .mypy_cache .ruff_cache .hypothesis mutants
