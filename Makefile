# Two entry points that work on a fresh machine with only python3 (3.11) and make:
#   make demo   -> creates .venv, installs curate, runs the offline demo
#   make test   -> creates .venv, installs curate + test tools, runs the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) "torch==2.14.1" "torchvision==0.29.1"
	$(PIP) -e ".[all,dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/curate demo --out demo-out

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) bench/crop.py

clean:
	rm -rf $(VENV) demo-out .pytest_cache
