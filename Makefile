# Set-up commands that work on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.unetseg-installed

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first, pinned, so that no dependency pulls another (CUDA) build
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/unetseg demo

test: $(STAMP)
	@# Debian's Chromium for the browser test of the HTML report, only if missing; without it that test is skipped
	@test -x /usr/bin/chromium || { echo "installing chromium (Debian) for the HTML report's browser test"; \
	  (export DEBIAN_FRONTEND=noninteractive; apt-get install -y -qq chromium || (apt-get update -qq && \
	  apt-get install -y -qq chromium)) >/dev/null 2>&1 \
	  || echo "chromium could not be installed: the browser test of the HTML report will be skipped"; }
	$(PY) -m pytest -q

clean:
	rm -rf demo_output runs .pytest_cache
