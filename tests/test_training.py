"""Training with the packaged MiniLM on small fixtures: it learns, it records, it is reproducible."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from glue_fixtures import write_file
from helpers.methods import MethodConfig
from helpers.records import REQUIRED_KEYS, load_records
from helpers.training import TrainConfig, train

FAST = dict(batch_size=16, max_length=32, eval_batch_size=64, logging_steps=2)


def sst2_config(method="lora", **overrides):
    values = {"task": "sst2", "method": MethodConfig(method=method), "epochs": 3, "lr": 3e-3, "validation_fraction": 0.2, **FAST}
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def lora_record(glue_dir, tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    return train(sst2_config(), glue_dir=glue_dir, results_dir=results, cache_dir=results / "cache", quiet=True), results


def test_integration_run_learns_and_records_everything(lora_record):
    record, results = lora_record
    assert set(REQUIRED_KEYS) <= set(record)
    assert (results / f"{record['run_id']}.json").is_file()
    assert not (results / "checkpoints" / record["run_id"]).exists(), "checkpoints are cleaned up"
    losses = [row["loss"] for row in record["history"]]
    assert len(losses) >= 5
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3, "training loss falls"
    assert [e["epoch"] for e in record["evals"]] == [1.0, 2.0, 3.0]
    assert all(e["split"] == "validation" for e in record["evals"])
    assert record["best"]["metric"] == "accuracy" and record["best"]["value"] > 0.7, "beats chance (0.5) on the easy fixture"
    assert record["test"]["metrics"]["accuracy"] > 0.7
    config = record["config"]
    for key in ("task", "model", "method", "lr", "batch_size", "epochs", "warmup_ratio", "weight_decay", "max_length", "seed", "max_train_samples", "select_on"):
        assert key in config
    assert config["method"] == {"method": "lora", "pooling": "model", "rank": 8, "alpha": 16.0, "lora_dropout": 0.1, "target_modules": None}
    assert record["data"]["sizes"] == {"train": 96, "validation": 24, "test": 24}
    assert {"python", "torch", "transformers", "peft", "device"} <= set(record["versions"])
    params = record["params"]
    assert params["trainable"] == params["lora_closed_form"] == 6 * 2 * 8 * (384 + 384) + 384 * 2 + 2
    assert params["percent"] == pytest.approx(100 * params["trainable"] / params["total"], abs=1e-5)
    timing = record["timing"]
    for key in ("train_seconds", "train_samples_per_second", "train_tokens_per_second", "eval_seconds"):
        assert timing[key] > 0
    assert timing["samples_seen"] == 3 * 96
    assert record["memory"]["kind"] in ("cpu_breakdown_total", "cuda_max_allocated") and record["memory"]["peak_bytes"] > 0
    assert record["memory"]["breakdown"]["activations_bytes"] > 0


def test_existing_record_is_loaded_instead_of_training(lora_record, glue_dir, monkeypatch):
    record, results = lora_record
    monkeypatch.setattr("helpers.training.load_glue", lambda *a, **k: pytest.fail("must not train again"))
    again = train(sst2_config(), glue_dir=glue_dir, results_dir=results, quiet=True)
    assert again["run_id"] == record["run_id"] and again["test"] == record["test"]


def test_same_config_and_seed_gives_the_same_metrics(lora_record, glue_dir, tmp_path):
    record, _ = lora_record
    again = train(sst2_config(), glue_dir=glue_dir, results_dir=tmp_path, cache_dir=tmp_path / "cache", quiet=True)
    assert again["test"] == record["test"]
    assert [e["metrics"] for e in again["evals"]] == [e["metrics"] for e in record["evals"]]
    assert [h["loss"] for h in again["history"]] == [h["loss"] for h in record["history"]]


def test_run_id_follows_the_resolved_config():
    assert sst2_config().run_id == sst2_config().run_id
    assert sst2_config(seed=1).run_id != sst2_config().run_id
    assert sst2_config().run_id.startswith("sst2-lorar8-s0-")
    # Knobs a method does not use do not change its id.
    assert TrainConfig(method=MethodConfig(method="bitfit", rank=4)).run_id == TrainConfig(method=MethodConfig(method="bitfit", rank=64)).run_id
    assert TrainConfig(method=MethodConfig(method="bitfit")).lr == 3e-3


def test_full_fine_tuning_memorises_ten_examples(tmp_path):
    """The classic sanity check: 10 training examples, 20 epochs, 100% training accuracy."""
    rows = [[f"the {noun} was {word} .", str(label)] for noun, word, label in [
        ("film", "good", 1), ("movie", "bad", 0), ("plot", "moving", 1), ("cast", "dull", 0), ("song", "lovely", 1),
        ("book", "boring", 0), ("story", "fun", 1), ("show", "awful", 0), ("ending", "wise", 1), ("script", "flat", 0)]]
    for name in ("train.tsv", "dev.tsv"):  # dev = train, selected on dev: the test split *is* the training set
        write_file(tmp_path / "glue" / "SST-2" / name, ["sentence", "label"], rows)
    config = TrainConfig(task="sst2", method=MethodConfig(method="full"), epochs=20, lr=1e-4, batch_size=5, warmup_ratio=0.0, weight_decay=0.0, select_on="dev", max_length=16)
    record = train(config, glue_dir=tmp_path / "glue", results_dir=tmp_path / "results", cache_dir=tmp_path / "cache", quiet=True)
    assert record["data"]["sizes"]["train"] == 10
    assert record["test"]["metrics"]["accuracy"] == 1.0


def test_bad_training_settings_fail_before_training():
    for kwargs, message in [({"batch_size": 0}, "batch_size"), ({"warmup_ratio": 1.5}, "warmup_ratio"), ({"lr": -1.0}, "lr must be positive"), ({"recipe": "turbo"}, "recipe must be one of")]:
        with pytest.raises(ValueError, match=message):
            TrainConfig(**kwargs)


def test_cli_train_runs_and_reports(glue_dir, tmp_path):
    command = [sys.executable, "-m", "helpers", "train", "--task", "rte", "--method", "bitfit", "--epochs", "1", "--batch-size", "16",
               "--max-length", "32", "--glue-dir", str(glue_dir), "--results-dir", str(tmp_path), "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PEFT_GLUE_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["params"]["trainable"] < 0.2 * summary["params"]["total"]
    records, problems = load_records(tmp_path)
    assert len(records) == 1 and not problems
    bad = subprocess.run([*command[:6], "--method", "lora", "--rank", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and "rank must be a positive integer" in bad.stderr and "Traceback" not in bad.stderr


def test_ddp_with_two_cpu_processes(glue_dir, tmp_path):
    """The same run launched with torchrun trains with DDP (gloo on CPU) and writes one record."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517", "-m", "helpers", "train",
               "--task", "sst2", "--method", "bitfit", "--epochs", "1", "--batch-size", "8", "--max-length", "32",
               "--glue-dir", str(glue_dir), "--results-dir", str(tmp_path), "--quiet"]
    env = {**os.environ, "PEFT_GLUE_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    records, _ = load_records(tmp_path)
    assert len(records) == 1
    record = records[0]
    assert record["versions"]["world_size"] == 2
    # 108 training rows, 8 per process per step, 2 processes: 7 optimizer steps in one epoch.
    assert record["timing"]["steps"] == 7


@pytest.mark.parametrize("task, metrics", [
    ("stsb", {"pearson", "spearmanr"}),
    ("mnli", {"accuracy"}),
    ("qqp", {"accuracy", "f1"}),
    ("cola", {"matthews_correlation"}),
    ("qnli", {"accuracy"}),
    ("wnli", {"accuracy"}),
])
def test_tasks_without_local_data_train_and_are_scored_with_their_official_metrics(glue_dir, tmp_path, task, metrics):
    config = TrainConfig(task=task, method=MethodConfig(method="head"), epochs=1, batch_size=32, max_length=32, lr=1e-2)
    record = train(config, glue_dir=glue_dir, results_dir=tmp_path, cache_dir=tmp_path / "cache", quiet=True)
    expected_splits = {"test_matched", "test_mismatched"} if task == "mnli" else {"test"}
    assert set(record["test"]["splits"]) == expected_splits
    for split_metrics in record["test"]["splits"].values():
        assert set(split_metrics) == metrics
        assert all(value == value for value in split_metrics.values()), "no NaN"
    assert record["best"]["metric"] == {"stsb": "pearson", "cola": "matthews_correlation"}.get(task, "accuracy")


def test_early_stopping_and_evaluation_every_n_steps(glue_dir, tmp_path):
    """With a learning rate of ~0 the metric never improves: patience 2 stops the run after 3 evaluations."""
    config = TrainConfig(task="sst2", method=MethodConfig(method="head"), epochs=10, lr=1e-12, batch_size=16, max_length=32,
                         warmup_ratio=0.0, eval_steps=3, early_stopping_patience=2)
    record = train(config, glue_dir=glue_dir, results_dir=tmp_path, cache_dir=tmp_path / "cache", quiet=True)
    assert [e["step"] for e in record["evals"]] == [3, 6, 9]
    assert record["timing"]["steps"] == 9, "stopped early instead of running 10 epochs (70 steps)"
    assert record["best"]["step"] == 3
