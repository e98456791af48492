"""Run the numbered notebooks headless (papermill), in order, in one profile.

`python -m helpers notebooks --profile quick` executes notebooks/01_… to 07_… into a folder of the
run's own, runs/<profile>/ (ignored by git): executed notebooks in runs/<profile>/notebooks/, records
in runs/<profile>/results/, figures in runs/<profile>/figures/ and runs/<profile>/report.md, so a
quick run never overwrites the committed notebooks, figures and report. `--in-place` executes the
committed notebooks themselves, with the default records (results/<profile>/), figures/ and
report.md: that is how the committed study is regenerated.

Every executed notebook is cleaned before it is kept (`clean_notebook`): papermill's injected
parameters cell is folded back into the parameters cell (values that are not machine paths) and
dropped, and absolute paths of the machine that ran it are scrubbed from outputs and metadata.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import time
from pathlib import Path

from helpers.paths import NOTEBOOK_DIR, PROJECT_ROOT, RUNS_DIR, llm_results_dir, output_paths
from helpers.records import write_json_atomic

# What no kept notebook may contain (a test checks the committed ones): folders of a machine, installed-package paths.
ABSOLUTE_PATH = re.compile(
    r"(?<![\w.:/~$<])(?:/work/|/root/|/home/|/Users/|/content/|/tmp/|/private/|/var/folders/|/opt/|/usr/)"
)
SITE_PACKAGES = re.compile(r"(?:[A-Za-z]:)?[/\\][^\s'\"<>]*?[/\\](?:site|dist)-packages[/\\]")
# stderr a student cannot act on: progress bars and library chatter.
NOISE = [
    re.compile(p)
    for p in (
        r"\d+%\|",
        r"\d+/\d+ \[\d",
        r"it/s\]|run/s\]|examples/s\]",
        r"TqdmWarning",
        r"IProgress not found",
        r"is_gradient_checkpointing",
        r"LOAD REPORT",
        r"FutureWarning",
        r"UserWarning",
    )
]
# Parameters that name folders or files of the machine that ran the notebook: never kept in a notebook.
PATH_PARAMETERS = ("GLUE_DIR", "RESULTS_DIR", "FIGURES_DIR", "REPORT_PATH", "BENCH_PATH", "LLM_DIR")


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


def _format_value(value) -> str:
    """A parameter value as a student would type it (double-quoted strings, JSON-like lists)."""
    if value is None or isinstance(value, bool):
        return repr(value)
    try:
        return json.dumps(value, ensure_ascii=False)
    except TypeError:
        return repr(value)


def fold_parameters(source: str, values: dict) -> str:
    """The parameters cell with each single-line `NAME = value` assignment set to values[NAME] (comments kept)."""
    lines = source.splitlines(keepends=True)
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            continue
        name = node.targets[0].id
        if name not in values or node.value.lineno != node.value.end_lineno:
            continue
        line = lines[node.value.lineno - 1]
        old = line[node.value.col_offset : node.value.end_col_offset]
        new = _format_value(values[name])
        rest = line[node.value.end_col_offset :]
        if rest.lstrip().startswith("#") and len(new) < len(old):  # keep the comments aligned
            new = new.ljust(len(old))
        lines[node.value.lineno - 1] = line[: node.value.col_offset] + new + rest
    return "".join(lines)


def _is_path(value) -> bool:
    """An absolute path (e.g. MODEL given as a local folder): a machine's, never kept in a notebook."""
    return isinstance(value, str) and (value.startswith(("/", "~", "\\")) or bool(re.match(r"[A-Za-z]:[\\/]", value)))


def _injected_values(source: str) -> dict:
    values = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            with contextlib.suppress(ValueError):  # not a literal: the runner cannot pass it on
                values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


def scrub_paths(text: str, replacements: list[tuple[str, str]] | None = None) -> str:
    """Text without this machine's absolute paths: the project root becomes relative, installed packages
    `<site-packages>/`, the GLUE folder `$GLUE_DIR`, the home folder `~`."""
    if replacements is None:
        replacements = _path_replacements()
    for old, new in replacements:
        text = text.replace(old, new)
    return SITE_PACKAGES.sub("<site-packages>/", text)


def _path_replacements(
    glue_dir=None, project_root=PROJECT_ROOT, named_paths: dict | None = None
) -> list[tuple[str, str]]:
    pairs = sorted(
        ((str(Path(path).resolve()), name) for path, name in (named_paths or {}).items()),
        key=lambda pair: -len(pair[0]),
    )
    pairs += [(str(project_root) + os.sep, ""), (str(project_root), ".")]
    glue_dir = glue_dir or os.environ.get("GLUE_DIR")
    if glue_dir:
        pairs.append((str(Path(glue_dir).resolve()), "$GLUE_DIR"))
    if Path.home() != Path(Path.home().anchor):  # a home folder of "/" would turn every "//" into "~/"
        pairs.append((str(Path.home()) + os.sep, "~" + os.sep))
    return [(old, new) for old, new in pairs if len(old) > 1]


def is_noise(output: dict) -> bool:
    """A stderr output a student cannot act on: a progress bar, a blank line, a known library warning."""
    if output.get("output_type") != "stream" or output.get("name") != "stderr":
        return False
    text = "".join(output.get("text", ""))
    return not text.strip() or any(pattern.search(text) for pattern in NOISE)


def clean_notebook(
    notebook: dict, *, glue_dir=None, project_root: str | os.PathLike = PROJECT_ROOT, named_paths: dict | None = None
) -> dict:
    """An executed notebook as it may be kept: papermill's injected parameters folded into the parameters
    cell (machine paths left at their defaults) and dropped, machine paths scrubbed (named_paths: folders
    outside the project, e.g. {"/tmp/x/results": "<RESULTS_DIR>"}), progress noise removed."""
    cells = notebook["cells"]
    injected = [c for c in cells if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    parameters = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    for cell in injected:
        values = {
            k: v
            for k, v in _injected_values("".join(cell["source"])).items()
            if k not in PATH_PARAMETERS and not _is_path(v)
        }
        for target in parameters:
            target["source"] = fold_parameters("".join(target["source"]), values)
    notebook["cells"] = [c for c in cells if c not in injected]
    notebook.get("metadata", {}).pop("papermill", None)  # input/output paths and the injected values
    replacements = _path_replacements(glue_dir, project_root, named_paths)
    for cell in notebook["cells"]:
        if "outputs" not in cell:
            continue
        cell["outputs"] = [o for o in cell["outputs"] if not is_noise(o)]
        for output in cell["outputs"]:
            if "text" in output:
                output["text"] = scrub_paths("".join(output["text"]), replacements)
            for kind in ("text/plain", "text/html", "text/markdown"):
                if kind in output.get("data", {}):
                    output["data"][kind] = scrub_paths("".join(output["data"][kind]), replacements)
            if output.get("output_type") == "error":
                output["traceback"] = [scrub_paths(line, replacements) for line in output.get("traceback", [])]
    return notebook


def clean_notebook_file(path: str | os.PathLike, **options) -> None:
    """clean_notebook on a file, in place (written by nbformat: text kept as lists of lines)."""
    import nbformat

    notebook = clean_notebook(nbformat.read(str(path), as_version=4), **options)
    nbformat.write(notebook, str(path))


def problems(notebook_path: str | os.PathLike) -> list[str]:
    """What must not be in a kept notebook: an injected parameters cell, an absolute machine path, an error,
    a progress bar or library warning on stderr."""
    notebook = json.loads(Path(notebook_path).read_text())
    found = [f"error output: {e}" for e in error_outputs(notebook_path)]
    for index, cell in enumerate(notebook["cells"]):
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            found.append(f"cell {index}: papermill's injected parameters cell")
        texts = ["".join(cell["source"]).replace('"/content/drive', '"')]  # Colab's mount point, written on purpose
        for output in cell.get("outputs", []):
            if is_noise(output):
                found.append(f"cell {index}: stderr noise {''.join(output.get('text', ''))[:80]!r}")
            texts.append("".join(output.get("text", "")) + "".join(output.get("traceback", [])))
            texts += [
                "".join(output.get("data", {}).get(kind, "")) for kind in ("text/plain", "text/html", "text/markdown")
            ]
        for text in texts:
            match = ABSOLUTE_PATH.search(text) or SITE_PACKAGES.search(text) or re.search(r"site-packages", text)
            if match:
                found.append(f"cell {index}: absolute path {text[max(0, match.start() - 30) : match.end() + 40]!r}")
                break
    if "papermill" in notebook.get("metadata", {}):
        found.append("notebook metadata holds papermill's paths and parameters")
    return found


def run_folder(profile: str) -> Path:
    """Where `python -m helpers notebooks` writes a run of a profile by default: runs/<profile>/."""
    return RUNS_DIR / profile


def run_notebooks(
    profile: str,
    *,
    in_place: bool = False,
    output_dir: str | os.PathLike | None = None,
    results_dir: str | os.PathLike | None = None,
    figures_dir: str | os.PathLike | None = None,
    report_path: str | os.PathLike | None = None,
    glue_dir: str | os.PathLike | None = None,
    tasks: list[str] | None = None,
    model: str | None = None,
    only: list[str] | None = None,
    progress: bool = True,
    report_to: str | None = None,
    llm: str | None = None,
) -> dict[str, float]:
    """Execute every notebook in a profile; returns wall seconds per notebook.

    By default everything goes to runs/<profile>/ (notebooks/, results/, figures/, report.md); with
    in_place the committed notebooks are executed and the default results/<profile>/, figures/ and
    report.md are written. Any folder given explicitly wins.
    """
    import papermill  # noqa: F401  (imported here too: without papermill, nothing runs and no folder is made)

    notebooks = discover()
    if len(notebooks) < 6:
        raise RuntimeError(f"Expected at least six numbered notebooks in {NOTEBOOK_DIR}, found {len(notebooks)}.")
    if not in_place:
        folder = run_folder(profile)
        output_dir = output_dir or folder / "notebooks"
        results_dir = results_dir or folder / "results"
        figures_dir = figures_dir or folder / "figures"
        report_path = report_path or folder / "report.md"
    parameters = _notebook_parameters(profile, results_dir, figures_dir, report_path, tasks, model, report_to)
    if llm:
        parameters["LLM"] = llm  # notebook 06's LLM
    timings_path = output_paths(PROJECT_ROOT, profile, results_dir)[0] / "meta" / "notebook_seconds.json"
    named_paths = _named_paths(results_dir, figures_dir, report_path, model, llm)
    # One file per run folder; a complete run starts it afresh so two runs' wall times are never mixed.
    timings = _read_json(timings_path) if only else {}
    seconds: dict[str, float] = {}
    with _headless_environment(glue_dir):
        for notebook in notebooks:
            if only and not any(notebook.name.startswith(prefix) for prefix in only):
                continue
            target = Path(output_dir) / notebook.name if output_dir else notebook
            seconds[notebook.stem] = _execute_notebook(
                notebook, target, parameters, glue_dir, named_paths, progress=progress, profile=profile
            )
            # Kept beside the records: the report (written by the analysis notebook) and the README quote them.
            timings[notebook.stem] = round(seconds[notebook.stem], 1)
            write_json_atomic(timings_path, timings)
            if progress:
                print(f"  done in {seconds[notebook.stem] / 60:.1f} min", flush=True)
    return seconds


def _notebook_parameters(profile: str, results_dir, figures_dir, report_path, tasks, model, report_to) -> dict:
    """The parameters papermill gives the notebooks: the profile, the output folders as absolute paths, and
    the tasks, model and live view where given."""
    parameters: dict = {"PROFILE": profile}
    for name, value in [("RESULTS_DIR", results_dir), ("FIGURES_DIR", figures_dir), ("REPORT_PATH", report_path)]:
        if value is not None:
            parameters[name] = str(Path(value).resolve())  # the notebooks run with notebooks/ as working directory
    if tasks:
        parameters["TASKS"] = list(tasks)
    if model:
        parameters["MODEL"] = model
    if report_to:
        parameters["REPORT_TO"] = report_to
    return parameters


def _named_paths(results_dir, figures_dir, report_path, model, llm=None) -> dict:
    """Folders given outside the project (and the LLM's records beside the results folder), and a model
    given as a path, by the placeholder that names them in the kept notebooks instead of spelling them out."""
    llm_dir = llm_results_dir(results_dir) if results_dir is not None else None
    return {
        path: f"<{name}>"
        for name, path in [
            ("RESULTS_DIR", results_dir),
            ("FIGURES_DIR", figures_dir),
            ("REPORT_PATH", report_path),
            ("MODEL", model),
            ("LLM", llm),
            ("LLM_DIR", llm_dir),
        ]
        if path is not None
        and (name not in ("MODEL", "LLM") or Path(path).exists())
        and not Path(path).resolve().is_relative_to(PROJECT_ROOT)
    }


def _execute_notebook(
    notebook: Path, target: Path, parameters: dict, glue_dir, named_paths: dict, *, progress: bool, profile: str
) -> float:
    """Execute one notebook into `target` with the parameters it takes, clean it, and return its wall
    seconds; error outputs are an error (after the cleaned notebook is written)."""
    import papermill

    target.parent.mkdir(parents=True, exist_ok=True)
    accepted = papermill.inspect_notebook(str(notebook))
    own = {k: v for k, v in parameters.items() if k in accepted}  # e.g. the analysis notebook takes no TASKS
    if progress:
        print(f"running {notebook.name} (profile {profile}) -> {target}", flush=True)
    start = time.perf_counter()
    papermill.execute_notebook(
        str(notebook),
        str(target),
        parameters=own,
        cwd=str(NOTEBOOK_DIR),
        kernel_name="python3",
        progress_bar=False,
        log_output=False,
        request_save_on_cell_execute=False,
    )
    seconds = time.perf_counter() - start
    errors = error_outputs(target)
    clean_notebook_file(target, glue_dir=glue_dir, named_paths=named_paths)
    if errors:
        raise RuntimeError(f"{target} has error outputs: {errors}")
    return seconds


class _headless_environment:
    """Environment of the notebook kernels: GLUE_DIR as an absolute path (read by the notebooks' GLUE_DIR = None,
    so no machine path is passed as a parameter) and no progress bars (tqdm reads TQDM_DISABLE)."""

    def __init__(self, glue_dir):
        glue_dir = glue_dir or os.environ.get("GLUE_DIR") or None
        self.values = {"TQDM_DISABLE": "1", "PEFT_GLUE_HEADLESS": "1"}
        if glue_dir:
            self.values["GLUE_DIR"] = str(Path(glue_dir).resolve())

    def __enter__(self):
        self.saved = {name: os.environ.get(name) for name in self.values}
        os.environ.update(self.values)

    def __exit__(self, *exc):
        for name, value in self.saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
