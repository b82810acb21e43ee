# Quickstart: `make serve` (studio + API + one worker on http://127.0.0.1:8000) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
TORCH_CPU_VERSION ?= 2.13.0

.PHONY: install serve test lint format clean bench

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# A CPU torch first when no torch is installed yet: otherwise pip resolves `torch>=2.6` to a
	# multi-gigabyte CUDA build. GPU machines keep whatever torch they already have.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "torch==$(TORCH_CPU_VERSION)"
	$(BIN)/pip install -q -e ".[test]"
	# The studio's browser tests drive Debian's chromium; install it where we can (root with apt), never fail here.
	command -v chromium >/dev/null || ! command -v apt-get >/dev/null || [ "$$(id -u)" != 0 ] || \
		(apt-get update -q && apt-get install -y -q chromium) || echo "could not install chromium; studio browser tests will skip"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

serve: install
	$(BIN)/reelgen serve --host 127.0.0.1 --port 8000

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

format: install
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

test: install lint
	$(BIN)/python -m pytest -q

# The encode benchmark compares against the ffmpeg command line (Debian package `ffmpeg`).
bench: install
	command -v ffmpeg >/dev/null || (apt-get update -q && apt-get install -y -q ffmpeg)
	$(BIN)/python benchmarks/encode.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache .mypy_cache
