import json
import logging
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from conftest import REAL_GLUE_DIR
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from glue_fixtures import DEV_ROWS, QUOTED_COLUMNS, QUOTED_ROWS, TASK_FOLDERS, TRAIN_ROWS, write_file

from helpers.data import GlueDataError, features_for, from_hub_splits, load_glue, load_local_task, make_splits
from helpers.tasks import get_task


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


@pytest.mark.parametrize("folder", QUOTED_COLUMNS)
def test_quotes_are_ordinary_characters(glue_fixture, folder):
    """GLUE files have no quoting: quoted text loads exactly as written, one row per line."""
    root, expected = glue_fixture
    task = get_task(folder)
    raw, skipped = load_local_task(task, root)
    column = next(hub for hub, tsv in task.tsv.columns.items() if tsv == QUOTED_COLUMNS[folder])
    files = {"train": "train.tsv", **{name: split.tsv_file for name, split in task.test_splits.items()}}
    for split, file_name in files.items():
        # The text as written: a plain split on tabs, keeping only rows with every field.
        lines = (root / folder / file_name).read_text(encoding="utf-8").splitlines()
        header = lines[0].split("\t")
        position = header.index(QUOTED_COLUMNS[folder])
        rows = [line.split("\t") for line in lines[1:]]
        written = [fields[position] for fields in rows if len(fields) == len(header)]
        texts = raw[split][column]
        assert len(texts) == (TRAIN_ROWS if split == "train" else DEV_ROWS)
        assert texts == written
        unmatched, phrase = (texts[i] for i in QUOTED_ROWS)
        assert unmatched.startswith('"') and unmatched.count('"') == 1
        assert phrase.startswith('"') and phrase.endswith('" , they said .') and phrase.count('"') == 2
        assert not any("\t" in text or "\n" in text for text in texts), "no row ran on into the next"
        assert raw[split]["label"] == pytest.approx(expected[folder][file_name])
    assert skipped == {"train": 1, **{name: 0 for name in task.test_splits}}


# The Hub's own format for nyu-mll/glue, written out here rather than taken from helpers.tasks, so
# that the Hub path is checked against the dataset as published, not against our own table.
HUB_LABEL_NAMES = {
    "cola": ["unacceptable", "acceptable"],
    "sst2": ["negative", "positive"],
    "rte": ["entailment", "not_entailment"],
    "mnli": ["entailment", "neutral", "contradiction"],
    "wnli": ["not_entailment", "entailment"],
    "stsb": None,  # float32 similarity score
}
HUB_TEXT_COLUMNS = {
    "cola": ["sentence"],
    "sst2": ["sentence"],
    "rte": ["sentence1", "sentence2"],
    "mnli": ["premise", "hypothesis"],
    "wnli": ["sentence1", "sentence2"],
    "stsb": ["sentence1", "sentence2"],
}
# Hub split -> (official GLUE dev file, our test split); the Hub's test splits have label -1.
HUB_DEV_SPLITS = {
    "mnli": {
        "validation_matched": ("dev_matched.tsv", "test_matched"),
        "validation_mismatched": ("dev_mismatched.tsv", "test_mismatched"),
    },
}
HUB_HIDDEN_SPLITS = {"mnli": ["test_matched", "test_mismatched"]}
# Label as written in the official TSV -> Hub label id (STS-B: the score itself).
FILE_LABEL_TO_HUB = {
    "cola": {"0": 0, "1": 1},
    "sst2": {"0": 0, "1": 1},
    "rte": {"entailment": 0, "not_entailment": 1},
    "mnli": {"entailment": 0, "neutral": 1, "contradiction": 2},
    "wnli": {"0": 0, "1": 1},
}
HUB_TRAIN_ROWS, HUB_DEV_ROWS = 30, 9
MNLI_HEADER = [
    "index",
    "promptID",
    "pairID",
    "genre",
    "sentence1_binary_parse",
    "sentence2_binary_parse",
    "sentence1_parse",
    "sentence2_parse",
    "sentence1",
    "sentence2",
    "label1",
    "gold_label",
]
STSB_HEADER = [
    "index",
    "genre",
    "filename",
    "year",
    "old_index",
    "source1",
    "source2",
    "sentence1",
    "sentence2",
    "score",
]


def _official_tsv_row(name: str, i: int, texts: list[str], label: str) -> list[str]:
    """One row of the official GLUE download for this task."""
    if name == "cola":
        return ["gj04", label, "" if label == "1" else "*", texts[0]]
    if name == "sst2":
        return [texts[0], label]
    if name == "mnli":
        return [str(i), str(i), f"{i}n", "fiction", "( a )", "( b )", "(ROOT a)", "(ROOT b)", *texts, label, label]
    if name == "stsb":
        return [str(i), "main-captions", "MSRvid", "2012test", str(i), "none", "none", *texts, label]
    return [str(i), *texts, label]  # rte, wnli


OFFICIAL_HEADERS = {
    "cola": None,
    "sst2": ["sentence", "label"],
    "rte": ["index", "sentence1", "sentence2", "label"],
    "wnli": ["index", "sentence1", "sentence2", "label"],
    "mnli": MNLI_HEADER,
    "stsb": STSB_HEADER,
}
OFFICIAL_FOLDERS = {"cola": "CoLA", "sst2": "SST-2", "rte": "RTE", "wnli": "WNLI", "mnli": "MNLI", "stsb": "STS-B"}


def _examples(name: str, split: str, n: int) -> list[tuple[list[str], str]]:
    """(texts, label as written in the TSV) for n rows; a few texts carry quotes."""
    file_labels = list(FILE_LABEL_TO_HUB.get(name, {}))
    rows = []
    for i in range(n):
        texts = [f"{split} {column} {i} ." for column in HUB_TEXT_COLUMNS[name]]
        if i == 1:
            texts[0] = f'"{split} opens a quote {i} .'
        if i == 2:
            texts[-1] = f'they said "{split} {i}" .'
        label = f"{(i * 7 % 26) / 5:.2f}" if name == "stsb" else file_labels[i % len(file_labels)]
        rows.append((texts, label))
    return rows


def _hub_dataset(name: str, examples: list[tuple[list[str], str]], hidden: bool) -> Dataset:
    """A split as nyu-mll/glue publishes it: text columns, label (ClassLabel or float32), idx int32."""
    names = HUB_LABEL_NAMES[name]
    label_feature = Value("float32") if names is None else ClassLabel(names=names)
    features = Features(
        {**{c: Value("string") for c in HUB_TEXT_COLUMNS[name]}, "label": label_feature, "idx": Value("int32")}
    )
    columns = {c: [texts[k] for texts, _ in examples] for k, c in enumerate(HUB_TEXT_COLUMNS[name])}
    if hidden:
        columns["label"] = [-1.0 if names is None else -1] * len(examples)
    elif names is None:
        columns["label"] = [float(label) for _, label in examples]
    else:
        columns["label"] = [FILE_LABEL_TO_HUB[name][label] for _, label in examples]
    columns["idx"] = list(range(len(examples)))
    return Dataset.from_dict(columns, features=features)


def _hub_and_local(name: str, root):
    """The same rows as a hand-built Hub DatasetDict and as an official GLUE folder under root."""
    dev_splits = HUB_DEV_SPLITS.get(name, {"validation": ("dev.tsv", "test")})
    hidden_splits = HUB_HIDDEN_SPLITS.get(name, ["test"])
    hub = {}
    for split, n in [("train", HUB_TRAIN_ROWS), *((s, HUB_DEV_ROWS) for s in dev_splits)]:
        examples = _examples(name, split, n)
        hub[split] = _hub_dataset(name, examples, hidden=False)
        file_name = "train.tsv" if split == "train" else dev_splits[split][0]
        rows = [_official_tsv_row(name, i, texts, label) for i, (texts, label) in enumerate(examples)]
        write_file(root / OFFICIAL_FOLDERS[name] / file_name, OFFICIAL_HEADERS[name], rows)
    for split in hidden_splits:
        hub[split] = _hub_dataset(name, _examples(name, split, 4), hidden=True)
    return DatasetDict(hub), dev_splits


@pytest.mark.parametrize("name", list(HUB_LABEL_NAMES))
def test_hub_format_rows_map_like_the_official_files(name, tmp_path, monkeypatch):
    """nyu-mll/glue as published and the official download of the same rows give the same splits."""
    import datasets

    hub, dev_splits = _hub_and_local(name, tmp_path / "glue")
    raw_from_hub = from_hub_splits(name, hub)
    raw_from_files, _ = load_local_task(name, tmp_path / "glue")
    assert set(raw_from_hub) == set(raw_from_files) == {"train", *(ours for _, ours in dev_splits.values())}
    for split in raw_from_hub:
        assert raw_from_hub[split].features == raw_from_files[split].features
        assert raw_from_hub[split].to_dict() == raw_from_files[split].to_dict()

    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda path, config, **kwargs: calls.append((path, config)) or hub)
    from_hub = load_glue(name, cache_dir=tmp_path / "cache", split_seed=3)
    from_files = load_glue(name, glue_dir=tmp_path / "glue", split_seed=3)
    assert calls == [("nyu-mll/glue", name)]
    assert from_hub.glue_info.source == "hub:nyu-mll/glue"
    assert set(from_hub) == {"train", "validation", *(ours for _, ours in dev_splits.values())}
    for split in from_hub:
        assert from_hub[split].column_names == hub["train"].column_names
        assert from_hub[split].features == hub["train"].features, "the Hub's column types and label names"
        assert from_hub[split].to_dict() == from_files[split].to_dict()
        labels = from_hub[split]["label"]
        assert min(labels) >= 0, "no hidden (-1) labels in a labelled split"
        if HUB_LABEL_NAMES[name] is None:
            assert from_hub[split].features["label"] == Value("float32")
            assert all(isinstance(label, float) for label in labels)
        else:
            assert isinstance(from_hub[split].features["label"], ClassLabel)
            assert all(type(label) is int for label in labels)
    # GLUE dev -> our test split(s), row for row; the Hub's hidden test rows are nowhere.
    for hub_split, (_, ours) in dev_splits.items():
        assert from_hub[ours].to_dict() == hub[hub_split].to_dict()
    first_text = HUB_TEXT_COLUMNS[name][0]
    used = {text for split in from_hub.values() for text in split[first_text]}
    assert used.isdisjoint(text for split in HUB_HIDDEN_SPLITS.get(name, ["test"]) for text in hub[split][first_text])
    # Validation is a slice carved from the Hub's train split, disjoint from what we train on.
    train_rows = {row["idx"]: row for row in hub["train"]}
    assert len(from_hub["validation"]) == round(0.1 * HUB_TRAIN_ROWS)
    assert len(from_hub["validation"]) + len(from_hub["train"]) == HUB_TRAIN_ROWS
    assert set(from_hub["validation"]["idx"]).isdisjoint(from_hub["train"]["idx"])
    assert all(train_rows[row["idx"]] == row for row in from_hub["validation"])


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


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"validation_fraction": 1.5}, "validation_fraction"),
        ({"select_on": "test"}, "select_on must be one of"),
        ({"max_train_samples": 0}, "max_train_samples must be a positive"),
    ],
)
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
    write_file(
        tmp_path / "RTE" / "train.tsv", ["index", "sentence1", "sentence2", "label"], [["0", "a", "b", "entailment"]]
    )
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
    ok = subprocess.run(
        [sys.executable, "-m", "helpers", "data", "--task", "STS-B", "--glue-dir", str(glue_dir)],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    summary = json.loads(ok.stdout)
    assert summary["splits"]["train"]["size"] + summary["splits"]["validation"]["size"] == TRAIN_ROWS
    assert set(summary["splits"]["test"]["labels"]) == {"mean", "std"}
    assert summary["skipped_rows"] == {"train": 1, "test": 0}
    bad = subprocess.run(
        [sys.executable, "-m", "helpers", "data", "--task", "stsb", "--glue-dir", str(glue_dir / "missing")],
        capture_output=True,
        text=True,
    )
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
    data = Dataset.from_dict(
        {"sentence1": ["a"] * 20, "sentence2": ["b"] * 20, "label": [0, 1] * 10, "idx": list(range(20))},
        features=features_for(task),
    )
    splits, how = make_splits(DatasetDict({"train": data, "test": data}), task, validation_fraction=0.2)
    assert len(splits["validation"]) == 4 and how["stratified"]


def test_label_balance_gives_each_labels_share_per_split_and_the_score_for_regression():
    from helpers.data import label_balance

    sst2 = DatasetDict(
        train=Dataset.from_dict({"sentence": ["a", "b", "c", "d"], "label": [0, 1, 1, 1]}),
        test=Dataset.from_dict({"sentence": ["e", "f"], "label": [1, 1]}),  # no negative label at all
    )
    stsb = DatasetDict(train=Dataset.from_dict({"sentence1": ["a", "b"], "sentence2": ["c", "d"], "label": [1.0, 3.0]}))
    table = label_balance({"sst2": sst2, "stsb": stsb})
    assert table[["task", "split", "size"]].values.tolist() == [
        ["SST-2", "train", 4],
        ["SST-2", "test", 2],
        ["STS-B", "train", 2],
    ]
    assert table.iloc[0][["negative", "positive"]].tolist() == ["25.0%", "75.0%"]
    assert table.iloc[1][["negative", "positive"]].tolist() == ["0.0%", "100.0%"], "a missing label has share 0"
    assert table.iloc[2]["mean score"] == 2.0 and table.iloc[0]["mean score"] == ""


def test_split_overlap_counts_text_a_training_example_holds_word_for_word(tmp_path):
    from helpers.data import load_split_overlap, save_split_overlap, split_overlap

    sst2 = DatasetDict(
        train=Dataset.from_dict({"sentence": ["A  fine, warm film", "a dull plot", "the cast"], "label": [1, 0, 1]}),
        validation=Dataset.from_dict({"sentence": ["warm film", "fine", "dull", "arm film"], "label": [1, 1, 0, 1]}),
        test=Dataset.from_dict({"sentence": ["the cast", "a new story told well"], "label": [1, 1]}),
    )
    overlap = split_overlap(sst2, "sst2")
    # "warm film" and "dull" lie inside a training example; "fine" does not ("fine," is another word);
    # "arm film" is no whole-word match. Case and spacing do not count.
    assert overlap["validation"] == {
        "examples": 4,
        "of": 4,
        "label_shares": {"negative": 0.25, "positive": 0.75},
        "mean_words": 1.5,
        "one_word": 0.5,
        "inside_training": 0.5,
        "identical_to_training": 0.0,
    }
    assert overlap["test"]["inside_training"] == 0.5 and overlap["test"]["identical_to_training"] == 0.5
    mrpc = DatasetDict(
        train=Dataset.from_dict({"sentence1": ["x y"], "sentence2": ["z w"], "label": [1]}),
        test=Dataset.from_dict({"sentence1": ["x", "x"], "sentence2": ["w", "q"], "label": [1, 0]}),
    )
    assert split_overlap(mrpc, "mrpc")["test"]["inside_training"] == 0.5, "a pair needs both texts inside"
    save_split_overlap(tmp_path, "sst2", overlap, "local:fixture")
    save_split_overlap(tmp_path, "mrpc", {}, "local:fixture")
    assert load_split_overlap(tmp_path)["sst2"] == {"source": "local:fixture", "splits": overlap}
    assert set(load_split_overlap(tmp_path)) == {"sst2", "mrpc"} and load_split_overlap(tmp_path / "none") == {}
