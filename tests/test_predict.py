"""Using a trained run: its saved weights reload into a model that scores the test split as the run did."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_a_saved_run_reproduces_its_test_score_and_predicts_files(glue_dir, tmp_path, capsys):
    from helpers.cli import main
    from helpers.data import load_glue
    from helpers.methods import MethodConfig
    from helpers.metrics import compute_metrics
    from helpers.predict import load_trained_model, predict_texts
    from helpers.training import TrainConfig, train

    config = TrainConfig(
        task="sst2",
        method=MethodConfig(method="lora"),
        epochs=2,
        max_train_samples=64,
        max_validation_samples=16,
        batch_size=16,
        precision="fp32",
    )
    record = train(
        config, glue_dir=glue_dir, results_dir=tmp_path, cache_dir=tmp_path / "cache", quiet=True, save_adapter=True
    )
    path = tmp_path / f"{record['run_id']}.json"
    model, tokenizer, task, _ = load_trained_model(path)
    test = load_glue("sst2", glue_dir=glue_dir)["test"]
    predictions = predict_texts(model, tokenizer, task, test["sentence"])
    predicted = [task.label_names.index(p["label"]) for p in predictions]
    # The reloaded adapter and head score the test split exactly as the run did (a fresh head would not, but for luck).
    assert compute_metrics(task, predicted, test["label"]) == record["test"]["metrics"]
    # From the command line, on a file: one JSON line per row.
    data = tmp_path / "new.csv"
    pandas.DataFrame({"sentence": test["sentence"][:3]}).to_csv(data, index=False)
    assert main(["predict", "--run", str(path), "--file", str(data)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [line["label"] for line in lines] == [p["label"] for p in predictions[:3]]
    assert main(["predict", "--run", str(path), "--text", "a", "--text-pair", "b"]) == 2  # SST-2 reads one text


@pytest.mark.slow
def test_predict_on_a_run_of_a_users_csv_works_in_a_fresh_process(tmp_path):
    """The task of a user's dataset is registered by the process that trained; a new process rebuilds its row
    from the record (its columns and label names), without reading the training file."""
    from tiny_models import write_tiny_model

    from helpers.cli import main

    rows = [[f"the film was {'great' if i % 2 else 'awful'} .", "pos" if i % 2 else "neg"] for i in range(40)]
    data = tmp_path / "mine.csv"
    pandas.DataFrame(rows, columns=["review", "sentiment"]).to_csv(data, index=False)
    model = write_tiny_model("distilbert", tmp_path / "tiny", [row[0] for row in rows])
    results = tmp_path / "results"
    train = ["train", "--task", str(data), "--text-columns", "review", "--label-column", "sentiment"]
    train += ["--model", str(model), "--method", "lora", "--epochs", "1", "--precision", "fp32"]
    assert main([*train, "--results-dir", str(results), "--save-adapter", "--quiet"]) == 0
    (record,) = results.glob("mine-*.json")
    data.rename(tmp_path / "moved.csv")  # predicting needs the run, not its training data

    predicted = subprocess.run(
        [sys.executable, "-m", "helpers", "predict", "--run", str(record), "--text", "the film was great ."],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    assert json.loads(predicted.stdout)["label"] in ("neg", "pos")
