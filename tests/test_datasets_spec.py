"""Any labelled dataset as a task: fixture CSV / TSV / JSON files and folders, and every bad case."""

from __future__ import annotations

import csv
import json

import pytest

from helpers.data import load_glue
from helpers.datasets_spec import DatasetSpec, DatasetSpecError, register_dataset, spec_from_args
from helpers.metrics import compute_metrics
from helpers.tasks import get_task


def write_csv(path, header, rows, delimiter=","):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def reviews(n=40, label=lambda i: "pos" if i % 2 else "neg"):
    return [[f'review number {i} , quoted "text" , commas', label(i)] for i in range(n)]


def test_csv_file_becomes_a_task_with_honest_splits(tmp_path):
    path = write_csv(tmp_path / "reviews.csv", ["text", "label"], reviews())
    task = register_dataset(DatasetSpec(str(path)))
    assert get_task(task.name) is task and task.label_names == ("neg", "pos")
    assert task.metrics == ("accuracy", "macro_f1") and not task.is_regression
    splits = load_glue(task.name, split_seed=1)
    # 20% held out as test (stratified), then 10% of the rest for validation; nothing shared.
    assert {name: len(ds) for name, ds in splits.items()} == {"train": 29, "validation": 3, "test": 8}
    assert sorted(splits["test"]["label"]) == [0] * 4 + [1] * 4
    texts = [set(ds["text"]) for ds in splits.values()]
    assert not (texts[0] & texts[1]) and not (texts[0] & texts[2]) and not (texts[1] & texts[2])
    assert splits.glue_info.source == f"local:{path.resolve()}"
    assert 'quoted "text" , commas' in splits["train"]["text"][0]


def test_folder_with_train_and_validation_json_and_a_pair_task(tmp_path):
    rows = [{"question": f"q{i}", "passage": f"p{i}", "answer": bool(i % 3)} for i in range(30)]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "validation.json").write_text(json.dumps(rows[:9]))
    task = register_dataset(DatasetSpec(str(tmp_path), text_columns="question,passage", label_column="answer"))
    assert task.is_pair and task.label_names == ("False", "True")
    splits = load_glue(task)
    assert len(splits["test"]) == 9 and len(splits["train"]) + len(splits["validation"]) == 30


def test_tsv_with_integer_labels_and_float_labels_for_regression(tmp_path):
    ints = register_dataset(
        DatasetSpec(
            str(write_csv(tmp_path / "ints.tsv", ["text", "label"], [[f"t{i}", str(i % 3)] for i in range(30)], "\t"))
        )
    )
    assert ints.label_names == ("0", "1", "2")
    scores = register_dataset(
        DatasetSpec(
            str(write_csv(tmp_path / "scores.csv", ["text", "label"], [[f"t{i}", str(i / 7)] for i in range(30)]))
        )
    )
    assert scores.is_regression and scores.metrics == ("pearson", "spearmanr")
    assert isinstance(load_glue(scores)["train"]["label"][0], float)


def test_macro_f1_weighs_every_class_equally(tmp_path):
    task = register_dataset(
        DatasetSpec(str(write_csv(tmp_path / "m.csv", ["text", "label"], [[f"t{i}", "abc"[i % 3]] for i in range(30)])))
    )
    metrics = compute_metrics(task, [0, 0, 0, 0], [0, 0, 0, 1])
    assert metrics["accuracy"] == 0.75 and metrics["macro_f1"] == pytest.approx((2 * 0.75 / 1.75 + 0 + 0) / 3)


@pytest.mark.parametrize(
    "header, rows, match",
    [
        (["sentence", "label"], reviews(), r"no column\(s\) \['text'\]; its columns are \['sentence', 'label'\]"),
        (["text", "label"], [], "empty"),
        (["text", "label"], reviews(label=lambda i: "pos" if i % 2 else "3"), "mixed label types"),
        (
            ["text", "label"],
            reviews(label=lambda i: "" if i == 5 else "pos" if i % 2 else "neg"),
            "row 6 has an empty label",
        ),
        (["text", "label"], reviews(label=lambda i: "pos"), "one class only"),
    ],
)
def test_bad_files_get_clear_errors(tmp_path, header, rows, match):
    path = write_csv(tmp_path / "bad.csv", header, rows)
    with pytest.raises(DatasetSpecError, match=match):
        register_dataset(DatasetSpec(str(path)))


def test_unknown_labels_in_the_test_file_and_missing_files(tmp_path):
    write_csv(tmp_path / "train.csv", ["text", "label"], reviews())
    write_csv(tmp_path / "test.csv", ["text", "label"], reviews(6, label=lambda i: "neutral" if i == 2 else "pos"))
    with pytest.raises(
        DatasetSpecError, match=r"\[test\]: label\(s\) \['neutral'\] do not occur in the training split"
    ):
        register_dataset(DatasetSpec(str(tmp_path)))
    with pytest.raises(DatasetSpecError, match="Dataset not found"):
        register_dataset(DatasetSpec(str(tmp_path / "nope.csv")))
    (tmp_path / "only").mkdir()
    write_csv(tmp_path / "only" / "test.csv", ["text", "label"], reviews())
    with pytest.raises(DatasetSpecError, match="no train file"):
        register_dataset(DatasetSpec(str(tmp_path / "only")))
    with pytest.raises(DatasetSpecError, match="one or two columns"):
        DatasetSpec("x.csv", text_columns=("a", "b", "c"))


def test_mixed_label_kinds_across_splits(tmp_path):
    write_csv(tmp_path / "train.csv", ["text", "label"], reviews())
    write_csv(tmp_path / "dev.csv", ["text", "label"], reviews(6, label=lambda i: str(i % 2)))
    with pytest.raises(DatasetSpecError, match="mixed label types across splits"):
        register_dataset(DatasetSpec(str(tmp_path)))


def test_command_line_tells_glue_names_from_datasets(tmp_path):
    path = write_csv(tmp_path / "r.csv", ["text", "label"], reviews())
    assert spec_from_args("sst2", None, None) is None
    assert spec_from_args(str(path), None, None) == DatasetSpec(str(path))
    assert spec_from_args("hub:super_glue/boolq", "question,passage", "label").text_columns == ("question", "passage")
    # The task name carries a hash of the spec: other columns, another task (and other run ids).
    assert DatasetSpec(str(path)).short_name() != DatasetSpec(str(path), label_column="x").short_name()


@pytest.mark.slow  # trains a model
def test_one_command_fine_tunes_on_a_csv(tmp_path, capsys):
    from helpers.cli import main

    rows = [[f"the film was {'great' if i % 2 else 'awful'} .", "pos" if i % 2 else "neg"] for i in range(60)]
    path = write_csv(tmp_path / "mine.csv", ["review", "sentiment"], rows)
    code = main(
        [
            "train",
            "--task",
            str(path),
            "--text-columns",
            "review",
            "--label-column",
            "sentiment",
            "--method",
            "bitfit",
            "--epochs",
            "1",
            "--results-dir",
            str(tmp_path / "results"),
            "--quiet",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["run_id"].startswith("mine-") and set(out["test"]["metrics"]) == {"accuracy", "macro_f1"}
    assert (tmp_path / "results" / f"{out['run_id']}.json").is_file()


@pytest.mark.parametrize("labels", ["words", "floats"])
def test_a_record_carries_what_rebuilds_the_task_in_another_process(tmp_path, monkeypatch, glue_dir, labels):
    from helpers.datasets_spec import register_recorded_task
    from helpers.tasks import TASKS, _normalise

    label = (lambda i: "pos" if i % 2 else "neg") if labels == "words" else (lambda i: str(i / 7))
    task = register_dataset(DatasetSpec(str(write_csv(tmp_path / "r.csv", ["text", "label"], reviews(label=label)))))
    data = load_glue(task.name, cache_dir=tmp_path / "cache").glue_info.to_dict()
    assert data["dataset"]["label_names"] == list(task.label_names)
    monkeypatch.delitem(TASKS, _normalise(task.name))  # a fresh process: only GLUE's rows
    (tmp_path / "r.csv").unlink()  # nor does it need the file
    assert register_recorded_task({"config": {"task": task.name}, "data": data}) == task == get_task(task.name)
    # GLUE records are as before: no dataset key, nothing to register.
    glue = load_glue("sst2", glue_dir=glue_dir, cache_dir=tmp_path / "cache").glue_info.to_dict()
    assert "dataset" not in glue and register_recorded_task({"config": {"task": "sst2"}, "data": glue}) is None
    broken = {**data, "dataset": {**data["dataset"], "text_columns": ["a", "b", "c"]}}
    assert register_recorded_task({"config": {"task": "other-1234"}, "data": broken}) is None, "not a spec: unknown"
