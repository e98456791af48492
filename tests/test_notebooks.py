"""CI executes every numbered notebook in the smoke profile, into a temporary folder."""

import copy
import hashlib
import json
import shutil
import subprocess
import sys

import pytest

from helpers.notebooks import NOTEBOOK_DIR, clean_notebook, discover, problems, run_notebooks
from helpers.records import load_records

NOTEBOOKS = discover()


def _digest(paths):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def test_there_are_at_least_six_numbered_notebooks_analysis_last():
    assert len(NOTEBOOKS) >= 6
    assert NOTEBOOKS[0].name == "01_data.ipynb" and "analysis" in NOTEBOOKS[-1].name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_each_notebook_has_one_parameters_cell_and_a_setup_cell(path):
    cells = json.loads(path.read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    assert "PROFILE" in "".join(tagged[0]["source"])
    first_code = next(c for c in cells if c["cell_type"] == "code")
    assert "prepare_notebook()" in "".join(first_code["source"])
    assert cells[0]["cell_type"] == "markdown" and "".join(cells[0]["source"]).startswith("# ")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_papermill_sees_every_parameter(path):
    """papermill skips a line it cannot parse (an "=" in a comment, say), and then silently never sets it."""
    import ast

    import papermill

    cell = next(
        c for c in json.loads(path.read_text())["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])
    )
    assigned = [node.targets[0].id for node in ast.parse("".join(cell["source"])).body if isinstance(node, ast.Assign)]
    assert list(papermill.inspect_notebook(str(path))) == assigned


def test_every_notebook_has_the_same_setup_cell():
    setups = {
        "".join(next(c for c in json.loads(p.read_text())["cells"] if c["cell_type"] == "code")["source"])
        for p in NOTEBOOKS
    }
    assert len(setups) == 1, (
        "one setup cell, copied unchanged into every notebook (REPO_URL is set in the same line everywhere)"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebooks_have_no_injected_cell_machine_path_error_or_noise(path):
    assert problems(path) == []


def test_cleaning_folds_injected_parameters_and_scrubs_paths(tmp_path):
    notebook = {
        "metadata": {"papermill": {"input_path": "/home/x/notebooks/a.ipynb"}},
        "cells": [
            {
                "cell_type": "code",
                "metadata": {"tags": ["parameters"]},
                "outputs": [],
                "source": 'TASKS = ["sst2", "mrpc"]  # tasks\nPROFILE = "quick"        # which\n'
                "GLUE_DIR = None          # folder\n",
            },
            {
                "cell_type": "code",
                "metadata": {"tags": ["injected-parameters"]},
                "outputs": [],
                "source": '# Parameters\nPROFILE = "full"\nGLUE_DIR = "/work/shared/glue"\nTASKS = ["rte"]\n',
            },
            {
                "cell_type": "code",
                "metadata": {},
                "source": "print(1)",
                "outputs": [
                    {
                        "output_type": "stream",
                        "name": "stderr",
                        "text": "\rLoading weights:  50%|#####     | 1/2 [00:00<?, ?it/s]",
                    },
                    {
                        "output_type": "stream",
                        "name": "stdout",
                        "text": f"records -> {NOTEBOOK_DIR.parent}/results/full\n",
                    },
                    {
                        "output_type": "stream",
                        "name": "stdout",
                        "text": "from /opt/conda/lib/python3.12/site-packages/transformers/x.py: hi\n",
                    },
                    {"output_type": "stream", "name": "stdout", "text": "data from /work/shared/glue/SST-2\n"},
                ],
            },
        ],
    }
    cleaned = clean_notebook(copy.deepcopy(notebook), glue_dir="/work/shared/glue")
    assert len(cleaned["cells"]) == 2 and "papermill" not in cleaned["metadata"]
    assert (
        cleaned["cells"][0]["source"]
        == 'TASKS = ["rte"]           # tasks\nPROFILE = "full"         # which\nGLUE_DIR = None          # folder\n'
    )
    texts = [o["text"] for o in cleaned["cells"][1]["outputs"]]
    assert texts == [
        "records -> results/full\n",
        "from <site-packages>/transformers/x.py: hi\n",
        "data from $GLUE_DIR/SST-2\n",
    ]
    path = tmp_path / "a.ipynb"
    path.write_text(json.dumps({**notebook, "nbformat": 4, "nbformat_minor": 5}))
    assert any("injected" in p for p in problems(path)) and any("absolute path" in p for p in problems(path))


def test_all_notebooks_run_in_the_smoke_profile(glue_dir, tmp_path):
    committed = [
        *NOTEBOOKS,
        NOTEBOOK_DIR.parent / "report.md",
        *sorted((NOTEBOOK_DIR.parent / "figures").glob("*.png")),
    ]
    before = _digest(p for p in committed if p.is_file())
    from tiny_models import write_tiny_model

    llm = write_tiny_model("llama", tmp_path / "tiny-llama", [])  # notebook 06's LLM: a tiny Llama, no download
    out = tmp_path / "executed"
    seconds = run_notebooks(
        "smoke",
        output_dir=out,
        results_dir=tmp_path / "results",
        figures_dir=tmp_path / "figures",
        report_path=tmp_path / "report.md",
        glue_dir=glue_dir,
        llm=str(llm),
        progress=False,
    )
    assert list(seconds) == [p.stem for p in NOTEBOOKS]
    assert sorted(p.name for p in out.glob("*.ipynb")) == [p.name for p in NOTEBOOKS]
    assert {p.name: problems(p) for p in sorted(out.glob("*.ipynb"))} == {p.name: [] for p in NOTEBOOKS}, (
        "no injected cell, path, error or noise"
    )
    records, unreadable = load_records(tmp_path / "results")
    assert len(records) >= 20 and not unreadable
    assert {r["config"]["method"]["method"] for r in records} >= {
        "full",
        "head",
        "bitfit",
        "lora",
        "dora",
        "ia3",
        "prefix",
        "prompt",
        "ptuning",
    }
    llm_records, _ = load_records(tmp_path / "llm")  # notebook 06's, beside the results folder
    assert {(r["config"]["method"]["method"], r["config"]["model"]) for r in llm_records} == {
        ("icl", str(llm)),
        ("lora", str(llm)),
        ("lora", "all-MiniLM-L6-v2"),
    }
    figures = {p.stem for p in (tmp_path / "figures").glob("*.png")}
    assert {
        "model_comparison_sst2",
        "model_comparison_mrpc",
        "token_lengths",
        "training_curves",
        "bitfit_vs_lora",
        "rank_sweep",
        "lr_sensitivity",
        "time_memory",
    } <= figures
    report = (tmp_path / "report.md").read_text()
    for heading in (
        "## 1. Model design and data",
        "## 2. Loss reduction",
        "## 3. PEFT discussion",
        "## 4. BitFit vs LoRA",
        "### How the rank r changes LoRA",
        "## 8. A small LLM beside MiniLM",
    ):
        assert heading in report
    wall = json.loads((tmp_path / "results" / "meta" / "notebook_seconds.json").read_text())
    assert list(wall) == [p.stem for p in NOTEBOOKS] and "Wall time of the notebooks' last run" in report
    assert _digest(p for p in committed if p.is_file()) == before, (
        "the committed notebooks, report and figures are never overwritten by tests"
    )
    assert not list(NOTEBOOK_DIR.parent.glob("results/smoke/*.json")), "smoke records go to the temporary folder"

    # The report can be rebuilt from the records alone, from the command line (the token-length
    # histogram is drawn from the data by notebook 01, so it is carried over rather than rebuilt).
    (tmp_path / "figures2").mkdir()
    shutil.copy(tmp_path / "figures" / "token_lengths.png", tmp_path / "figures2" / "token_lengths.png")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "helpers",
            "report",
            "--profile",
            "smoke",
            "--results-dir",
            str(tmp_path / "results"),
            "--figures-dir",
            str(tmp_path / "figures2"),
            "--report",
            str(tmp_path / "report2.md"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rebuilt = (tmp_path / "report2.md").read_text().replace("figures2/", "figures/")
    section = lambda text: text[text.index("## 1.") : text.index("## 7.")]  # noqa: E731 (7: wall time differs)
    assert section(rebuilt) == section(report)


def test_setup_treats_packages_below_their_floor_as_missing():
    from helpers.environment import _too_old

    assert _too_old("transformers>=99.0") and not _too_old("transformers>=1.0")
    assert not _too_old("seaborn"), "no floor, nothing to compare"
    assert not _too_old("surely-not-installed-package>=1.0"), "not installed: left to pip"


@pytest.mark.parametrize("arch", ["roberta", "distilbert"])
def test_notebooks_01_to_03_run_with_a_tiny_roberta_and_distilbert(arch, glue_dir, tmp_path):
    """No token_type_ids, another tokenizer, other module names: the data, BitFit and LoRA notebooks still run
    (one pair task keeps it short; the full smoke run above covers the rest with BERT)."""
    from tiny_models import write_tiny_model

    texts = (glue_dir / "MRPC" / "train.tsv").read_text(encoding="utf-8-sig").splitlines()[1:]
    model = write_tiny_model(arch, tmp_path / f"tiny-{arch}", texts)
    out = tmp_path / "executed"
    seconds = run_notebooks(
        "smoke",
        output_dir=out,
        results_dir=tmp_path / "results",
        figures_dir=tmp_path / "figures",
        report_path=tmp_path / "report.md",
        glue_dir=glue_dir,
        tasks=["mrpc"],
        model=str(model),
        only=["01", "02", "03"],
        progress=False,
    )
    assert list(seconds) == [p.stem for p in NOTEBOOKS[:3]]
    assert {p.name: problems(p) for p in sorted(out.glob("*.ipynb"))} == {p.name: [] for p in NOTEBOOKS[:3]}
    assert "takes no token_type_ids" in (out / NOTEBOOKS[0].name).read_text()
    records, _ = load_records(tmp_path / "results")
    assert {r["config"]["method"]["method"] for r in records} == {"bitfit", "lora"} and {
        r["model_info"]["model_type"] for r in records
    } == {arch}
