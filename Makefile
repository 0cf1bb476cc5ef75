# Entry points: `make test` (every test, what CI runs), `make check` (the fast tier) and `make demo`.
# Each installs what it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# PROMETHEUS_BIN / ALERTMANAGER_BIN in the environment point the tests and the
# demo at other binaries; otherwise they are found on PATH.

.PHONY: test check demo bench venv system-deps deploy-deps apt-python-venv clean

test: venv system-deps deploy-deps client-deps
	cd client && npm test
	CLIENT_BROWSER_TEST=required $(PY) -m pytest

# The fast tier, after each edit: under a minute on 2 cores, no external programs (no Prometheus,
# Alertmanager, promtool, podman, node or browser). Leaves out the slow wall-clock tests (marker
# `slow`) and runs a tenth of the property tests' examples (Hypothesis profile in tests/conftest.py).
CHECK_PATHS = tests/unit tests/simulator tests/test_layers.py tests/grafana/test_dashboards.py
check: venv
	$(PY) -m pytest -q -m "not slow and not e2e" --hypothesis-profile=check $(CHECK_PATHS) -p no:cacheprovider

demo: venv system-deps
	@missing=""; command -v node >/dev/null 2>&1 || command -v nodejs >/dev/null 2>&1 || missing=" nodejs"; hint="(the demo goes on without its tile lines)"; ( $(APT_INSTALL_MISSING) ) || true
	$(PY) -m demo

# Benchmarks are not tests: each takes minutes and rewrites its section of bench/RESULTS.md.
bench: venv system-deps
	$(PY) -m pip install -q -e '.[test,bench]'
	$(PY) bench/exporter_scrape.py
	$(PY) bench/scrape_cost.py
	$(PY) bench/remediator_notification.py
	$(PY) bench/ghost_lifetime.py
	$(PY) bench/dead_node.py

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || $(MAKE) --no-print-directory apt-python-venv
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# Shell text: installs the Debian packages named in $$missing (as root), else names them (and
# $$hint) and fails. The recipe sets both first.
APT_INSTALL_MISSING = if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	  else \
	    echo "missing Debian packages:$$missing (apt-get install$$missing) $$hint" >&2; exit 1; \
	  fi; \
	fi

# Debian splits venv/ensurepip out of python3.
apt-python-venv:
	@if [ "$$(id -u)" = 0 ]; then \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv; \
	else echo "python3 cannot create a virtual environment: install the Debian package python3-venv" >&2; exit 1; fi

# Real Prometheus and Alertmanager (with promtool and amtool) for rule and end-to-end tests.
system-deps:
	@missing=""; \
	{ command -v promtool && { [ -n "$$PROMETHEUS_BIN" ] || command -v prometheus; }; } >/dev/null 2>&1 \
	  || missing="$$missing prometheus"; \
	{ command -v amtool && { [ -n "$$ALERTMANAGER_BIN" ] || command -v prometheus-alertmanager || command -v alertmanager; }; } >/dev/null 2>&1 \
	  || missing="$$missing prometheus-alertmanager"; \
	hint="or set PROMETHEUS_BIN/ALERTMANAGER_BIN"; $(APT_INSTALL_MISSING)

# What tests/deploy runs for real: podman with runc (the image), mmdebstrap (its stand-in
# base, from Debian packages: no container registry is reachable), systemd-analyze (the units).
deploy-deps:
	@missing=""; \
	for pair in podman:podman runc:runc mmdebstrap:mmdebstrap systemd-analyze:systemd; do \
	  command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; \
	done; \
	hint=""; $(APT_INSTALL_MISSING)

# The client kit (client/): node and npm for its tests against the real WebRTCAdaptor, Debian's
# Chromium for the browser test (tests/client), the adaptor versions from the lock file.
.PHONY: client-deps client-test
client-deps:
	@missing=""; \
	for pair in node:nodejs npm:npm chromium:chromium; do \
	  command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; \
	done; \
	hint=""; $(APT_INSTALL_MISSING)
	cd client && npm ci --no-audit --no-fund

# Here the browser test must run: a missing Chromium or package fails it instead of skipping it.
client-test: venv client-deps
	cd client && npm test
	CLIENT_BROWSER_TEST=required $(PY) -m pytest tests/client

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .hypothesis
