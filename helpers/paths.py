"""Where things are: the project root and the default folders and files the package reads and writes.

Every module takes its paths from here, so moving a folder is a one-line change. Only the standard
library is imported: the notebooks' setup cell (helpers.environment) uses this before anything is
installed.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = PROJECT_ROOT / "pyproject.toml"
NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
RUNS_DIR = PROJECT_ROOT / "runs"  # `python -m helpers notebooks` without --in-place: runs/<profile>/
DATA_CACHE = Path(os.environ.get("PEFT_GLUE_CACHE", PROJECT_ROOT / "data_cache"))

# The outputs, relative to a project root: a notebook passes the root it found, which may be a copy of
# the project on Colab or Kaggle rather than this package's own folder.
RESULTS = Path("results")  # run records, results/<profile>/ per profile
FIGURES = Path("figures")
REPORT = Path("report.md")

RESULTS_DIR = PROJECT_ROOT / RESULTS
FIGURES_DIR = PROJECT_ROOT / FIGURES
REPORT_PATH = PROJECT_ROOT / REPORT
BENCH_DIR = RESULTS_DIR / "bench"
BENCH_PATH = BENCH_DIR / "bench.json"  # what the report's throughput section reads by default


def llm_results_dir(results_dir) -> Path:
    """Where the LLM's records go (notebook 06, `helpers.study --tier llm`): llm/ beside a profile's
    records (results/llm/ beside results/<profile>/), so they never mix with the encoder study's runs."""
    return Path(results_dir).parent / "llm"


def output_paths(root, profile: str, results_dir=None, figures_dir=None, report_path=None):
    """(results, figures, report) paths a notebook writes to: results/<profile>/, figures/, report.md by default."""
    root = Path(root)
    return (
        Path(results_dir) if results_dir else root / RESULTS / profile,
        Path(figures_dir) if figures_dir else root / FIGURES,
        Path(report_path) if report_path else root / REPORT,
    )
