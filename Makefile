# Set-up: `make demo` (main job on built-in demo data) and `make test`; both create or reuse ./.venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Bring your own CUDA build: make install TORCH_SPEC="torch==2.5.1 torchvision==0.20.1" \
#   TORCH_INDEX="--index-url https://download.pytorch.org/whl/cu124"; or TORCH_SPEC= to keep the torch in $(VENV).
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
TORCH_INDEX ?=
STAMP := $(VENV)/.nriqa-installed

.PHONY: install test lint demo reproduce clean-venv

install: $(STAMP)

$(STAMP): requirements.txt constraints.txt setup.py Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	# 1) torch first, with build tools pinned (setuptools<81 keeps pkg_resources for openai-clip/pyiqa).
	$(PIP) install -c constraints.txt $(TORCH_INDEX) $(TORCH_SPEC) setuptools wheel cython numpy
	# 2) basicsr's sdist declares torch in setup_requires: build it against the torch above, not a second copy.
	$(PIP) install -c constraints.txt --no-build-isolation basicsr==1.4.2
	# 3) the rest (openai-clip is an sdist too), then this package in editable mode.
	$(PIP) install -c constraints.txt --no-build-isolation -r requirements.txt
	$(PIP) install --no-build-isolation --no-deps -e .
	$(PY) -c "import nriqa_basicsr, pyiqa, lmdb, cv2; print('nriqa_basicsr', nriqa_basicsr.__version__, 'ready')"
	touch $(STAMP)

test: install
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q tests

demo: install
	HF_HUB_OFFLINE=1 $(PY) scripts/run_demo.py

# The real-model reproduction (needs ../shared): about an hour on 2 CPU cores; REPRODUCE_ARGS=--quick for minutes.
reproduce: install
	HF_HUB_OFFLINE=1 $(PY) -m nriqa_basicsr.reproduce $(REPRODUCE_ARGS)

lint: install
	$(VENV)/bin/ruff check nriqa_basicsr scripts tests

clean-venv:
	rm -rf $(VENV)
