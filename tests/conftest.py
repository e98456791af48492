"""Shared fixtures: a GLUE folder in the official layout, written fresh for the test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from glue_fixtures import write_glue_folder

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# An empty GLUE_DIR (the Makefile's, when ../shared/glue is absent) means unset, as in helpers.data.
REAL_GLUE_DIR = Path(os.environ.get("GLUE_DIR") or Path(__file__).resolve().parents[2] / "shared" / "glue")


@pytest.fixture(scope="session")
def glue_fixture(tmp_path_factory) -> tuple[Path, dict]:
    """(folder, expected labels per task and file) for all nine tasks."""
    root = tmp_path_factory.mktemp("glue")
    return root, write_glue_folder(root)


@pytest.fixture(scope="session")
def glue_dir(glue_fixture) -> Path:
    return glue_fixture[0]


@pytest.fixture(autouse=True)
def _no_glue_dir_from_environment(monkeypatch):
    """Tests choose their data explicitly; CI's GLUE_DIR must not leak into them."""
    monkeypatch.delenv("GLUE_DIR", raising=False)


# Modules whose tests train models, execute notebooks or start processes: `make test-fast` leaves them
# out (`-m "not slow"`), `make test` (CI) runs them. A single slow test elsewhere takes @pytest.mark.slow.
SLOW_MODULES = {
    "test_bench",
    "test_cli_errors",
    "test_data",
    "test_flops",
    "test_llm",
    "test_locks",
    "test_notebook_parameters",
    "test_notebooks",
    "test_predict",
    "test_setup_fresh_venv",
    "test_storage",
    "test_sweep",
    "test_training",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module.__name__.rsplit(".", 1)[-1] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
