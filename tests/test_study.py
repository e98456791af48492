"""The study's tiers: which runs each tier asks for, decided from (here: hand-made) validation scores."""

import dataclasses

import pytest

from helpers import study


@pytest.fixture
def scores(monkeypatch):
    """Validation scores by (task, method, lr, seed); runs not in the dict have no record yet."""
    table = {}
    monkeypatch.setattr(study, "_best_validation", lambda config, results_dir, glue_dir: table.get(_key(config)))
    return table


def _key(config):
    return config.task, config.method.method, config.lr, config.seed


def _points(configs):
    return sorted(_key(config) for config in configs)


def test_outward_steps_follow_the_half_decade_ladder():
    assert study._outward(3e-4, up=False) == 1e-4
    assert study._outward(1e-3, up=False) == 3e-4
    assert study._outward(3e-2, up=True) == 1e-1
    assert study._outward(1e-2, up=True) == 3e-2


def test_tier_1b_takes_seeds_1_and_2_at_the_best_rate_and_its_neighbours(scores):
    grid = study.LR_GRID["lora"]  # 3e-4, 1e-3, 3e-3, 1e-2
    scores.update({("mrpc", "lora", lr, 0): value for lr, value in zip(grid, [0.70, 0.75, 0.80, 0.72])})
    wanted = [("mrpc", "lora", lr, seed) for lr in (1e-3, 3e-3, 1e-2) for seed in (1, 2)]
    assert _points(study.tier_1b()) == sorted(wanted)


def test_a_best_rate_on_the_grid_edge_extends_the_ladder_by_one_step(scores):
    grid = study.LR_GRID["bitfit"]  # 3e-4 ... 3e-2: best at the top edge
    scores.update({("sst2", "bitfit", lr, 0): 0.6 + 0.05 * i for i, lr in enumerate(grid)})
    assert study.rate_ladder("sst2", "bitfit") == (*grid, 1e-1)
    runs = _points(study.tier_1b())
    # The rate beyond the edge is new: it needs seed 0 as well; the grid's own rates only seeds 1 and 2.
    assert [p for p in runs if p[2] == 1e-1] == [("sst2", "bitfit", 1e-1, seed) for seed in (0, 1, 2)]
    assert [p for p in runs if p[2] == 3e-2] == [("sst2", "bitfit", 3e-2, seed) for seed in (1, 2)]
    assert {p[2] for p in runs} == {1e-2, 3e-2, 1e-1}


def test_selected_rate_is_the_best_mean_over_three_seeds_not_the_best_single_seed(scores):
    # 1e-3 has the best single run (seed 0) but the lower mean; 1e-2 lacks a seed and cannot be chosen.
    values = {1e-3: [0.90, 0.60, 0.60], 3e-3: [0.80, 0.79, 0.81], 1e-2: [0.95, 0.95]}
    for lr, runs in values.items():
        scores.update({("mrpc", "lora", lr, seed): value for seed, value in enumerate(runs)})
    assert study.selected_rates() == {("mrpc", "lora"): 3e-3}


def test_a_grid_where_every_rate_ties_is_not_extended_and_centres_on_the_default_rate(scores):
    grid = study.LR_GRID["bitfit"]  # MRPC BitFit in the study: the majority class at every rate
    scores.update({("mrpc", "bitfit", lr, 0): 0.676 for lr in grid})
    assert study.rate_ladder("mrpc", "bitfit") == grid
    default = study.DEFAULT_LR["bitfit"]  # 3e-3
    assert {p[2] for p in _points(study.tier_1b())} == {grid[grid.index(default) + k] for k in (-1, 0, 1)}


def test_tier_1d_trains_each_method_longer_on_mrpc_at_its_selected_rate(scores):
    for lr in study.LR_GRID["bitfit"]:  # BitFit: the majority class at every rate, every seed
        scores.update({("mrpc", "bitfit", lr, seed): 0.676 for seed in (0, 1, 2)})
    lora = {3e-4: 0.70, 1e-3: 0.75, 3e-3: 0.72, 1e-2: 0.60}
    scores.update({("mrpc", "lora", lr, seed): value for lr, value in lora.items() for seed in (0, 1, 2)})
    full = {3e-5: 0.71, 1e-4: 0.77, 3e-4: 0.74}  # the head has no records yet: not listed
    scores.update({("mrpc", "full", lr, seed): value for lr, value in full.items() for seed in (0, 1, 2)})
    configs = study.tier_1d()
    assert _points(configs) == sorted(
        [("mrpc", "bitfit", study.DEFAULT_LR["bitfit"], s) for s in (0, 1, 2)]
        + [("mrpc", "lora", 1e-3, s) for s in (0, 1, 2)]
        + [("mrpc", "full", 1e-4, s) for s in (0, 1, 2)]
    )
    assert {(c.epochs, c.max_train_samples) for c in configs} == {(study.LONGER["epochs"], None)}


def test_tier_1e_gives_sst2_lora_and_bitfit_a_third_epoch_at_their_selected_rates(scores):
    lora = {1e-3: 0.84, 3e-3: 0.86, 1e-2: 0.83}
    scores.update({("sst2", "lora", lr, seed): value for lr, value in lora.items() for seed in (0, 1, 2)})
    configs = study.tier_1e()  # BitFit has no records yet: not listed
    assert _points(configs) == [("sst2", "lora", 3e-3, s) for s in (0, 1, 2)]
    assert {(c.epochs, c.max_train_samples, c.eval_test) for c in configs} == {(3, None, True)}


def test_a_method_that_learned_nothing_at_any_rate_is_selected_and_varied_at_its_default_rate(scores):
    for lr in study.LR_GRID["bitfit"]:  # MRPC BitFit: the majority class at every rate, every seed
        scores.update({("mrpc", "bitfit", lr, seed): 0.676 for seed in (0, 1, 2)})
    assert study.selected_rates()[("mrpc", "bitfit")] == study.DEFAULT_LR["bitfit"]  # a tie: the default rate
    configs = study.tier_3()
    assert {c.lr for c in configs} == {study.DEFAULT_LR["bitfit"]}
    # The centre (tier 1b's runs), then batch size, then warmup, each on its own, 3 seeds each.
    batch, warmup = study.PROFILE.batch_size, study.TrainConfig.warmup_ratio
    assert sorted((c.batch_size, c.warmup_ratio) for c in configs if c.seed == 0) == sorted(
        [(batch, warmup)] + [(b, warmup) for b in study.BATCH_SIZES] + [(batch, w) for w in study.WARMUP_RATIOS]
    )
    assert len(configs) == 3 * (1 + len(study.BATCH_SIZES) + len(study.WARMUP_RATIOS))


def _rte_lora(configs):
    return [c for c in configs if (c.task, c.method.method) == ("rte", "lora")]


def test_tier_5_searches_around_the_similar_tasks_rate_then_beyond_an_edge_then_seeds_the_best(scores):
    lora = {3e-4: 0.70, 1e-3: 0.75, 3e-3: 0.72}  # MRPC LoRA (tier 1): 1e-3 selected, so RTE's grid centres there
    scores.update({("mrpc", "lora", lr, seed): value for lr, value in lora.items() for seed in (0, 1, 2)})
    grid = [("rte", "lora", lr, 0) for lr in (3e-4, 1e-3, 3e-3)]
    assert _points(_rte_lora(study.tier_5())) == grid
    scores.update({grid[0]: 0.60, grid[1]: 0.62, grid[2]: 0.65})  # best on the top edge: one step further
    assert _points(_rte_lora(study.tier_5())) == grid + [("rte", "lora", 1e-2, 0)]
    scores[("rte", "lora", 1e-2, 0)] = 0.55  # 3e-3 stays the best: 3 seeds there, on the whole training set
    seeded = [c for c in _rte_lora(study.tier_5()) if c.max_train_samples is None]
    assert _points(seeded) == [("rte", "lora", 3e-3, seed) for seed in (0, 1, 2)]


def test_tier_5b_trains_cola_and_rte_longer_at_the_rate_tier_5_settled_on(scores):
    lora = {3e-4: 0.70, 1e-3: 0.75, 3e-3: 0.72}  # MRPC LoRA (tier 1): RTE's search centres on 1e-3
    scores.update({("mrpc", "lora", lr, seed): value for lr, value in lora.items() for seed in (0, 1, 2)})
    assert study.tier_5b() == []  # tier 5 has not settled on a rate yet: nothing to train longer
    scores.update({("rte", "lora", lr, 0): value for lr, value in {3e-4: 0.55, 1e-3: 0.60, 3e-3: 0.58}.items()})
    configs = study.tier_5b()
    assert _points(configs) == [("rte", "lora", 1e-3, seed) for seed in (0, 1, 2)]
    assert {(c.epochs, c.max_train_samples, c.eval_test) for c in configs} == {(5, None, True)}


def test_tier_7_repeats_bitfit_and_lora_with_mean_pooling_at_their_tasks_rates(scores):
    for lr in study.LR_GRID["bitfit"]:  # MRPC BitFit: the majority class at every rate: its default rate
        scores.update({("mrpc", "bitfit", lr, seed): 0.676 for seed in (0, 1, 2)})
    configs = study.tier_7()  # nothing selected yet for LoRA, nor searched on CoLA or RTE: not listed
    assert _points(configs) == [("mrpc", "bitfit", study.DEFAULT_LR["bitfit"], s) for s in (0, 1, 2)]
    assert {(c.method.pooling, c.epochs, c.max_train_samples) for c in configs} == {
        ("mean", study.PROFILE.epochs, None)
    }
    # One setting apart from the selected runs: BitFit's other knobs stay at their defaults.
    assert all(c.method == study.MethodConfig(method="bitfit", pooling="mean") for c in configs)


def test_tier_4_covers_every_other_method_and_seeds_the_default_rate_where_nothing_was_learned(scores):
    configs = study.tier_4()
    names = {c.method.label() for c in configs}
    assert names == {m.label() for m in study.other_methods().values()} and "bitfit (sparse)" in names
    assert not names & set(study.METHOD_ORDER)
    ia3 = [c for c in configs if (c.task, c.method.method) == ("mrpc", "ia3")]
    scores.update({_key(c): 0.676 for c in ia3})  # the majority class at every rate
    seeded = [c for c in study.tier_4() if (c.task, c.method.method) == ("mrpc", "ia3") and c.seed == 1]
    assert [c.lr for c in seeded] == [study.DEFAULT_LR["ia3"]]


def test_the_cli_reads_a_tier_again_after_each_pass_until_it_asks_for_nothing_new(scores, monkeypatch):
    passes = []

    def fake_sweep(configs, glue_dir, results_dir):  # "train": every run scores by its rate
        passes.append(len(configs))
        scores.update({_key(c): 0.5 + c.lr for c in configs})

    monkeypatch.setattr(study, "run_sweep", fake_sweep)
    scores.update({("mrpc", "lora", lr, seed): 0.75 for lr in study.LR_GRID["lora"] for seed in (0, 1, 2)})
    monkeypatch.setattr(study, "TIERS", {"5": lambda results_dir, glue_dir: _rte_lora(study.tier_5())})
    study.main(["--tier", "5"])
    # the grid (3 runs), the step beyond its top edge (4), then 3 seeds at that new best (7); nothing new after
    assert passes == [3, 4, 7]


def test_the_study_trains_in_fp32_so_a_cpu_with_bf16_finds_the_earlier_tiers_records(monkeypatch):
    from helpers import device

    configs = study.tier_1a()
    ids = {}
    for has_bf16 in (False, True):
        monkeypatch.setattr(device, "cpu_has_bf16", lambda has_bf16=has_bf16: has_bf16)
        monkeypatch.setattr(device, "cpu_only", lambda: True)
        ids[has_bf16] = [config.run_id for config in configs]
    assert {config.precision for config in configs} == {"fp32"}
    assert ids[True] == ids[False]
    # And the pin did not change the ids of the records made before it, when `auto` was fp32 on the CPU.
    monkeypatch.setattr(device, "cpu_has_bf16", lambda: False)
    assert [c.run_id for c in configs] == [dataclasses.replace(c, precision="auto").run_id for c in configs]


def test_a_profile_from_the_study_reads_the_studys_runs_and_trains_none(tmp_path, glue_dir, monkeypatch, capsys):
    from fake_records import PROFILE as SMOKE
    from fake_records import fake_record

    from helpers import experiments, sweep
    from helpers.methods import MethodConfig
    from helpers.records import write_record
    from helpers.training import DEFAULT_LR, TrainConfig

    def run(task, method, seed):
        return TrainConfig(task=task, method=MethodConfig(method=method), lr=0.02, seed=seed, **SMOKE.data_settings())

    tier_1c = [run(task, method, seed) for task in ("sst2", "mrpc") for method in ("bitfit", "lora") for seed in (0, 1)]
    monkeypatch.setitem(study.TIERS, "1c", lambda results_dir, glue_dir: tier_1c)
    profile = dataclasses.replace(SMOKE, name="studied", from_study=True)
    ids = lambda configs: [c.run_id for c in configs]  # noqa: E731

    # The study's BitFit runs (at its rate), then the grid's runs on a task the study does not train.
    configs = experiments.experiment_configs("bitfit", profile, tasks=("sst2", "mrpc", "rte"))
    rte = experiments.experiment_configs("bitfit", SMOKE, tasks=("rte",))
    assert ids(configs) == ids(tier_1c[:2] + tier_1c[4:6] + rte)
    assert {c.lr for c in rte} == {DEFAULT_LR["bitfit"]}
    # A setting of the notebook's own is not the study's: its runs are the grid's.
    assert {c.lr for c in experiments.experiment_configs("bitfit", profile, lr=1e-2)} == {1e-2}

    # It trains nothing: the records there are, and the runs without one listed with how to train them.
    found = tier_1c[0].with_data(glue_dir)
    write_record({**fake_record("sst2", "bitfit", 0, 0.8), "run_id": found.run_id}, tmp_path)
    monkeypatch.setattr(sweep, "run_sweep", lambda *a, **k: pytest.fail("a study profile trains nothing"))
    records = experiments.run_experiment("bitfit", profile, tasks=("sst2",), glue_dir=glue_dir, results_dir=tmp_path)
    assert [r["run_id"] for r in records] == [found.run_id]
    out = capsys.readouterr().out
    assert "1 run of experiment 'bitfit' has no record" in out
    assert "SST-2 bitfit lr 0.02 (1 run)" in out and "`python -m helpers.study --tier 1c`" in out


def test_the_methods_notebook_takes_tier_4s_final_runs_of_a_method_once_tier_4_lists_them(monkeypatch):
    from fake_records import PROFILE as SMOKE

    from helpers import experiments
    from helpers.methods import MethodConfig
    from helpers.training import DEFAULT_LR, TrainConfig

    def run(method, cap=None):
        settings = {**SMOKE.data_settings(), "max_train_samples": cap}
        return TrainConfig(task="sst2", method=MethodConfig(method=method), lr=0.02, seed=0, **settings)

    monkeypatch.setitem(study.TIERS, "1c", lambda results_dir, glue_dir: [run("bitfit")])
    monkeypatch.setitem(study.TIERS, "4", lambda results_dir, glue_dir: [run("ia3", cap=100), run("ia3")])
    profile = dataclasses.replace(SMOKE, name="studied", from_study=True, methods=("bitfit", "ia3", "prefix"))
    configs = experiments.experiment_configs("methods", profile, tasks=("sst2",))
    # BitFit from tier 1c; IA3 from tier 4's final run, not its grid run; prefix (no tier-4 run listed yet)
    # stays the notebook's own run at its default rate.
    assert {(c.method.method, c.lr, c.max_train_samples) for c in configs} == {
        ("bitfit", 0.02, None),
        ("ia3", 0.02, None),
        ("prefix", DEFAULT_LR["prefix"], SMOKE.max_train_samples),
    }


def test_runs_the_study_does_not_cover_train_at_the_rate_it_selected_for_their_task_and_method(scores):
    from helpers.experiments import experiment_configs

    lora = {3e-4: 0.70, 1e-3: 0.75, 3e-3: 0.72}  # MRPC LoRA: 1e-3 selected (3 seeds each), not the default 3e-3
    scores.update({("mrpc", "lora", lr, seed): value for lr, value in lora.items() for seed in (0, 1, 2)})
    configs = experiment_configs("lora_targets", "full", ["mrpc"])
    # Query/value (tier 1c's runs) and every linear layer (not in the study) at the same selected rate.
    assert {(str(c.method.target_modules), c.lr) for c in configs} == {("None", 1e-3), ("('all-linear',)", 1e-3)}


def test_the_pooling_notebook_takes_tier_7s_mean_pooling_runs_once(scores):
    from helpers.experiments import experiment_configs

    scores.update({("mrpc", "lora", lr, seed): 0.75 - lr for lr in (3e-4, 1e-3, 3e-3) for seed in (0, 1, 2)})
    configs = experiment_configs("pooling", "full", ["mrpc"])
    mean = [c for c in configs if c.method.pooling == "mean"]
    # LoRA's mean-pooling runs are tier 7's (at LoRA's selected rate, 3e-4), listed once; the head's stay the grid's.
    assert sorted((c.method.method, c.lr) for c in mean if c.method.method == "lora") == [("lora", 3e-4)] * 3
    assert [c.run_id for c in study.tier_7() if c.method.method == "lora"] == [
        c.run_id for c in mean if c.method.method == "lora"
    ]
    assert len({c.run_id for c in configs}) == len(configs)


def test_a_study_profile_reads_records_trained_on_the_same_task_in_another_row_order(
    tmp_path, glue_dir, monkeypatch, capsys
):
    from fake_records import PROFILE as SMOKE
    from fake_records import fake_record

    from helpers import experiments
    from helpers.data import data_fingerprint
    from helpers.methods import MethodConfig
    from helpers.records import write_record
    from helpers.training import TrainConfig

    config = TrainConfig(task="sst2", method=MethodConfig(method="bitfit"), lr=0.02, seed=0, **SMOKE.data_settings())
    monkeypatch.setitem(study.TIERS, "1c", lambda results_dir, glue_dir: [config])
    profile = dataclasses.replace(SMOKE, name="studied", from_study=True)
    # The study trained on other files (another fingerprint), e.g. the official GLUE files, not the Hub's order.
    theirs = dataclasses.replace(config, data_fingerprint="feedfacecafe")
    record = fake_record("sst2", "bitfit", 0, 0.8)
    write_record(
        {**record, "run_id": theirs.run_id, "data": {**record["data"], "fingerprint": "feedfacecafe"}}, tmp_path
    )
    assert config.with_data(glue_dir).run_id != theirs.run_id

    records = experiments.run_experiment("bitfit", profile, tasks=("sst2",), glue_dir=glue_dir, results_dir=tmp_path)
    assert [r["run_id"] for r in records] == [theirs.run_id]
    out = capsys.readouterr().out
    assert "SST-2: the records in" in out and "fingerprint feedfacecafe" in out and "no record" not in out
    # Reading pinned nothing for later: training still names the data on this machine.
    assert data_fingerprint("sst2", glue_dir) != "feedfacecafe"
