"""A notebook's parameters are checked like the command line's: a bad value stops the notebook with a
message naming it, before any model is loaded or trained. The cells run here as the notebook has them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.experiments import experiment_configs
from helpers.models import DEFAULT_MODEL
from helpers.profiles import get_profile

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def cell_calling(notebook: str, call: str) -> str:
    """The source of the one code cell of `notebook` that contains `call`."""
    cells = json.loads((NOTEBOOKS / notebook).read_text())["cells"]
    sources = ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]
    found = [source for source in sources if call in source]
    assert len(found) == 1, f"{notebook}: {len(found)} cells contain {call!r}"
    return found[0]


def parameters(tmp_path, glue_dir, **values) -> dict:
    """The names a notebook's cells see after its parameters and setup cells."""
    from helpers.experiments import run_experiment

    return {
        "run_experiment": run_experiment,
        "profile": get_profile("smoke"),
        "TASKS": ["sst2"],
        "MODEL": DEFAULT_MODEL,
        "GLUE_DIR": str(glue_dir),
        "RESULTS_DIR": tmp_path / "results",
        "LR": None,
        "BITFIT_VARIANT": "all",
        "RANK": 8,
        "ALPHA": 16.0,
        "REPORT_TO": None,
        **values,
    }


# Every training cell that takes the LR parameter.
LR_CELLS = [
    ("02_bitfit.ipynb", 'run_experiment("bitfit",'),
    ("03_lora.ipynb", 'run_experiment("lora",'),
    ("03_lora.ipynb", 'run_experiment("lora_targets",'),
]


def test_every_cell_using_lr_is_checked():
    for notebook in {notebook for notebook, _ in LR_CELLS}:
        cells = json.loads((NOTEBOOKS / notebook).read_text())["cells"]
        uses = [
            "".join(c["source"])
            for c in cells
            if c["cell_type"] == "code"
            and "LR" in "".join(c["source"])
            and "parameters" not in c["metadata"].get("tags", [])
        ]
        assert len(uses) == sum(n == notebook for n, _ in LR_CELLS), f"{notebook}: a cell using LR is not in LR_CELLS"


@pytest.mark.parametrize("notebook, call", LR_CELLS)
@pytest.mark.parametrize("lr", [0, -1e-3, float("inf")])
def test_a_bad_learning_rate_stops_the_notebook_instead_of_becoming_the_default(
    notebook, call, lr, tmp_path, glue_dir, monkeypatch
):
    monkeypatch.setattr("helpers.sweep.run_sweep", lambda *a, **k: pytest.fail("must stop before training"))
    with pytest.raises(ValueError, match="lr must be positive and finite"):
        exec(cell_calling(notebook, call), parameters(tmp_path, glue_dir, LR=lr))


def test_an_unknown_bitfit_variant_stops_notebook_02_before_loading_a_model(tmp_path, glue_dir, monkeypatch):
    monkeypatch.setattr("helpers.models.load_model", lambda *a, **k: pytest.fail("must stop before loading a model"))
    monkeypatch.setattr("helpers.sweep.run_sweep", lambda *a, **k: pytest.fail("must stop before training"))
    for call in ("load_model(", "variant=BITFIT_VARIANT,"):
        with pytest.raises(ValueError, match=r"bitfit_variant must be one of \('all', 'sparse'\), got 'none'"):
            exec(cell_calling("02_bitfit.ipynb", call), parameters(tmp_path, glue_dir, BITFIT_VARIANT="none"))


def test_the_notebooks_default_parameters_keep_their_run_ids():
    """LR = None and the variant passed by name give the runs (and so the records) the notebooks always had."""
    ids = lambda configs: [c.run_id for c in configs]  # noqa: E731
    for profile in ("smoke", "quick"):
        assert ids(experiment_configs("bitfit", profile, lr=None)) == ids(experiment_configs("bitfit", profile))
        assert ids(experiment_configs("bitfit", profile, variant="sparse", lr=None)) == ids(
            experiment_configs("bitfit_sparse", profile)
        )
        assert ids(experiment_configs("lora", profile, rank=8, alpha=16.0, lr=None)) == ids(
            experiment_configs("lora", profile)
        )
