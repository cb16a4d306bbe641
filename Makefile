# The two commands of the README:
#   make demo   installs what is missing, then opens napari on the bundled sample data, widgets docked
#   make test   installs what is missing (Xvfb and Mesa included), then runs the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test setup setup-test sample-data model benchmarks

demo: setup
	$(VENV)/bin/weakbeam demo

test: setup-test
	$(PY) -m pytest -q

setup:
	scripts/setup.sh

setup-test:
	scripts/setup.sh --test

sample-data: setup
	$(PY) scripts/make_sample_data.py

model: setup
	$(PY) scripts/train_default_model.py

benchmarks: setup
	$(PY) benchmarks/run_all.py
