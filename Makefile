# The two commands of the README:
#   make demo   set up, then train a diffusion model on this CPU and write outputs/demo/
#   make test   set up, then run the whole test suite (notebooks at smoke scale included)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.genlab-installed

.PHONY: setup demo test notebooks bench clean

setup: $(STAMP)

# torch first and pinned: an unpinned torch pulled in by another package would fetch CUDA wheels.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[notebooks,dev]'
	touch $(STAMP)

demo: setup
	$(VENV)/bin/genlab demo

test: setup
	$(PY) -m pytest -n 2 -q

notebooks: setup
	$(PY) scripts/run_notebooks.py --scale learner

bench: setup
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) outputs build
