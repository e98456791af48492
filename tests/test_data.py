import json
import logging
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from datasets import Dataset, DatasetDict

from conftest import REAL_GLUE_DIR
from glue_fixtures import DEV_ROWS, TASK_FOLDERS, TRAIN_ROWS, write_file
from helpers.data import GlueDataError, features_for, from_hub_splits, load_glue, load_local_task, make_splits
from helpers.tasks import TASKS, get_task


@pytest.mark.parametrize("folder", TASK_FOLDERS)
def test_every_task_loads_from_the_official_layout(glue_fixture, folder, caplog):
    root, expected = glue_fixture
    task = get_task(folder)
    with caplog.at_level(logging.WARNING):
        raw, skipped = load_local_task(task, root)
    assert skipped["train"] == 1, "the malformed fixture row is skipped"
    assert "Skipped 1 unparseable row" in caplog.text and "train.tsv:" in caplog.text
    assert set(raw) == {"train", *task.test_splits}
    assert raw["train"].features == features_for(task)
    assert len(raw["train"]) == TRAIN_ROWS
    assert raw["train"]["label"] == pytest.approx(expected[folder]["train.tsv"])
    for name, split in task.test_splits.items():
        assert len(raw[name]) == DEV_ROWS
        assert raw[name]["label"] == pytest.approx(expected[folder][split.tsv_file])
    for column in task.text_columns:
        assert all(isinstance(text, str) and text for text in raw["train"][column])


def test_mrpc_bom_and_quality_column(glue_fixture):
    raw, _ = load_local_task("mrpc", glue_fixture[0])
    first = raw["train"][0]
    assert set(first) == {"sentence1", "sentence2", "label", "idx"}
    assert not first["sentence1"].startswith("\ufeff")


def test_string_labels_map_to_hub_ids(glue_fixture):
    raw, _ = load_local_task("rte", glue_fixture[0])
    assert raw["train"].features["label"].names == ["entailment", "not_entailment"]
    raw, _ = load_local_task("mnli", glue_fixture[0])
    assert raw["test_mismatched"].features["label"].names == ["entailment", "neutral", "contradiction"]


@pytest.mark.parametrize("name", TASKS)
def test_hub_rows_map_the_same_way(glue_fixture, name):
    """A DatasetDict shaped like nyu-mll/glue (hidden-label test split included) maps to the same splits."""
    task = get_task(name)
    local, _ = load_local_task(task, glue_fixture[0])
    hub_like = {"train": local["train"]}
    for split in task.test_splits.values():
        hub_like[split.hub_split] = local[next(n for n, s in task.test_splits.items() if s == split)]
        hidden = local["train"].select(range(3)).to_dict()
        hidden["label"] = [-1] * 3  # GLUE test labels are hidden on the Hub
        hub_like[split.hub_split.replace("validation", "test")] = Dataset.from_dict(hidden)
    mapped = from_hub_splits(task, DatasetDict(hub_like))
    assert set(mapped) == {"train", *task.test_splits}
    for split in mapped:
        assert mapped[split].features == local[split].features
        assert mapped[split]["label"] == local[split]["label"]


def test_validation_is_a_seeded_stratified_slice_of_train(glue_dir):
    splits = load_glue("sst2", glue_dir=glue_dir, validation_fraction=0.25, split_seed=7)
    info = splits.glue_info
    assert info.sizes == {"train": 90, "validation": 30, "test": DEV_ROWS}
    assert info.select_on == "train_slice" and info.stratified
    assert set(splits["train"]["idx"]).isdisjoint(splits["validation"]["idx"])
    assert Counter(splits["validation"]["label"]) == {0: 15, 1: 15}
    again = load_glue("sst2", glue_dir=glue_dir, validation_fraction=0.25, split_seed=7)
    other = load_glue("sst2", glue_dir=glue_dir, validation_fraction=0.25, split_seed=8)
    assert again["validation"]["idx"] == splits["validation"]["idx"]
    assert other["validation"]["idx"] != splits["validation"]["idx"]


def test_select_on_dev_uses_the_glue_dev_set(glue_dir):
    splits = load_glue("mnli", glue_dir=glue_dir, select_on="dev")
    assert splits.glue_info.select_on == "dev"
    assert splits["validation"]["idx"] == splits["test_matched"]["idx"]
    assert len(splits["train"]) == TRAIN_ROWS
    assert set(splits) == {"train", "validation", "test_matched", "test_mismatched"}


def test_max_train_samples_is_seeded_and_recorded(glue_dir):
    first = load_glue("rte", glue_dir=glue_dir, max_train_samples=40, split_seed=1)
    second = load_glue("rte", glue_dir=glue_dir, max_train_samples=40, split_seed=1)
    assert len(first["train"]) == 40 and first.glue_info.max_train_samples == 40
    assert first.glue_info.sizes["train"] == 40
    assert first["train"]["idx"] == second["train"]["idx"]
    assert Counter(first["train"]["label"]) == {0: 20, 1: 20}


def test_stsb_is_regression_with_float_labels(glue_dir):
    splits = load_glue("stsb", glue_dir=glue_dir)
    assert splits["train"].features["label"].dtype == "float32"
    assert all(0 <= score <= 5 for score in splits["test"]["label"])


@pytest.mark.parametrize("kwargs, message", [
    ({"validation_fraction": 1.5}, "validation_fraction"),
    ({"select_on": "test"}, "select_on must be one of"),
    ({"max_train_samples": 0}, "max_train_samples must be a positive"),
])
def test_bad_split_options_are_named(glue_dir, kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_glue("rte", glue_dir=glue_dir, **kwargs)


def test_missing_folder_names_the_path_and_layout(tmp_path):
    with pytest.raises(GlueDataError, match=r"GLUE folder not found: .*nowhere.*official GLUE layout"):
        load_glue("rte", glue_dir=tmp_path / "nowhere")
    (tmp_path / "CoLA").mkdir()
    with pytest.raises(GlueDataError, match=r"No RTE folder in .*found: \['CoLA'\].*RTE/\{train.tsv,dev.tsv\}"):
        load_glue("rte", glue_dir=tmp_path)


def test_missing_file_names_the_path(tmp_path, glue_dir):
    write_file(tmp_path / "RTE" / "train.tsv", ["index", "sentence1", "sentence2", "label"], [["0", "a", "b", "entailment"]])
    with pytest.raises(GlueDataError, match=r"GLUE file not found: .*RTE/dev.tsv"):
        load_glue("rte", glue_dir=tmp_path)


def test_wrong_header_is_explained(tmp_path):
    write_file(tmp_path / "SST-2" / "train.tsv", ["text", "label"], [["a", "1"]])
    with pytest.raises(GlueDataError, match=r"lacks column\(s\) \['sentence'\]"):
        load_local_task("sst2", tmp_path)


def test_more_than_one_percent_bad_rows_is_an_error(tmp_path):
    rows = [[f"s {i}", str(i % 2)] for i in range(50)] + [["no label"], ["x", "maybe"]]
    write_file(tmp_path / "SST-2" / "train.tsv", ["sentence", "label"], rows)
    with pytest.raises(GlueDataError) as error:
        load_local_task("sst2", tmp_path)
    text = str(error.value)
    assert "2 of 52 rows" in text and "train.tsv:52: expected 2 tab-separated fields, found 1" in text
    assert "train.tsv:53: label 'maybe'" in text


def test_cli_prints_json_and_errors_without_traceback(glue_dir):
    ok = subprocess.run([sys.executable, "-m", "helpers", "data", "--task", "STS-B", "--glue-dir", str(glue_dir)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    summary = json.loads(ok.stdout)
    assert summary["splits"]["train"]["size"] + summary["splits"]["validation"]["size"] == TRAIN_ROWS
    assert set(summary["splits"]["test"]["labels"]) == {"mean", "std"}
    assert summary["skipped_rows"] == {"train": 1, "test": 0}
    bad = subprocess.run([sys.executable, "-m", "helpers", "data", "--task", "stsb", "--glue-dir", str(glue_dir / "missing")], capture_output=True, text=True)
    assert bad.returncode == 2
    assert "GLUE folder not found" in bad.stderr and "Traceback" not in bad.stderr


REAL_COUNTS = {"cola": (8551, 1043), "sst2": (67349, 872), "mrpc": (3668, 408), "rte": (2490, 277)}


@pytest.mark.skipif(not REAL_GLUE_DIR.is_dir(), reason="no local GLUE copy (set GLUE_DIR)")
@pytest.mark.parametrize("name", REAL_COUNTS)
def test_real_glue_folder_has_the_official_row_counts(name):
    train_rows, dev_rows = REAL_COUNTS[name]
    splits = load_glue(name, glue_dir=REAL_GLUE_DIR)
    sizes = splits.glue_info.sizes
    assert splits.glue_info.skipped_rows == {"train": 0, "test": 0}
    assert sizes["train"] + sizes["validation"] == train_rows
    assert sizes["validation"] == round(0.1 * train_rows)
    assert sizes["test"] == dev_rows
    train_share = np.mean(splits["train"]["label"])
    assert np.mean(splits["validation"]["label"]) == pytest.approx(train_share, abs=0.01)


def test_make_splits_on_a_dict_directly():
    task = get_task("wnli")
    data = Dataset.from_dict({"sentence1": ["a"] * 20, "sentence2": ["b"] * 20, "label": [0, 1] * 10, "idx": list(range(20))}, features=features_for(task))
    splits, how = make_splits(DatasetDict({"train": data, "test": data}), task, validation_fraction=0.2)
    assert len(splits["validation"]) == 4 and how["stratified"]
