"""Training with the packaged MiniLM on small fixtures: it learns, it records, it is reproducible."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fake_records import shape_problems
from glue_fixtures import write_file

from helpers.methods import MethodConfig
from helpers.records import REQUIRED_KEYS, RecordConfig, load_records
from helpers.training import RESOLVED_KEYS, TrainConfig, train

FAST = dict(batch_size=16, max_length=32, eval_batch_size=64, logging_steps=2)


def sst2_config(method="lora", **overrides):
    values = {
        "task": "sst2",
        "method": MethodConfig(method=method),
        "epochs": 3,
        "lr": 3e-3,
        "validation_fraction": 0.2,
        **FAST,
    }
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def lora_record(glue_dir, tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    return train(
        sst2_config(), glue_dir=glue_dir, results_dir=results, cache_dir=results / "cache", quiet=True
    ), results


def test_integration_run_learns_and_records_everything(lora_record):
    record, results = lora_record
    assert set(REQUIRED_KEYS) <= set(record)
    assert shape_problems(record) == [], "the record has the shape helpers.records.RunRecord declares"
    assert set(record["config"]) == {f.name for f in dataclasses.fields(TrainConfig)} | set(RESOLVED_KEYS)
    assert set(RecordConfig.__optional_keys__) == set(RESOLVED_KEYS)
    assert (results / f"{record['run_id']}.json").is_file()
    assert not list((results / "checkpoints").glob(record["run_id"] + "*")), "checkpoints are cleaned up"
    assert not list(results.glob("*.lock*")), "the run's lock is released"
    losses = [row["loss"] for row in record["history"]]
    assert len(losses) >= 5
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3, "training loss falls"
    assert all({"step", "epoch", "loss", "lr"} <= set(row) for row in record["history"])
    assert [e["epoch"] for e in record["evals"]] == [1.0, 2.0, 3.0]
    assert all({"step", "epoch", "split", "metrics"} <= set(e) for e in record["evals"])
    assert all(e["split"] == "validation" for e in record["evals"])
    assert {"step", "epoch", "metric", "value"} <= set(record["best"])
    assert record["best"]["metric"] == "accuracy" and record["best"]["value"] > 0.7, (
        "beats chance (0.5) on the easy fixture"
    )
    assert record["test"]["metrics"]["accuracy"] > 0.7
    # The majority-class floor is recorded for validation and test, and this run clears it.
    assert set(record["majority_class"]) == {"validation", "test"}
    assert 0.3 < record["majority_class"]["test"]["accuracy"] < 0.7
    assert record["test"]["metrics"]["accuracy"] > record["majority_class"]["test"]["accuracy"]
    config = record["config"]
    for key in (
        "task",
        "model",
        "method",
        "lr",
        "batch_size",
        "epochs",
        "warmup_ratio",
        "weight_decay",
        "max_length",
        "seed",
        "max_train_samples",
        "select_on",
    ):
        assert key in config
    assert config["method"] == {
        "method": "lora",
        "pooling": "model",
        "rank": 8,
        "alpha": 16.0,
        "lora_dropout": 0.1,
        "target_modules": None,
    }
    assert record["data"]["sizes"] == {"train": 96, "validation": 24, "test": 24}, "split sizes"
    assert set(record["data"]["token_lengths"]) == {"train", "validation", "test"}
    assert 3 < record["data"]["token_lengths"]["test"]["mean"] <= 32, "real tokens per example, truncated at max_length"
    assert {"python", "torch", "transformers", "peft", "device"} <= set(record["versions"])
    params = record["params"]
    assert params["trainable"] == params["lora_closed_form"] == 6 * 2 * 8 * (384 + 384) + 384 * 2 + 2
    assert params["percent"] == pytest.approx(100 * params["trainable"] / params["total"], abs=1e-5)
    timing = record["timing"]
    for key in ("train_seconds", "train_samples_per_second", "train_tokens_per_second", "eval_seconds"):
        assert timing[key] > 0
    assert timing["samples_seen"] == 3 * 96
    assert {"peak_bytes", "kind"} <= set(record["memory"])
    assert (
        record["memory"]["kind"] in ("cpu_breakdown_total", "cuda_max_allocated") and record["memory"]["peak_bytes"] > 0
    )
    assert record["memory"]["breakdown"]["activations_bytes"] > 0


def test_existing_record_is_loaded_instead_of_training(lora_record, glue_dir, monkeypatch):
    record, results = lora_record
    monkeypatch.setattr("helpers.training.load_glue", lambda *a, **k: pytest.fail("must not train again"))
    again = train(sst2_config(), glue_dir=glue_dir, results_dir=results, quiet=True)
    assert again["run_id"] == record["run_id"] and again["test"] == record["test"]


def test_a_run_being_trained_elsewhere_is_waited_for_and_not_trained_again(glue_dir, tmp_path, monkeypatch):
    import threading

    from transformers import EarlyStoppingCallback, PrinterCallback, Trainer, TrainingArguments  # noqa: F401 - transformers'

    # lazy imports are not thread-safe: import what train() uses before two threads do it at once
    from helpers.locks import RunLock
    from helpers.trainer import GlueTrainer  # noqa: F401 - imports transformers' Trainer too

    monkeypatch.setattr("helpers.locks.POLL_SECONDS", 0.1)
    config = sst2_config("head", epochs=1).with_data(glue_dir, tmp_path / "cache")  # the complete id names the lock
    elsewhere = RunLock(tmp_path, config.run_id)
    elsewhere.acquire(wait=False)  # another process claimed the run and is training it

    def finish_elsewhere():
        train(config, glue_dir=glue_dir, results_dir=tmp_path, cache_dir=tmp_path / "cache", quiet=True, lock=elsewhere)
        elsewhere.release()

    other = threading.Timer(0.3, finish_elsewhere)
    other.start()
    announced = []
    record = train(
        config,
        glue_dir=glue_dir,
        results_dir=tmp_path,
        cache_dir=tmp_path / "cache",
        quiet=True,
        announce=announced.append,
    )
    other.join()
    assert announced == [], "not trained here: the other process's record is returned"
    assert record == json.loads((tmp_path / f"{config.run_id}.json").read_text())


def test_same_config_and_seed_gives_the_same_metrics(lora_record, glue_dir, tmp_path):
    record, _ = lora_record
    again = train(sst2_config(), glue_dir=glue_dir, results_dir=tmp_path, cache_dir=tmp_path / "cache", quiet=True)
    assert again["test"] == record["test"]
    assert [e["metrics"] for e in again["evals"]] == [e["metrics"] for e in record["evals"]]
    assert [h["loss"] for h in again["history"]] == [h["loss"] for h in record["history"]]


def test_test_curves_are_scored_every_epoch_without_changing_what_trains_or_is_selected(
    lora_record, glue_dir, tmp_path
):
    record, _ = lora_record
    curves = train(
        sst2_config(eval_test=True), glue_dir=glue_dir, results_dir=tmp_path, cache_dir=tmp_path / "cache", quiet=True
    )
    assert curves["run_id"] != record["run_id"]
    assert [h["loss"] for h in curves["history"]] == [h["loss"] for h in record["history"]], "the same training"
    validation = [e for e in curves["evals"] if e["split"] == "validation"]
    assert [e["metrics"] for e in validation] == [e["metrics"] for e in record["evals"]]
    assert curves["best"] == record["best"], "selected on validation, as without test curves"
    test = {e["epoch"]: e["metrics"]["accuracy"] for e in curves["evals"] if e["split"] == "test"}
    assert sorted(test) == [1.0, 2.0, 3.0]
    assert test[curves["best"]["epoch"]] == pytest.approx(curves["test"]["metrics"]["accuracy"]), (
        "the reported test score is the curve's point at the selected epoch"
    )


def test_compile_pads_every_batch_to_a_fixed_bucket(glue_dir, tmp_path, monkeypatch):
    import torch

    import helpers.training as training

    lengths, compiled = [], []

    class RecordingCollator(training.GlueCollator):
        def __call__(self, rows):
            batch = super().__call__(rows)
            lengths.append(batch["input_ids"].shape[1])
            return batch

    monkeypatch.setattr(training, "GlueCollator", RecordingCollator)
    monkeypatch.setattr(
        torch, "compile", lambda model=None, **kwargs: compiled.append(kwargs) or model
    )  # the shapes, not inductor
    train(
        sst2_config("head", epochs=1, compile=True, max_length=64),
        glue_dir=glue_dir,
        results_dir=tmp_path,
        cache_dir=tmp_path / "cache",
        quiet=True,
    )
    assert compiled, "the model went through torch.compile"
    assert lengths and all(length % 32 == 0 for length in lengths), (
        f"lengths padded to multiples of 32, got {sorted(set(lengths))}"
    )


def test_run_id_follows_the_resolved_config():
    assert sst2_config().run_id == sst2_config().run_id
    assert sst2_config(seed=1).run_id != sst2_config().run_id
    assert sst2_config().run_id.startswith("sst2-lorar8-s0-")
    # Knobs a method does not use do not change its id.
    assert (
        TrainConfig(method=MethodConfig(method="bitfit", rank=4)).run_id
        == TrainConfig(method=MethodConfig(method="bitfit", rank=64)).run_id
    )
    assert TrainConfig(method=MethodConfig(method="bitfit")).lr == 3e-3


def test_full_fine_tuning_memorises_ten_examples(tmp_path):
    """The classic sanity check: 10 training examples, 20 epochs, 100% training accuracy."""
    rows = [
        [f"the {noun} was {word} .", str(label)]
        for noun, word, label in [
            ("film", "good", 1),
            ("movie", "bad", 0),
            ("plot", "moving", 1),
            ("cast", "dull", 0),
            ("song", "lovely", 1),
            ("book", "boring", 0),
            ("story", "fun", 1),
            ("show", "awful", 0),
            ("ending", "wise", 1),
            ("script", "flat", 0),
        ]
    ]
    for name in ("train.tsv", "dev.tsv"):  # dev = train, selected on dev: the test split *is* the training set
        write_file(tmp_path / "glue" / "SST-2" / name, ["sentence", "label"], rows)
    config = TrainConfig(
        task="sst2",
        method=MethodConfig(method="full"),
        epochs=20,
        lr=1e-4,
        batch_size=5,
        warmup_ratio=0.0,
        weight_decay=0.0,
        select_on="dev",
        max_length=16,
    )
    record = train(
        config, glue_dir=tmp_path / "glue", results_dir=tmp_path / "results", cache_dir=tmp_path / "cache", quiet=True
    )
    assert record["data"]["sizes"]["train"] == 10
    assert record["test"]["metrics"]["accuracy"] == 1.0


def test_bad_training_settings_fail_before_training():
    for kwargs, message in [
        ({"batch_size": 0}, "batch_size"),
        ({"warmup_ratio": 1.5}, "warmup_ratio"),
        ({"lr": -1.0}, "lr must be positive"),
        ({"recipe": "turbo"}, "recipe must be one of"),
    ]:
        with pytest.raises(ValueError, match=message):
            TrainConfig(**kwargs)


def test_cli_train_runs_and_reports(glue_dir, tmp_path):
    command = [
        sys.executable,
        "-m",
        "helpers",
        "train",
        "--task",
        "rte",
        "--method",
        "bitfit",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--max-length",
        "32",
        "--glue-dir",
        str(glue_dir),
        "--results-dir",
        str(tmp_path),
        "--quiet",
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "PEFT_GLUE_CACHE": str(tmp_path / "cache")}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["params"]["trainable"] < 0.2 * summary["params"]["total"]
    records, problems = load_records(tmp_path)
    assert len(records) == 1 and not problems
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", f"{records[0]['run_id']}.json"], (
        "no checkpoints/ or temp files left"
    )
    bad = subprocess.run([*command[:6], "--method", "lora", "--rank", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and "rank must be a positive integer" in bad.stderr and "Traceback" not in bad.stderr


def test_cli_names_a_model_it_cannot_load(glue_dir, tmp_path, monkeypatch, capsys):
    from helpers.cli import main
    from helpers.data import load_glue

    monkeypatch.setattr(
        "helpers.training.load_glue", lambda *a, **k: load_glue(*a, **{**k, "cache_dir": tmp_path / "cache"})
    )
    code = main(
        [
            "train",
            "--task",
            "rte",
            "--model",
            "/nonexistent/model",
            "--glue-dir",
            str(glue_dir),
            "--results-dir",
            str(tmp_path),
            "--quiet",
        ]
    )
    stderr = capsys.readouterr().err
    assert code == 2
    assert (
        "error: Could not load the model '/nonexistent/model'" in stderr
        and "must exist on the Hugging Face Hub" in stderr
    )


class StopBeforeTraining(Exception):
    """Raised by a patched step of `train` so a test checks what happens before training, cheaply."""


def stop(*args, **kwargs):
    raise StopBeforeTraining


def test_lora_closed_form_that_disagrees_with_the_count_is_logged(glue_dir, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr("helpers.training.lora_closed_form", lambda *args: 1)
    monkeypatch.setattr("helpers.training._make_trainer", stop)
    with pytest.raises(StopBeforeTraining):
        train(sst2_config(), glue_dir=glue_dir, results_dir=tmp_path, cache_dir=tmp_path / "cache", quiet=True)
    assert "LoRA closed form" in caplog.text and "1 trainable parameters" in caplog.text


def test_ddp_with_two_cpu_processes(glue_dir, tmp_path):
    """The same run launched with torchrun trains with DDP (gloo on CPU) and writes one record."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
        "-m",
        "helpers",
        "train",
        "--task",
        "sst2",
        "--method",
        "bitfit",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--max-length",
        "32",
        "--glue-dir",
        str(glue_dir),
        "--results-dir",
        str(tmp_path),
        "--quiet",
    ]
    env = {**os.environ, "PEFT_GLUE_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    records, _ = load_records(tmp_path)
    assert len(records) == 1
    record = records[0]
    assert record["versions"]["world_size"] == 2
    # 108 training rows, 8 per process per step, 2 processes: 7 optimizer steps in one epoch.
    assert record["timing"]["steps"] == 7


@pytest.mark.parametrize(
    "task, metrics",
    [
        ("stsb", {"pearson", "spearmanr"}),
        ("mnli", {"accuracy"}),
        ("qqp", {"accuracy", "f1"}),
        ("cola", {"matthews_correlation"}),
        ("qnli", {"accuracy"}),
        ("wnli", {"accuracy"}),
    ],
)
def test_tasks_without_local_data_train_and_are_scored_with_their_official_metrics(glue_dir, tmp_path, task, metrics):
    config = TrainConfig(task=task, method=MethodConfig(method="head"), epochs=1, batch_size=32, max_length=32, lr=1e-2)
    record = train(config, glue_dir=glue_dir, results_dir=tmp_path, cache_dir=tmp_path / "cache", quiet=True)
    expected_splits = {"test_matched", "test_mismatched"} if task == "mnli" else {"test"}
    assert set(record["test"]["splits"]) == expected_splits
    assert set(record["majority_class"]) == {"validation", *expected_splits}
    assert all(set(m) == metrics for m in record["majority_class"].values())
    for split_metrics in record["test"]["splits"].values():
        assert set(split_metrics) == metrics
        assert all(value == value for value in split_metrics.values()), "no NaN"
    assert record["best"]["metric"] == {"stsb": "pearson", "cola": "matthews_correlation"}.get(task, "accuracy")


def test_early_stopping_warmup_steps_and_evaluation_every_n_steps_and_every_epoch(glue_dir, tmp_path):
    """With a learning rate of ~0 the metric never improves: patience 3 stops the run after 4 evaluations."""
    config = TrainConfig(
        task="sst2",
        method=MethodConfig(method="head"),
        epochs=10,
        lr=1e-12,
        batch_size=16,
        max_length=32,
        warmup_steps=2,
        eval_steps=3,
        early_stopping_patience=3,
    )
    record = train(config, glue_dir=glue_dir, results_dir=tmp_path, cache_dir=tmp_path / "cache", quiet=True)
    # 108 training rows (120 less the 10% validation slice), 16 per step: 7 steps per epoch. Every 3 steps
    # (3, 6, 9) plus the end of the first epoch (7), which 3 does not divide.
    assert [e["step"] for e in record["evals"]] == [3, 6, 7, 9]
    assert record["evals"][2]["epoch"] == 1.0
    assert record["timing"]["steps"] == 9, "stopped early instead of running 10 epochs (70 steps)"
    assert record["best"]["step"] == 3
    # 2 warmup steps: the learning rate rises 0, lr/2, then peaks at the third step.
    assert [row["lr"] for row in record["history"][:3]] == pytest.approx([0.0, 0.5e-12, 1e-12], abs=1e-16)


def test_warmup_steps_must_be_a_whole_number_and_only_change_the_run_id_when_set():
    for bad in (-1, 0.5, True):
        with pytest.raises(ValueError, match="warmup_steps must be a whole number"):
            TrainConfig(warmup_steps=bad)
    assert TrainConfig(warmup_steps=None).run_id == TrainConfig().run_id
    assert TrainConfig(warmup_steps=10).run_id != TrainConfig().run_id


def test_records_of_different_data_coexist(lora_record, glue_dir, tmp_path, monkeypatch):
    """The same settings on other data (here the same rows in another order) are another run."""
    record, results = lora_record
    shuffled = tmp_path / "glue"
    shutil.copytree(glue_dir / "SST-2", shuffled / "SST-2")
    train_file = shuffled / "SST-2" / "train.tsv"
    header, *rows = train_file.read_text().splitlines()
    train_file.write_text("\n".join([header, *reversed(rows)]) + "\n")
    other = sst2_config().with_data(shuffled, results / "cache")
    assert other.data_fingerprint != record["config"]["data_fingerprint"] and other.run_id != record["run_id"]
    monkeypatch.setattr("helpers.training.load_glue", stop)
    with pytest.raises(StopBeforeTraining):  # not answered by the other data's record
        train(sst2_config(), glue_dir=shuffled, results_dir=results, cache_dir=results / "cache", quiet=True)
    assert (results / f"{record['run_id']}.json").is_file()
    assert record["data"]["source"] == "local:" + Path(glue_dir).name, "no machine path in the record"


def test_a_pinned_committed_run_id_is_unchanged():
    """One committed record's id, pinned: refactoring must not change ids (a long sweep would train
    everything again). tests/test_committed_records.py recomputes every committed record's id."""
    path = Path(__file__).resolve().parents[1] / "results" / "full" / "sst2-bitfit-s0-add7d437e3.json"
    pinned = TrainConfig.from_record(json.loads(path.read_text())["config"])
    assert pinned.run_id == "sst2-bitfit-s0-add7d437e3"


def test_one_config_one_run_id_however_it_is_spelled():
    base = TrainConfig(task="sst2", epochs=2, method=MethodConfig(method="lora", alpha=16))
    assert TrainConfig(task="SST-2", epochs=2.0, method=MethodConfig(method="lora", alpha=16.0)).run_id == base.run_id
    assert TrainConfig(task="sst2", epochs=2, model="sentence-transformers/all-MiniLM-L6-v2").run_id == base.run_id
    assert (
        TrainConfig(task="sst2", epochs=2, method=MethodConfig(method="lora", target_modules="query,value")).run_id
        == base.run_id
    )
    assert (
        TrainConfig(task="sst2", epochs=2, method=MethodConfig(method="lora", target_modules="query")).run_id
        != base.run_id
    )


def test_recipe_version_precision_and_data_are_part_of_the_identity():
    base = TrainConfig(task="sst2", data_fingerprint="abc")
    assert TrainConfig(task="sst2", data_fingerprint="abd").run_id != base.run_id
    assert TrainConfig(task="sst2", data_fingerprint="abc", recipe_version=1).run_id != base.run_id
    assert (
        TrainConfig(task="sst2", data_fingerprint="abc", precision="bf16").run_id
        != TrainConfig(task="sst2", data_fingerprint="abc", precision="fp32").run_id
    )
    # `auto` is hashed as what it resolves to on this machine
    from helpers.device import resolve_precision

    assert base.run_id == TrainConfig(task="sst2", data_fingerprint="abc", precision=resolve_precision("auto")).run_id
    with pytest.raises(ValueError, match="recipe_version"):
        TrainConfig(recipe_version=99)


def test_an_old_recipe_is_loaded_but_never_trained(glue_dir, tmp_path):
    with pytest.raises(ValueError, match="recipe version 1"):
        train(
            sst2_config(recipe_version=1),
            glue_dir=glue_dir,
            results_dir=tmp_path,
            cache_dir=tmp_path / "cache",
            quiet=True,
        )


def test_cli_switches_and_warmup_steps_reach_the_configs(monkeypatch):
    from helpers.cli import _run_values, build_parser, main
    from helpers.sweep import make_config

    args = build_parser().parse_args(
        ["train", "--task", "rte", "--compile", "--no-length-grouping", "--warmup-steps", "5"]
    )
    config = make_config(_run_values(args))
    assert (config.compile, config.length_grouping, config.warmup_steps) == (True, False, 5)
    defaults = make_config(_run_values(build_parser().parse_args(["train", "--task", "rte"])))
    assert (defaults.compile, defaults.length_grouping, defaults.warmup_steps) == (False, True, None)

    swept = []
    monkeypatch.setattr("helpers.sweep.run_sweep", lambda configs, **kwargs: swept.extend(configs) or [])
    assert main(["sweep", "--task", "rte", "--warmup-steps", "0,10", "--no-length-grouping", "--quiet"]) == 0
    assert [(c.warmup_steps, c.length_grouping) for c in swept] == [(0, False), (10, False)]


def test_recipe_version_2_ids_are_pinned():
    """Ids of the study's records: a change here makes every sweep train again."""
    assert TrainConfig(task="sst2", data_fingerprint="x", precision="fp32").run_id == "sst2-lorar8-s0-a7c30fb721"


def test_overfit_check_scores_the_training_split_every_epoch(glue_dir, tmp_path):
    config = sst2_config(method="full", lr=1e-4, epochs=4, max_train_samples=16, eval_train=True, batch_size=8)
    record = train(config, glue_dir=glue_dir, results_dir=tmp_path, cache_dir=tmp_path / "cache", quiet=True)
    by_split = {split: [e for e in record["evals"] if e["split"] == split] for split in ("train", "validation")}
    assert (
        [e["epoch"] for e in by_split["train"]] == [e["epoch"] for e in by_split["validation"]] == [1.0, 2.0, 3.0, 4.0]
    )
    assert by_split["train"][-1]["metrics"]["accuracy"] == 1.0, "16 examples, 4 epochs of full fine-tuning: memorised"
    assert record["best"]["value"] == max(e["metrics"]["accuracy"] for e in by_split["validation"]), (
        "selected on validation"
    )
    assert config.run_id != sst2_config(method="full", lr=1e-4, epochs=4, max_train_samples=16, batch_size=8).run_id


def test_report_to_is_off_by_default_and_tensorboard_logs_go_beside_the_records(tmp_path, monkeypatch):
    from helpers.training import _live_view

    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    monkeypatch.delenv("PEFT_GLUE_TENSORBOARD_AUTO", raising=False)
    assert _live_view(None, tmp_path, "a") == "none" and _live_view("none", tmp_path, "a") == "none"
    assert _live_view("tensorboard", tmp_path, "run-a") == ["tensorboard"]
    assert os.environ["TENSORBOARD_LOGGING_DIR"] == str(tmp_path / "tensorboard" / "run-a")
    _live_view("tensorboard", tmp_path, "run-b")  # each run its own folder
    assert os.environ["TENSORBOARD_LOGGING_DIR"] == str(tmp_path / "tensorboard" / "run-b")
    monkeypatch.delenv("PEFT_GLUE_TENSORBOARD_AUTO")
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", "/elsewhere")
    _live_view("tensorboard,wandb", tmp_path, "run-c")
    assert os.environ["TENSORBOARD_LOGGING_DIR"] == "/elsewhere", "a folder the user chose is kept"
