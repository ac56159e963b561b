# Everything a fresh machine needs, in two commands (see README "Quick start"):
#   make drill   the console on the bad-deploy drill
#   make test    the whole test suite, with the system packages it uses
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed

.PHONY: drill test system-deps bench

$(STAMP): pyproject.toml constraints.txt
	bash scripts/system-deps.sh python
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	$(PY) -m pip check
	$(PY) -m compileall -q console   # an editable install has no bytecode: a first start compiles no source
	touch $(STAMP)

drill: $(STAMP)
	$(VENV)/bin/rollback-console drill

system-deps:
	bash scripts/system-deps.sh

test: system-deps $(STAMP)
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest -q

bench: $(STAMP)
	bench/run
