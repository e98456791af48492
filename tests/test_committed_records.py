"""Every committed run record still loads, and its run id is recomputed from its config unchanged.

Refactoring must never change a run id: a long sweep finds its finished runs by id, and a changed
id would retrain them all.
"""

from dataclasses import fields
from pathlib import Path

import pytest

from helpers.icl import IclConfig
from helpers.records import load_records
from helpers.training import TrainConfig

RESULTS = Path(__file__).resolve().parents[1] / "results"
# Folders of training-run records: bench/ holds timing summaries, meta/ notebook wall times, checkpoints/
# a running sweep's Trainer state (not committed).
RECORD_DIRS = sorted(
    {
        path.parent
        for path in RESULTS.rglob("*.json")
        if not {"bench", "meta", "checkpoints"} & set(path.relative_to(RESULTS).parts)
    }
)


def _recomputed_id(config: dict) -> str:
    """The run id a record's config gives now: a training run's, or an in-context learning run's (method icl)."""
    if config["method"]["method"] == "icl":
        return IclConfig(**{field.name: config[field.name] for field in fields(IclConfig)}).run_id
    return TrainConfig.from_record(config).run_id


def test_committed_record_folders_are_found():
    assert len(RECORD_DIRS) >= 2, RECORD_DIRS  # results/quick and results/full at least


@pytest.mark.parametrize("folder", RECORD_DIRS, ids=lambda folder: str(folder.relative_to(RESULTS)))
def test_committed_records_load_and_keep_their_ids(folder):
    records, problems = load_records(folder)
    assert not problems
    assert records
    for record in records:
        assert _recomputed_id(record["config"]) == record["run_id"]
    assert sorted(record["run_id"] for record in records) == sorted(
        path.stem for path in folder.glob("*.json") if not path.name.startswith(".")
    )
