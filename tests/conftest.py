"""Shared fixtures: a GLUE folder in the official layout, written fresh for the test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from glue_fixtures import write_glue_folder

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REAL_GLUE_DIR = Path(os.environ.get("GLUE_DIR", Path(__file__).resolve().parents[2] / "shared" / "glue"))


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
