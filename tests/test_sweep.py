import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import helpers.sweep as sweep_module
from helpers.locks import RunLock, lock_path
from helpers.sweep import expand_grid, parse_shard, run_sweep, shard_of


def test_grid_expands_and_method_specific_knobs_only_vary_their_methods():
    configs = expand_grid({"task": ["sst2", "mrpc"], "method": ["bitfit", "lora"], "rank": [4, 8], "seed": [0, 1]})
    # bitfit ignores the rank: 2 tasks x 2 seeds x (1 bitfit + 2 lora ranks)
    assert len(configs) == 12
    assert len({c.run_id for c in configs}) == 12
    assert {c.method.rank for c in configs if c.method.method == "lora"} == {4, 8}


def test_unknown_setting_is_named():
    with pytest.raises(ValueError, match=r"Unknown setting\(s\) \['colour'\]"):
        expand_grid({"colour": ["red"]})


def test_a_killed_sweep_resumes_without_recomputing(glue_dir, tmp_path, monkeypatch, capsys):
    configs = expand_grid(
        {"task": ["rte"], "method": ["head"], "seed": [0, 1, 2]},
        fixed={"epochs": 1, "batch_size": 16, "max_length": 32, "lr": 1e-2},
    )
    configs = [c.with_data(glue_dir, tmp_path / "cache") for c in configs]  # complete ids, as the sweep makes them
    real_train = sweep_module.train
    trained = []

    def train_then_die(config, **kwargs):
        if len(trained) == 2:
            raise KeyboardInterrupt  # the sweep is killed during its third run
        trained.append(config.run_id)
        return real_train(config, **kwargs)

    monkeypatch.setattr(sweep_module, "train", train_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(configs, glue_dir=glue_dir, results_dir=tmp_path, cache_dir=tmp_path / "cache", progress=False)
    assert sorted(p.stem for p in tmp_path.glob("*.json")) == sorted(trained)

    from helpers.data import load_glue

    loads = []
    monkeypatch.setattr(sweep_module, "train", real_train)
    monkeypatch.setattr("helpers.training.load_glue", lambda *a, **k: loads.append(1) or load_glue(*a, **k))
    capsys.readouterr()
    records = run_sweep(configs, glue_dir=glue_dir, results_dir=tmp_path, cache_dir=tmp_path / "cache", progress=True)
    assert len(loads) == 1, "only the run without a record is trained"
    printed = capsys.readouterr().out
    assert printed.count("trainable params:") == 1 and configs[2].run_id in printed, (
        "one parameter-count line per trained run"
    )
    assert [r["run_id"] for r in records] == [c.run_id for c in configs]
    assert len(list(tmp_path.glob("*.json"))) == 3


def test_experiment_grids_add_the_default_rate_and_filter_methods():
    from helpers.experiments import experiment_configs
    from helpers.training import DEFAULT_LR

    rates = {(c.method.method, c.lr) for c in experiment_configs("lr_sweep", "smoke", tasks=("sst2",))}
    assert ("bitfit", DEFAULT_LR["bitfit"]) in rates and ("full", DEFAULT_LR["full"]) in rates
    chosen = experiment_configs("methods", "smoke", tasks=("sst2",), methods=["lora", "bitfit (sparse)"])
    assert sorted((c.method.method, c.method.bitfit_variant) for c in chosen) == [("bitfit", "sparse"), ("lora", "all")]
    with pytest.raises(ValueError, match="Unknown method"):
        experiment_configs("methods", "smoke", methods=["lorax"])
    with pytest.raises(ValueError, match="not a string"):
        experiment_configs("methods", "smoke", methods="lora")


# ---------------------------------------------------------------------------------------------
# Sharing a results folder: locks, workers, shards
# ---------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
# Keys of a record that the training decides (not when or how fast it ran).
RESULT_KEYS = (
    "run_id",
    "config",
    "data",
    "params",
    "trainable_names",
    "history",
    "evals",
    "best",
    "test",
    "majority_class",
)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    from transformers import AutoModelForSequenceClassification, BertConfig

    from helpers.models import load_tokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = load_tokenizer()
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
    )
    AutoModelForSequenceClassification.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def tiny_grid(model: str) -> dict:
    return {
        "task": ["sst2", "rte"],
        "method": ["bitfit", "lora"],
        "model": [model],
        "epochs": [1],
        "batch_size": [16],
        "max_length": [32],
        "max_train_samples": [48],
        "max_validation_samples": [16],
    }


# A sweep in its own process: waits for the start signal (so two start together), logs what it trained.
SWEEP_SCRIPT = """
import json, sys, time
from pathlib import Path
import helpers.sweep as sweep
grid, results, cache, glue, shard, log, start = json.loads(sys.argv[1])
real_train = sweep.train
def logged_train(config, **kwargs):
    with open(log, "a") as handle:
        handle.write(config.run_id + "\\n")
    return real_train(config, **kwargs)
sweep.train = logged_train
configs = sweep.expand_grid(grid)
while not Path(start).exists():
    time.sleep(0.01)
sweep.run_sweep(
    configs, glue_dir=glue, results_dir=results, cache_dir=cache, progress=False, threads=1, shard=shard, poll=0.2
)
"""


def sweeps_started_together(tmp_path, grid, results, glue_dir, shards) -> list[list[str]]:
    """Start one sweep process per shard (None: the whole grid) at the same moment; the run ids each trained."""
    start = tmp_path / "start"
    start.unlink(missing_ok=True)
    logs = [tmp_path / f"trained-{i}.txt" for i in range(len(shards))]
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                SWEEP_SCRIPT,
                json.dumps([grid, str(results), str(tmp_path / "cache"), str(glue_dir), shard, str(log), str(start)]),
            ],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
        )
        for shard, log in zip(shards, logs)
    ]
    time.sleep(1.0)
    start.touch()
    for process in processes:
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr[-3000:]
    return [log.read_text().split() if log.exists() else [] for log in logs]


def results_of(folder: Path) -> dict:
    return {
        path.stem: {key: json.loads(path.read_text())[key] for key in RESULT_KEYS}
        for path in sorted(folder.glob("*.json"))
    }


def test_two_sweeps_started_together_train_every_run_once(tiny_model, glue_dir, tmp_path):
    grid = tiny_grid(tiny_model)
    run_ids = sorted(c.with_data(glue_dir).run_id for c in expand_grid(grid))
    trained = sweeps_started_together(tmp_path, grid, tmp_path / "results", glue_dir, [None, None])
    assert sorted(trained[0] + trained[1]) == run_ids, "each run trained by exactly one of the two sweeps"
    assert sorted(p.stem for p in (tmp_path / "results").glob("*.json")) == run_ids
    assert not list((tmp_path / "results").glob("*.lock*")), "every lock released"
    assert not (tmp_path / "results" / "checkpoints").exists(), (
        "per-process checkpoint folders removed, then their parent"
    )


def test_two_shards_in_parallel_give_the_records_of_one_sweep_with_two_workers(
    tiny_model, glue_dir, tmp_path, caplog, capsys
):
    grid = tiny_grid(tiny_model)
    configs = [c.with_data(glue_dir) for c in expand_grid(grid)]
    with caplog.at_level(logging.INFO, logger="helpers.sweep"):
        records = run_sweep(
            configs,
            glue_dir=glue_dir,
            results_dir=tmp_path / "one",
            cache_dir=tmp_path / "cache",
            progress=True,
            workers=2,
            threads=1,
            poll=0.2,
        )
    assert [r["run_id"] for r in records] == [c.run_id for c in configs]
    trained = [message for message in caplog.messages if "trained by worker" in message]
    assert sorted(m.split("]")[0][1:] for m in trained) == sorted(c.run_id for c in configs), (
        "each run trained once over the workers"
    )
    printed = capsys.readouterr().out
    assert printed.count("trainable params:") == len(configs) and "another process" not in printed, (
        "the workers' runs count once"
    )

    by_shard = sweeps_started_together(tmp_path, grid, tmp_path / "sharded", glue_dir, ["0/2", "1/2"])
    assert sorted(by_shard[0]) == sorted(c.run_id for c in shard_of(configs, "0/2"))
    assert sorted(by_shard[1]) == sorted(c.run_id for c in shard_of(configs, "1/2"))
    assert results_of(tmp_path / "sharded") == results_of(tmp_path / "one"), "the same records, value for value"


def test_shards_split_the_grid_whatever_its_order():
    configs = expand_grid({"task": ["sst2", "mrpc", "rte"], "method": ["bitfit", "lora"], "seed": [0, 1, 2]})
    shards = [shard_of(configs, f"{i}/4") for i in range(4)]
    ids = [c.run_id for shard in shards for c in shard]
    assert sorted(ids) == sorted(c.run_id for c in configs) and len(set(ids)) == len(ids), (
        "every run in exactly one shard"
    )
    assert max(map(len, shards)) - min(map(len, shards)) <= 1, "balanced"
    reordered = expand_grid({"seed": [2, 0, 1], "method": ["lora", "bitfit"], "task": ["rte", "sst2", "mrpc"]})
    assert [sorted(c.run_id for c in shard_of(reordered, f"{i}/4")) for i in range(4)] == [
        sorted(c.run_id for c in s) for s in shards
    ]
    assert shard_of(configs, None) == configs
    for text in ("4/4", "-1/2", "1", "a/b"):
        with pytest.raises(ValueError, match="i/n"):
            parse_shard(text)


def test_a_sweep_waits_for_a_run_another_process_trains_and_takes_over_a_dead_ones(
    tiny_model, glue_dir, tmp_path, monkeypatch
):
    configs = [
        c.with_data(glue_dir)
        for c in expand_grid({**tiny_grid(tiny_model), "task": ["sst2"], "method": ["bitfit"], "seed": [0, 1]})
    ]
    busy, dead = configs
    results = tmp_path / "results"
    held = RunLock(results, busy.run_id)
    held.acquire(wait=False)  # "another process" is training the first run
    lock_path(results, dead.run_id).write_text(
        json.dumps({"host": "node-7", "pid": 1, "pid_namespace": None, "token": "x"})
    )
    os.utime(
        lock_path(results, dead.run_id), (time.time() - 3600, time.time() - 3600)
    )  # its heartbeat stopped an hour ago
    trained = []
    real_train = sweep_module.train

    def train_and_note(config, **kwargs):
        trained.append(config.run_id)
        return real_train(config, **kwargs)

    monkeypatch.setattr(sweep_module, "train", train_and_note)

    def finish_busy_run_elsewhere():  # the other process writes its record and releases
        # after the sweep trained the dead run: two Trainers in threads of one process share accelerate's state
        deadline = time.time() + 600
        while not (results / f"{dead.run_id}.json").exists() and time.time() < deadline:
            time.sleep(0.2)
        real_train(busy, glue_dir=glue_dir, results_dir=results, cache_dir=tmp_path / "cache", quiet=True, lock=held)
        held.release()

    other = threading.Thread(target=finish_busy_run_elsewhere)
    other.start()
    records = run_sweep(
        configs, glue_dir=glue_dir, results_dir=results, cache_dir=tmp_path / "cache", progress=False, poll=0.2
    )
    other.join()
    assert trained == [dead.run_id], "the stale run is taken over; the busy one is waited for, not trained again"
    assert [r["run_id"] for r in records] == [busy.run_id, dead.run_id]


def test_force_retrains_each_run_once_whatever_its_record(tiny_model, glue_dir, tmp_path, monkeypatch):
    configs = [
        c.with_data(glue_dir) for c in expand_grid({**tiny_grid(tiny_model), "task": ["sst2"], "method": ["bitfit"]})
    ]
    first = run_sweep(configs, glue_dir=glue_dir, results_dir=tmp_path, cache_dir=tmp_path / "cache", progress=False)
    trained = []
    real_train = sweep_module.train
    monkeypatch.setattr(
        sweep_module, "train", lambda config, **kwargs: trained.append(config.run_id) or real_train(config, **kwargs)
    )
    again = run_sweep(
        configs, glue_dir=glue_dir, results_dir=tmp_path, cache_dir=tmp_path / "cache", progress=False, force=True
    )
    assert trained == [configs[0].run_id], "trained again, once"
    assert again[0]["created"] >= first[0]["created"] and again[0]["test"] == first[0]["test"]


def test_a_worker_that_fails_stops_the_sweep_with_its_error(tiny_model, glue_dir, tmp_path):
    good = [
        c.with_data(glue_dir) for c in expand_grid({**tiny_grid(tiny_model), "task": ["sst2"], "method": ["bitfit"]})
    ]
    weightless = tmp_path / "weightless-model"  # passes the checks before training (its config is fine), fails to load
    weightless.mkdir()
    shutil.copy(Path(tiny_model) / "config.json", weightless / "config.json")
    broken = [
        c.with_data(glue_dir)
        for c in expand_grid(
            {**tiny_grid(tiny_model), "task": ["sst2"], "method": ["bitfit"], "model": [str(weightless)]}
        )
    ]
    with pytest.raises(RuntimeError, match=f"failed on {broken[0].run_id}"):
        run_sweep(
            broken + good,
            glue_dir=glue_dir,
            results_dir=tmp_path / "results",
            cache_dir=tmp_path / "cache",
            progress=False,
            workers=2,
            threads=1,
            poll=0.2,
        )
    assert not list((tmp_path / "results").glob("*.lock")), "the failed run's lock is released"
