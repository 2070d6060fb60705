# The two commands a new user needs: `make sweep` (the main job) and `make test`.
# Both install everything first (packages and data); ARGS passes Hydra overrides or pytest flags.
PYTHON ?= python3
ARGS ?=

.PHONY: setup sweep test
setup:
	PYTHON=$(PYTHON) scripts/setup.sh

sweep: setup
	$(PYTHON) -m fmnist.sweep $(ARGS)

test: setup
	$(PYTHON) -m pytest $(ARGS)
