import pytest

import helpers.sweep as sweep_module
from helpers.sweep import expand_grid, run_sweep


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
    configs = expand_grid({"task": ["rte"], "method": ["head"], "seed": [0, 1, 2]}, fixed={"epochs": 1, "batch_size": 16, "max_length": 32, "lr": 1e-2})
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
    assert printed.count("trainable params:") == 1 and configs[2].run_id in printed, "one parameter-count line per trained run"
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
