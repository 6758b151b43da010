# Two commands set everything up on a fresh machine:
#   make run   - the whole service (gateway + worker) on SQLite, the filesystem and the local backend
#   make test  - the test suite (PostgreSQL when DATABASE_URL points at it, else SQLite), in
#                TEST_WORKERS pytest-xdist processes (0: all in this one); PYTEST_ARGS go to pytest
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
# One per core: the suite spends much of its time waiting on the processes it starts.
TEST_WORKERS ?= 2
export PORT
# honcho gives each process type its own PORT (the worker gets PORT+100), so the registry host that
# both the gateway and the worker recognise as Train's own is fixed here, from the gateway's port.
TRAIN_REGISTRY_HOST ?= localhost:$(PORT)
export TRAIN_REGISTRY_HOST

.PHONY: run test lint venv clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

run: venv
	$(PY) manage.py migrate --noinput
	$(PY) manage.py setup_schedules
	$(PY) manage.py demo_setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/honcho start -f Procfile -p $(PORT)

test: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) var .pytest_cache
