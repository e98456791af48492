"""Run the numbered notebooks headless (papermill), in order, in one profile.

`python -m helpers notebooks --profile quick` executes notebooks/01_… to 06_… in place (so they
carry the outputs of a real run) and writes records, figures and report.md. With --output-dir,
the executed copies go there instead and the committed notebooks are left untouched (CI does this).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from helpers.records import write_json_atomic

PROJECT_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"


def discover(folder: str | os.PathLike = NOTEBOOK_DIR) -> list[Path]:
    """The numbered notebooks (`NN_name.ipynb`), in order; the analysis notebook is last."""
    return sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def error_outputs(notebook_path: str | os.PathLike) -> list[str]:
    """Every error output in an executed notebook, as 'cell N: ename: evalue'."""
    notebook = json.loads(Path(notebook_path).read_text())
    errors = []
    for index, cell in enumerate(notebook["cells"]):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                errors.append(f"cell {index}: {output.get('ename')}: {output.get('evalue')}")
    return errors


def run_notebooks(
    profile: str,
    *,
    output_dir: str | os.PathLike | None = None,
    results_dir: str | os.PathLike | None = None,
    figures_dir: str | os.PathLike | None = None,
    report_path: str | os.PathLike | None = None,
    glue_dir: str | os.PathLike | None = None,
    tasks: list[str] | None = None,
    model: str | None = None,
    only: list[str] | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Execute every notebook with the given parameters; returns wall seconds per notebook."""
    import papermill

    notebooks = discover()
    if len(notebooks) < 6:
        raise RuntimeError(f"Expected at least six numbered notebooks in {NOTEBOOK_DIR}, found {len(notebooks)}.")
    parameters = {"PROFILE": profile}
    # The notebooks run with notebooks/ as working directory: a relative $GLUE_DIR must not change meaning.
    glue_dir = glue_dir or os.environ.get("GLUE_DIR") or None
    for name, value in [("RESULTS_DIR", results_dir), ("FIGURES_DIR", figures_dir), ("REPORT_PATH", report_path), ("GLUE_DIR", glue_dir), ("MODEL", model)]:
        if value is not None:
            parameters[name] = str(Path(value).resolve()) if name != "MODEL" else value
    if tasks:
        parameters["TASKS"] = list(tasks)
    from helpers.environment import output_paths

    timings_path = output_paths(PROJECT_ROOT, profile, results_dir)[0] / "meta" / "notebook_seconds.json"
    seconds: dict[str, float] = {}
    for notebook in notebooks:
        if only and not any(notebook.name.startswith(prefix) for prefix in only):
            continue
        target = Path(output_dir) / notebook.name if output_dir else notebook
        target.parent.mkdir(parents=True, exist_ok=True)
        own = dict(parameters)
        accepted = papermill.inspect_notebook(str(notebook))
        own = {k: v for k, v in own.items() if k in accepted}  # e.g. the analysis notebook takes no GLUE_DIR
        if progress:
            print(f"running {notebook.name} (profile {profile}) -> {target}", flush=True)
        start = time.perf_counter()
        papermill.execute_notebook(
            str(notebook), str(target), parameters=own, cwd=str(NOTEBOOK_DIR), kernel_name="python3",
            progress_bar=False, log_output=False, request_save_on_cell_execute=False,
        )
        seconds[notebook.stem] = time.perf_counter() - start
        errors = error_outputs(target)
        if errors:
            raise RuntimeError(f"{target} has error outputs: {errors}")
        # Kept beside the records: the report (written by the analysis notebook) and the README quote them.
        write_json_atomic(timings_path, {**_read_json(timings_path), notebook.stem: round(seconds[notebook.stem], 1)})
        if progress:
            print(f"  done in {seconds[notebook.stem] / 60:.1f} min", flush=True)
    return seconds
