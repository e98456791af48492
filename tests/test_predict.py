"""Using a trained run: its saved weights reload into a model that scores the test split as the run did."""

from __future__ import annotations

import json

import pandas


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
