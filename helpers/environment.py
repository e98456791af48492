"""First cell of every notebook: install what a hosted notebook (Colab, Kaggle) lacks; quiet the
libraries; print versions and device.

The version floors live in one place, pyproject.toml's `dependencies`; this module reads them from
there. Only the standard library (and helpers.paths, which needs nothing else) is imported at module
level, so this works before anything is installed.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

from helpers.paths import PYPROJECT, output_paths  # noqa: F401 (output_paths: the notebooks import it from here)

# Preinstalled on Colab/Kaggle with the right CUDA build: never installed by a notebook.
NOT_INSTALLED_BY_NOTEBOOKS = ("torch",)
# pip name -> import name, where they differ by more than "-" vs "_".
IMPORT_NAMES = {"scikit-learn": "sklearn", "pyyaml": "yaml"}
# Library messages a student cannot act on: load reports, progress bars of downloads and
# dataset maps, one deprecation warning raised inside transformers itself.
UNACTIONABLE_WARNINGS = [
    (FutureWarning, r".*is_gradient_checkpointing.*"),
    (UserWarning, r".*IProgress not found.*"),
]


def declared_dependencies(pyproject: str | os.PathLike = PYPROJECT) -> list[str]:
    """The `[project] dependencies` of pyproject.toml (read without tomllib, which Python 3.10 lacks)."""
    text = Path(pyproject).read_text()
    block = re.search(r"^dependencies\s*=\s*\[(.*?)^\]", text, flags=re.S | re.M)
    if block is None:
        raise ValueError(f"No [project] dependencies list in {pyproject}.")
    body = "\n".join(line.split("#", 1)[0] for line in block.group(1).splitlines())
    return re.findall(r"\"([^\"]+)\"", body)


def declared_extras(pyproject: str | os.PathLike = PYPROJECT) -> list[str]:
    """The `extras` optional dependencies (evaluate's cross-check, live views): installed on hosted notebooks."""
    block = re.search(r"^extras\s*=\s*\[(.*?)\]", Path(pyproject).read_text(), flags=re.S | re.M)
    return re.findall(r"\"([^\"]+)\"", block.group(1)) if block else []


def required(pyproject: str | os.PathLike = PYPROJECT, extras: bool = False) -> list[tuple[str, str]]:
    """(pip spec, import name) of everything a notebook needs, from pyproject.toml (torch excluded);
    with extras, the optional `extras` too."""
    pairs = []
    for spec in declared_dependencies(pyproject) + (declared_extras(pyproject) if extras else []):
        name = re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0]
        if name.lower() not in NOT_INSTALLED_BY_NOTEBOOKS:
            pairs.append((spec, IMPORT_NAMES.get(name.lower(), name.replace("-", "_").lower())))
    return pairs


def on_hosted_notebook() -> bool:
    """Colab or Kaggle (where installing into the running kernel is the normal way)."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ or "KAGGLE_KERNEL_RUN_TYPE" in os.environ


def _too_old(pip_spec: str) -> bool:
    """True when an installed package is older than the spec's `>=` floor (e.g. Colab's preinstalled
    transformers 4.x)."""
    name, _, floor = pip_spec.partition(">=")
    if not floor:
        return False
    try:
        from importlib.metadata import version

        from packaging.version import Version

        return Version(version(name.strip())) < Version(floor.split(",")[0].strip())
    except Exception:  # not installed under that name, or no `packaging`: let pip decide
        return False


def ensure_packages(install: bool | None = None) -> list[str]:
    """pip-install the missing or too-old packages (by default only on Colab/Kaggle); returns them.

    Works without a kernel restart as long as the upgraded packages were not imported before this
    cell (the setup cell comes first, and nothing here imports them); if one was, it says so.
    """
    if install is None:
        install = on_hosted_notebook()
    missing = [
        spec for spec, module in required(extras=install) if importlib.util.find_spec(module) is None or _too_old(spec)
    ]
    if missing and install:
        print(f"Installing or upgrading: {', '.join(missing)}")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--upgrade", *missing], check=True)
        importlib.invalidate_caches()  # so this kernel finds packages installed after it started
        stale = [module for spec, module in required(extras=True) if spec in missing and module in sys.modules]
        if stale:
            print(
                f"Already imported before the upgrade: {', '.join(stale)}. Restart the runtime and run this cell again."
            )
    elif missing:
        print(f"Missing or too old: {', '.join(missing)}. Install the project first: pip install -e . (see README).")
    return missing


def quiet_libraries() -> None:
    """No load reports, download or dataset-map progress bars, or warnings a student cannot act on.
    Training progress stays (one compact bar per sweep), except in headless runs (TQDM_DISABLE=1)."""
    import warnings

    for category, message in UNACTIONABLE_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    try:
        import datasets
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
    except ImportError:  # reported by ensure_packages
        pass


def print_versions() -> dict:
    """Print and return the versions of the main libraries and the device this notebook runs on."""
    from helpers.device import library_versions, resolve_precision

    # What `precision: "auto"` trains in here; a profile may name one (the full profile: fp32).
    info = {**library_versions(), 'precision "auto" here': resolve_precision("auto") + " (a profile may pin one)"}
    for key, value in info.items():
        print(f"{key:>24}: {value}")
    return info


def prepare_notebook(install: bool | None = None) -> dict:
    """The setup cell's work: install what is missing or too old (Colab/Kaggle), quiet the libraries,
    print_versions(); returns the versions and device."""
    ensure_packages(install)
    quiet_libraries()
    readable_tables()
    return print_versions()


def readable_tables() -> None:
    """Tables shown in a notebook: three decimals (scores differ in the third), and whole text cells."""
    import pandas as pd

    pd.set_option("display.precision", 3)
    pd.set_option("display.max_colwidth", None)
    pd.set_option("display.width", 200)
