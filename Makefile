# Two commands do everything on a fresh machine:  `make run`  and  `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8501
ADDRESS ?= 127.0.0.1

.PHONY: setup run test lint browser bench clean

$(STAMP): requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-deps -r requirements.lock
	$(PY) -m pip check
	touch $(STAMP)

setup: $(STAMP)

# Debian's Chromium for the browser tests (never `playwright install`).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -q chromium >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q chromium >/dev/null; }; }
	@chromium --version

# The source tree is watched only when developing (make run DEV=1): watching a folder that holds .venv floods the log.
WATCH := $(if $(DEV),auto,none)

run: setup
	$(PY) -m core sample
	$(PY) -m streamlit run app.py --server.address $(ADDRESS) --server.port $(PORT) \
	  --server.headless false --server.showEmailPrompt false --browser.gatherUsageStats false --server.fileWatcherType $(WATCH)

# The linters and the type checker run first: a style or type error fails `make test` (and so CI) in seconds.
lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

test: setup browser lint
	HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false $(PY) -m pytest $(PYTEST_ARGS)

bench: setup
	for b in bench/*.py; do HF_HUB_OFFLINE=1 $(PY) $$b; done

clean:
	rm -rf $(VENV) .pytest_cache
