# dvrnet — the two commands of the contract are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Debian packages the data plane, the lab and the tests use.
DEB_PKGS := iproute2 nftables iptables iputils-ping arping tcpdump ethtool procps postgresql rabbitmq-server bird2 \
            openvswitch-switch openvswitch-common iperf3 gcc libc6-dev haproxy
# neutron-server (Neutron mode's lab and tests) in a venv of its own: its pins conflict with dvrnet's.
NEUTRON_VENV := .venv-neutron

.PHONY: all setup deb venv flowgen neutron-venv test test-unit demo clean lab-down
all: test

setup: deb venv flowgen

# The data-plane benchmark's traffic generator (C, src/dvrnet/bench/dvrflow.c), next to the venv's python.
flowgen: $(VENV)/bin/dvrflow
$(VENV)/bin/dvrflow: src/dvrnet/bench/dvrflow.c $(VENV)/.stamp
	gcc -O2 -Wall -Wextra -o $@ $<

# Install only what is missing; `apt-get update` first, as the machine needs it.
deb:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "not root: cannot install Debian packages:$$missing (kernel and lab suites will be skipped)"; \
	  fi; \
	fi

venv: $(VENV)/.stamp
$(VENV)/.stamp: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,neutron]'
	@touch $@

# Exactly the versions of requirements/neutron-server.txt; `--no-deps`: nothing else is resolved.
neutron-venv: $(NEUTRON_VENV)/.stamp
$(NEUTRON_VENV)/.stamp: requirements/neutron-server.txt
	rm -rf $(NEUTRON_VENV)
	$(PYTHON) -m venv $(NEUTRON_VENV)
	$(NEUTRON_VENV)/bin/python -m pip install -q --no-deps -r requirements/neutron-server.txt
	$(NEUTRON_VENV)/bin/neutron-server --version >/dev/null
	@touch $@

test: setup neutron-venv
	@bash scripts/run-tests.sh

test-unit: venv
	$(PY) -m pytest -q tests/unit

demo: setup
	@$(VENV)/bin/dvrnet demo

lab-down: venv
	@$(VENV)/bin/dvrnet lab down

clean:
	rm -rf $(VENV) $(NEUTRON_VENV) .pytest_cache .hypothesis
