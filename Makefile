# The two commands a new user needs: `make sweep` (the main job) and `make test`.
# Both install everything first (packages and data); ARGS passes Hydra overrides or pytest flags.
# `make test` is the fast tier (tests not marked slow, about 2 minutes); `make test-all` runs every test, as CI does.
PYTHON ?= python3
ARGS ?=
# Tests run in two processes (pytest-xdist): most wait on subprocesses, servers and small models, which
# leave a core idle. WORKERS=0 runs them in this one process.
WORKERS ?= 2
XDIST = -n $(WORKERS) --dist worksteal

.PHONY: setup sweep test test-all
setup:
	PYTHON=$(PYTHON) scripts/setup.sh

sweep: setup
	$(PYTHON) -m fmnist.sweep $(ARGS)

test: setup
	$(PYTHON) -m pytest -m "not slow" $(XDIST) $(ARGS)

test-all: setup
	$(PYTHON) -m pytest $(XDIST) $(ARGS)
