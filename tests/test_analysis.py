"""What the analysis and the report conclude from records with known results."""

import pytest
from fake_records import PROFILE, fake_record

from helpers import analysis
from helpers.data import save_split_overlap
from helpers.records import write_record
from helpers.report import write_report
from helpers.training import DEFAULT_LR


def frame_of(records):
    return analysis.runs_frame(records)


def test_comparison_verdicts_need_three_seeds_and_a_significant_welch_test():
    clear = analysis.Comparison("LoRA", "BitFit", (0.84, 0.85, 0.86), (0.79, 0.80, 0.81))
    assert clear.verdict == "a" and clear.sentence("accuracy", "SST-2").startswith(
        "On SST-2, LoRA beats BitFit by 0.050"
    )
    p_value, low, high = clear.test
    assert p_value < 0.05 and low < 0.05 < high and "Welch's t-test p = " in clear.sentence("accuracy", "SST-2")
    flipped = analysis.Comparison("BitFit", "LoRA", (0.79, 0.80, 0.81), (0.84, 0.85, 0.86))
    assert f"95% interval of the difference LoRA − BitFit {low:+.3f} to {high:+.3f}" in flipped.sentence(
        "accuracy", "SST-2"
    ), "the interval is the winner's lead, whichever side won"
    noisy = analysis.Comparison("LoRA", "BitFit", (0.79, 0.82, 0.85), (0.79, 0.80, 0.81))
    assert noisy.verdict == "tie" and "within noise" in noisy.sentence("accuracy", "SST-2")
    # A single seed decides nothing, however large the difference (single BitFit seeds ranged 0.54-0.75).
    single = analysis.Comparison("LoRA", "BitFit", (0.90,), (0.60,))
    assert single.verdict == "undecided" and "undecided (1 seed)" in single.sentence("accuracy", "SST-2")
    assert analysis.Comparison("a", "b", (0.7, 0.7), (0.8, 0.8, 0.8)).verdict == "undecided"
    assert analysis.Comparison("a", "b", (0.7, 0.7, 0.7), (0.8, 0.8, 0.8)).verdict == "b", (
        "identical seeds: no spread, a clear difference"
    )
    # The interval matches scipy's Welch test.
    from scipy import stats

    assert p_value == pytest.approx(stats.ttest_ind((0.84, 0.85, 0.86), (0.79, 0.80, 0.81), equal_var=False).pvalue)


def test_tables_carry_a_95_percent_interval():
    frame = frame_of([fake_record("sst2", "lora", seed, value) for seed, value in enumerate((0.80, 0.82, 0.84))])
    row = analysis.over_seeds(frame, ["variant"]).iloc[0]
    assert row["mean"] == pytest.approx(0.82) and row["ci95_low"] == pytest.approx(
        0.82 - 4.302653 * 0.02 / 3**0.5, abs=1e-5
    )
    half = 4.302653 * 0.02 / 3**0.5
    results = analysis.results_table(frame).iloc[0]
    assert results["95% interval"] == f"{0.82 - half:.3f}–{0.82 + half:.3f}" == "0.770–0.870"
    assert analysis.interval_text([0.8]) == "", "one seed has no interval"


def test_pass_fail_checks_every_split_and_metric():
    assert analysis.pass_fail("sst2", {"test": {"accuracy": 0.9}}) == "pass"
    assert analysis.pass_fail("sst2", {"test": {"accuracy": 0.87}}) == "fail (accuracy 0.870 < 0.88)"
    assert analysis.pass_fail("qqp", {"test": {"accuracy": 0.85, "f1": 0.79}}) == "fail (f1 0.790 < 0.8)"
    verdict = analysis.pass_fail("mnli", {"test_matched": {"accuracy": 0.81}, "test_mismatched": {"accuracy": 0.79}})
    assert verdict == "fail (test_mismatched accuracy 0.790 < 0.8)"


def test_at_defaults_keeps_only_runs_that_differ_by_seed():
    records = [fake_record("sst2", "lora", seed, 0.8) for seed in (0, 1)]
    records += [
        fake_record("sst2", "lora", 0, 0.7, rank=4),
        fake_record("sst2", "lora", 0, 0.6, lr=1e-4),
        fake_record("sst2", "lora", 0, 0.5, alpha=32.0),
    ]
    frame = frame_of(records)
    defaults = analysis.at_defaults(frame, PROFILE)
    assert sorted(defaults["seed"]) == [0, 1] and set(defaults["test"]) == {0.8}
    assert sorted(analysis.at_defaults(frame, PROFILE, vary="rank")["rank"]) == [4, 8, 8]
    assert len(analysis.at_defaults(frame, PROFILE, vary="lr")) == 3
    with pytest.raises(ValueError, match="share a group"):
        analysis.over_seeds(frame, ["task", "method"])
    # Runs that differ in any other setting are not extra seeds of the defaults.
    for name, value in [
        ("select_on", "dev"),
        ("split_seed", 7),
        ("validation_fraction", 0.2),
        ("length_grouping", False),
        ("compile", True),
        ("eval_steps", 5),
        ("early_stopping_patience", 2),
    ]:
        odd = fake_record("sst2", "lora", 2, 0.1)
        odd["config"][name] = value
        assert sorted(analysis.at_defaults(frame_of([*records, odd]), PROFILE)["seed"]) == [0, 1], name
    # An older recipe version is not mixed with the current one.
    old = fake_record("sst2", "lora", 2, 0.1)
    old["config"]["recipe_version"] = 1
    assert sorted(analysis.at_defaults(frame_of([*records, old]), PROFILE)["seed"]) == [0, 1]


def test_best_lr_is_chosen_on_validation_not_test():
    records = [
        fake_record("sst2", "bitfit", 0, value=0.9, lr=1e-4, validation=0.70),
        fake_record("sst2", "bitfit", 0, value=0.6, lr=1e-3, validation=0.80),
    ]
    best = analysis.best_lr(frame_of(records))
    assert best["lr"].tolist() == [1e-3]


def _write(records, folder):
    for record in records:
        write_record(record, folder)


def _report_of(records, tmp_path) -> str:
    """The report written from `records` (saved under tmp_path/results first), with no bench record."""
    _write(records, tmp_path / "results")
    return write_report(
        tmp_path / "results", tmp_path / "figures", tmp_path / "report.md", PROFILE.name, bench_path=tmp_path / "x.json"
    )


def test_report_sentences_are_decided_by_the_data(tmp_path):
    records = []
    for seed in (0, 1, 2):
        records += [
            fake_record("sst2", "lora", seed, 0.85 + 0.001 * seed, trainable=74498),
            fake_record("sst2", "bitfit", seed, 0.80 + 0.001 * seed, trainable=26882),
        ]
        records += [
            fake_record("mrpc", "lora", seed, 0.78 + 0.02 * seed, trainable=74498),
            fake_record("mrpc", "bitfit", seed, 0.79 + 0.02 * seed, trainable=26882),
        ]
    _write(records, tmp_path / "results")
    text = write_report(
        tmp_path / "results",
        tmp_path / "figures",
        tmp_path / "report.md",
        PROFILE.name,
        bench_path=tmp_path / "none.json",
    )
    assert "On SST-2, LoRA beats BitFit by 0.050" in text
    assert "On MRPC, LoRA and BitFit are within noise of each other" in text
    assert "| SST-2 | lora | 3 |" in text and "fail (accuracy 0.851 < 0.88)" in text
    assert (tmp_path / "figures" / "bitfit_vs_lora.png").is_file()
    # "In brief" gives the same verdicts in a line, before the targets.
    brief = text.split("## In brief")[1].split("## Targets at a glance")[0]
    assert (
        "- **BitFit vs LoRA** (§4): " in brief
        and "SST-2 (1 epochs) LoRA 0.851 vs BitFit 0.801: LoRA ahead (p = " in brief
    )
    assert "MRPC (1 epochs) LoRA 0.800 vs BitFit 0.810: not distinguishable (p = " in brief


def test_learning_rate_paragraph_follows_the_sweep(tmp_path):
    records = []
    for seed, jitter in enumerate((0.0, 0.002, -0.002)):
        for lr, validation in [(1e-5, 0.70), (1e-4, 0.80), (1e-3, 0.60)]:
            records.append(fake_record("sst2", "full", seed, 0.8, lr=lr, validation=validation + jitter))
        for lr, validation in [(1e-5, 0.75), (1e-4, 0.70), (1e-3, 0.65)]:  # BitFit best at a *smaller* rate here
            records.append(fake_record("sst2", "bitfit", seed, 0.8, lr=lr, validation=validation + jitter))
        for lr, validation in [(1e-4, 0.60), (1e-3, 0.65), (1e-2, 0.75)]:  # the head: best at a larger rate
            records.append(fake_record("sst2", "head", seed, 0.7, lr=lr, validation=validation + jitter))
        records += [
            fake_record("sst2", "full", seed, 0.8, validation=0.72 + jitter),
            fake_record("sst2", "bitfit", seed, 0.8, validation=0.6 + jitter),
        ]
    _write(records, tmp_path / "results")
    text = write_report(
        tmp_path / "results",
        tmp_path / "figures",
        tmp_path / "report.md",
        PROFILE.name,
        bench_path=tmp_path / "none.json",
    )
    # The head counts apart: it is a baseline, not a PEFT method, so its larger rate does not make BitFit's case.
    assert "larger than full fine-tuning's in 0 of 1 (task, method) pairs" in text
    assert "the classifier alone (a baseline, not a PEFT method): larger in 1 of 1, smaller in 0." in text
    assert "do not support the usual claim" in text
    assert "full fine-tuning drops from 0.800 at 0.0001 to 0.600 at 0.001" in text


def test_a_one_seed_learning_rate_sweep_decides_nothing():
    records = [
        fake_record("sst2", "full", 0, 0.8, lr=lr, validation=v, majority=0.5) for lr, v in [(1e-5, 0.70), (1e-4, 0.80)]
    ]
    records += [
        fake_record("sst2", "bitfit", 0, 0.8, lr=lr, validation=v, majority=0.5)
        for lr, v in [(1e-3, 0.70), (1e-2, 0.80)]
    ]
    best = analysis.best_lr(frame_of(records)).set_index(["task", "method"])
    assert not best.loc[("sst2", "bitfit"), "decided"]
    assert analysis.lr_relation(best.loc[("sst2", "bitfit")], best.loc[("sst2", "full")]) == "undecided"


def test_runs_that_do_not_beat_the_majority_class_are_not_compared():
    frame = frame_of(
        [
            fake_record("mrpc", m, seed, value + 0.001 * seed * (m == "full"), majority=0.684)
            for seed in range(3)
            for m, value in (("lora", 0.684), ("bitfit", 0.684), ("full", 0.75))
        ]
    )
    stuck = analysis.compare(frame, "variant", "lora", "bitfit")
    assert stuck.verdict == "degenerate" and "no comparison" in stuck.sentence("accuracy", "MRPC")
    one_learned = analysis.compare(frame, "variant", "full", "lora")
    assert (
        one_learned.verdict == "a"
        and "lora does not beat always predicting the majority class" in one_learned.sentence("accuracy", "MRPC")
    )
    assert analysis.at_or_below(float("nan"), 0.5), "a diverged (NaN) run is no better than the floor"
    assert not analysis.at_or_below(0.9, float("nan")), "unknown floor: nothing is flagged"


def test_best_learning_rate_keeps_ties_and_decides_the_relation_only_when_unambiguous():
    jitters = (0.0, 0.004, -0.004)
    records = [
        fake_record("sst2", "full", seed, 0.8, lr=lr, validation=v + j, majority=0.5)
        for seed, j in enumerate(jitters)
        for lr, v in [(1e-5, 0.70), (1e-4, 0.80), (1e-3, 0.60)]
    ]
    records += [
        fake_record("sst2", "bitfit", seed, 0.8, lr=lr, validation=v + j, majority=0.5)
        for seed, j in enumerate(jitters)
        for lr, v in [(1e-4, 0.60), (1e-3, 0.797), (1e-2, 0.80)]
    ]
    records += [
        fake_record("mrpc", m, seed, 0.68, lr=lr, validation=0.675, majority=0.675)
        for seed in range(3)
        for m in ("full", "bitfit")
        for lr in (1e-4, 1e-3)
    ]
    best = analysis.best_lr(frame_of(records)).set_index(["task", "method"])
    assert best.loc[("sst2", "bitfit"), "lr"] == 1e-2 and best.loc[("sst2", "bitfit"), "tied"] == [1e-3, 1e-2]
    assert best.loc[("sst2", "full"), "tied"] == [1e-4] and not best.loc[("sst2", "full"), "degenerate"]
    assert best.loc[("sst2", "full"), "decided"]
    assert best.loc[("mrpc", "bitfit"), "degenerate"]
    assert analysis.lr_relation(best.loc[("sst2", "bitfit")], best.loc[("sst2", "full")]) == "larger"
    assert analysis.lr_relation(best.loc[("mrpc", "bitfit")], best.loc[("mrpc", "full")]) == "undecided"
    overlapping = {"degenerate": False, "decided": True, "tied": [1e-4, 1e-3]}
    assert analysis.lr_relation(overlapping, {"degenerate": False, "decided": True, "tied": [1e-4]}) == "undecided"
    assert (
        analysis.lr_relation(
            {"degenerate": False, "decided": True, "tied": [1e-5]},
            {"degenerate": False, "decided": True, "tied": [1e-4]},
        )
        == "smaller"
    )


def test_pooling_summary_counts_only_tasks_that_learned(tmp_path):
    records = []
    for seed, jitter in enumerate((0.0, 0.003, -0.003)):
        for pooling, sst2 in (("model", 0.72), ("mean", 0.77)):  # BitFit: mean pooling wins on SST-2
            records.append(
                fake_record("sst2", "bitfit", seed, sst2 + jitter, majority=0.5, pooling=pooling, trainable=26882)
            )
            records.append(fake_record("mrpc", "bitfit", seed, 0.684, majority=0.684, pooling=pooling, trainable=26882))
        for pooling, sst2 in (("model", 0.783), ("mean", 0.780)):  # LoRA: a tie on SST-2
            records.append(
                fake_record(
                    "sst2",
                    "lora",
                    seed,
                    sst2 + 3 * jitter * (pooling == "mean"),
                    majority=0.5,
                    pooling=pooling,
                    trainable=74498,
                )
            )
            records.append(fake_record("mrpc", "lora", seed, 0.684, majority=0.684, pooling=pooling, trainable=74498))
    _write(records, tmp_path / "results")
    text = write_report(
        tmp_path / "results",
        tmp_path / "figures",
        tmp_path / "report.md",
        PROFILE.name,
        bench_path=tmp_path / "none.json",
    )
    assert "bitfit: mean pooling on 1 of 2 tasks (the others undecided)" in text
    assert "lora: within noise on 1 of 2 tasks (the others undecided)" in text


def test_report_separates_rank_from_the_alpha_scale_and_labels_published_numbers(tmp_path):
    records = []
    for seed, jitter in enumerate((0.0, 0.004, -0.004)):
        for rank in (1, 8):
            records.append(
                fake_record(
                    "sst2", "lora", seed, 0.80 + jitter + 0.05 * (rank == 8), rank=rank, alpha=16.0, majority=0.5
                )
            )
            if rank != 8:  # r=8 with alpha 16 is also alpha = 2r
                records.append(
                    fake_record("sst2", "lora", seed, 0.85 + jitter, rank=rank, alpha=2.0 * rank, majority=0.5)
                )
        records.append(fake_record("sst2", "bitfit", seed, 0.82 + jitter, majority=0.5))
    for record in records:
        record["data"]["token_lengths"] = {
            "train": {"mean": 11.0},
            "validation": {"mean": 11.0},
            "test": {"mean": 25.0},
        }
    _write(records, tmp_path / "results")
    numbers = {"examples": 20, "of": 20, "mean_words": 4.0, "one_word": 0.1, "identical_to_training": 0.05}
    overlap = {"validation": {**numbers, "inside_training": 0.85}, "test": {**numbers, "inside_training": 0.0}}
    save_split_overlap(tmp_path / "results", "sst2", overlap, "local:fixture")
    text = write_report(
        tmp_path / "results",
        tmp_path / "figures",
        tmp_path / "report.md",
        PROFILE.name,
        bench_path=tmp_path / "none.json",
    )
    assert "**85.0% of the slice's examples appear verbatim inside a training example**" in text
    assert "against 0.0% of the test sentences (20 validation and 20 test examples checked" in text
    assert "- α = 16: On SST-2, r=8 beats r=1 by 0.050" in text
    assert "- α = 2r: On SST-2, r=8 and r=1 are within noise of each other" in text
    # r=1 at scale 16 (α = 16) against r=1 at scale 2 (α = 2): the scale alone, 0.80 vs 0.85.
    assert "| 1 | 16 | 0.800 ± 0.004 | 0.850 ± 0.004 | -0.050 |" in text and "| α = 2r ahead |" in text
    assert "| SST-2 | α = 2r | 0.850 ± 0.004 | 0.850 ± 0.004 |" in text
    assert "- Read together (SST-2): decided (p < 0.05) are α = 16, r=8 against r=1; the two scales at r=1" in text
    assert "published dev-set numbers, not runs of this project" in text
    assert "| published: BitFit [1] |" in text and "| SST-2 | accuracy | 0.937 |" in text  # BitFit's column first
    assert "[1] LoRA paper (Hu et al. 2021, Table 2), RoBERTa-base" in text
    assert "11.0 tokens per training example against 25.0 per test example" in text


def test_overfit_check_is_reported_apart_from_the_comparisons(tmp_path):
    records = [fake_record("sst2", m, seed, 0.8, majority=0.5) for m in ("bitfit", "lora") for seed in range(3)]
    for method, curve in (("full", [0.6, 0.9, 1.0]), ("head", [0.55, 0.6, 0.62])):
        check = fake_record("sst2", method, 0, 0.6, majority=0.5)
        check["config"]["eval_train"] = True
        check["evals"] = [
            {"step": e, "epoch": float(e), "split": split, "metrics": {"accuracy": value if split == "train" else 0.6}}
            for e, value in enumerate(curve, 1)
            for split in ("train", "validation")
        ]
        records.append(check)
    _write(records, tmp_path / "results")
    text = write_report(
        tmp_path / "results",
        tmp_path / "figures",
        tmp_path / "report.md",
        PROFILE.name,
        bench_path=tmp_path / "none.json",
    )
    assert "### Overfitting check" in text and "head on SST-2 stay below 0.99" in text
    assert "| SST-2 | full |" in text and (tmp_path / "figures" / "overfit.png").is_file()
    assert "| SST-2 | full | 3 |" not in text, "the checks are not seeds of the main comparison"


def test_a_tuned_profile_compares_each_method_at_the_rate_its_grid_selected(tmp_path):
    from dataclasses import replace

    tuned = replace(PROFILE, name="tuned", grid_max_train_samples=24, tuned_lr=True, lr_grid={"bitfit": (1e-3, 1e-2)})
    records = []
    for seed, jitter in enumerate((0.0, 0.004, -0.004)):
        for lr, validation in ((1e-3, 0.70), (1e-2, 0.80)):  # the grid, on 24 examples: 1e-2 wins on validation
            grid = fake_record("sst2", "bitfit", seed, 0.5, lr=lr, validation=validation + jitter, majority=0.5)
            grid["config"]["max_train_samples"], grid["run_id"] = 24, grid["run_id"] + "-grid"
            records.append(grid)
        records.append(
            fake_record("sst2", "bitfit", seed, 0.85 + jitter, lr=1e-2, majority=0.5)
        )  # final runs at the selected rate
        records.append(
            fake_record("sst2", "bitfit", seed, 0.60 + jitter, majority=0.5)
        )  # at the default rate: not the comparison
    frame = frame_of(records)
    grid_runs = analysis.at_defaults(frame, tuned, vary="lr", grid=True)
    assert len(grid_runs) == 6 and analysis.selected_lr(grid_runs) == {("sst2", "bitfit"): 1e-2}
    _write(records, tmp_path / "results")
    text = write_report(
        tmp_path / "results", tmp_path / "figures", tmp_path / "report.md", tuned, bench_path=tmp_path / "none.json"
    )
    assert "| SST-2 | bitfit | 3 | 1,000 (0.0044%) | accuracy | 0.850 ± 0.004 |" in text


def test_a_grid_where_every_rate_ties_selects_the_methods_default_rate():
    # MRPC BitFit in the study: the majority class at every rate, every seed (helpers.study does the same).
    default = DEFAULT_LR["bitfit"]
    records = [
        fake_record("mrpc", "bitfit", seed, 0.684, lr=lr, validation=0.676, majority=0.684)
        for lr in (default / 3, default, default * 3)
        for seed in (0, 1, 2)
    ]
    assert analysis.selected_lr(frame_of(records)) == {("mrpc", "bitfit"): default}
    records = [r for r in records if r["config"]["lr"] != default * 3]
    records += [fake_record("mrpc", "bitfit", seed, 0.7, lr=default * 3, validation=0.7) for seed in (0, 1, 2)]
    assert analysis.selected_lr(frame_of(records)) == {("mrpc", "bitfit"): default * 3}  # one rate learned: it wins


def test_cost_table_reports_the_step_total_and_the_run_peak_only_on_cuda():
    records = [fake_record("sst2", m, seed, 0.8) for m in ("bitfit", "lora") for seed in (0, 1)]
    cpu = analysis.cost_table(frame_of(records))
    assert list(cpu["variant"].astype(str)) == ["bitfit", "lora"]
    assert list(cpu["step_MiB"]) == [128.0, 128.0] and list(cpu["activations_MiB"]) == [32.0, 32.0]
    assert "run_peak_MiB" not in cpu, "a CPU has no allocator peak"
    assert list(cpu["trainable"]) == ["1,000", "1,000"] and list(cpu["samples_per_second"]) == [100.0, 100.0]
    # Speeds per task, the fastest seed's: a busy machine only slows a run down.
    records += [fake_record("mrpc", "bitfit", seed, 0.8) for seed in (0, 1, 2)]
    for record, speed in zip(records[-3:], (30.0, 5.0, 6.0)):
        record["timing"]["train_samples_per_second"] = speed
    both = analysis.cost_table(frame_of(records))
    assert list(both.columns[:4]) == ["variant", "trainable", "samples_per_second (SST-2)", "samples_per_second (MRPC)"]
    assert both.set_index("variant").loc["bitfit", "samples_per_second (MRPC)"] == 30.0
    assert "speed measured on" not in both  # one machine: named once, with the table
    # Speeds from two machines do not compare: each method's row names the machine its speed is from.
    records[-3]["versions"]["device"] = "AMD EPYC (2 threads, AVX-512 bf16)"
    mixed = analysis.cost_table(frame_of(records)).set_index("variant")["speed measured on"]
    assert mixed.to_dict() == {"bitfit": "AMD EPYC (2 threads, AVX-512 bf16) / test CPU", "lora": "test CPU"}
    records = records[:-3]
    for record in records:  # on CUDA the allocator's peak over the run exceeds one step's total
        record["memory"].update(kind="cuda_max_allocated", peak_bytes=2**28)
    cuda = analysis.cost_table(frame_of(records))
    assert list(cuda["step_MiB"]) == [128.0, 128.0] and list(cuda["run_peak_MiB"]) == [256.0, 256.0]


def test_results_table_gives_mean_and_std_over_seeds_against_the_baselines():
    records = [
        fake_record("sst2", "bitfit", seed, value, majority=0.5) for seed, value in enumerate((0.90, 0.92, 0.94))
    ]
    records.append(fake_record("sst2", "head", 0, 0.5, majority=0.5))
    table = analysis.results_table(frame_of(records)).set_index("method")
    assert table.loc["bitfit", "test"] == "0.920 ± 0.020" and table.loc["bitfit", "seeds"] == 3
    assert table.loc["bitfit", "metric"] == "accuracy" and table.loc["bitfit", "other test metrics"] == ""
    assert table.loc["head", "test"] == "0.500", "one seed: no std"
    assert table.loc["head", "majority class"] == "0.500 (not beaten: learned nothing)"
    assert table.loc["bitfit", "pass/fail (mean)"] == "pass" and table.loc["head", "pass/fail (mean)"].startswith(
        "fail"
    )


def test_rank_tables_give_counted_against_closed_form_and_scores_per_rank():
    records = [
        fake_record(task, "lora", seed, base + 0.01 * rank + 0.002 * seed, rank=rank, trainable=9216 * rank + 770)
        for task, base in (("sst2", 0.8), ("mrpc", 0.7))
        for rank in (8, 1)
        for seed in (0, 1)
    ]
    records[0]["params"]["lora_closed_form"] += 1  # sst2, r=8: a wrongly adapted layer would show like this
    frame = frame_of(records)
    params = analysis.rank_parameters(frame)
    assert list(params["rank"]) == [1, 8] and list(params["counted"]) == [9986, 74498]
    assert list(params["closed_form"]) == [9986, 74499] and list(params["agree"]) == [True, False]
    scores = analysis.rank_scores(frame)
    assert list(scores["task"]) == ["sst2", "sst2", "mrpc", "mrpc"] and list(scores["rank"]) == [1, 8, 1, 8]
    assert scores["mean"].tolist() == pytest.approx([0.811, 0.881, 0.711, 0.781])
    assert scores["n"].tolist() == [2, 2, 2, 2] and list(scores.columns[:2]) == ["task", "rank"]


def test_a_task_with_one_rank_so_far_is_named_not_compared_with_itself(tmp_path):
    """A rank sweep in progress: SST-2 has two ranks, MRPC only the r=8 runs of the other tiers."""
    records = [
        fake_record(task, "lora", seed, 0.8 + 0.01 * rank + 0.002 * seed, rank=rank, majority=0.5)
        for task, ranks in (("sst2", (1, 8)), ("mrpc", (8,)))
        for rank in ranks
        for seed in (0, 1, 2)
    ]
    text = _report_of(records, tmp_path)
    assert "- MRPC: only r=8 in these records (the rank sweep trains the rest: notebook 04 runs it)." in text
    assert "r=8 and r=8" not in text and "- SST-2: best mean at r=8" in text


def test_a_study_grid_with_three_seeds_near_the_best_decides_which_rates_tie():
    """The study's grid: seed 0 at every rate, seeds 1 and 2 at the best and its neighbours. A one-seed
    rate far below the best's prediction interval is not tied with it; one inside it is; a lucky
    single seed does not outrank a rate with three."""
    jitters = (0.0, 0.004, -0.004)
    records = [
        fake_record("sst2", "full", seed, 0.8, lr=lr, validation=v + j, majority=0.5)
        for seed, j in enumerate(jitters)
        for lr, v in [(1e-5, 0.70), (3e-5, 0.80), (1e-4, 0.70)]
    ]
    records += [fake_record("sst2", "full", 0, 0.8, lr=lr, validation=v, majority=0.5) for lr, v in [(1e-6, 0.5)]]
    records += [
        fake_record("sst2", "bitfit", seed, 0.8, lr=lr, validation=v + j, majority=0.5)
        for seed, j in enumerate(jitters)
        for lr, v in [(3e-4, 0.70), (1e-3, 0.80), (3e-3, 0.70)]
    ]
    records += [
        fake_record("sst2", "bitfit", 0, 0.8, lr=lr, validation=v, majority=0.5)
        for lr, v in [(1e-4, 0.60), (1e-2, 0.805), (3e-2, 0.799)]
    ]
    best = analysis.best_lr(frame_of(records)).set_index(["task", "method"])
    bitfit, full = best.loc[("sst2", "bitfit")], best.loc[("sst2", "full")]
    assert bitfit["lr"] == 1e-3 and bitfit["n"] == 3 and bitfit["decided"]
    assert bitfit["tied"] == [1e-3, 1e-2, 3e-2]  # 0.805 and 0.799 (one seed each) lie within the interval
    assert full["tied"] == [3e-5] and full["decided"]  # 0.5 at 1e-6 (one seed) lies far below it
    assert analysis.lr_relation(bitfit, full) == "larger"
    assert analysis.worse_than([0.80, 0.804, 0.796], [0.70]) and not analysis.worse_than([0.80, 0.804, 0.796], [0.795])
    assert analysis.worse_than([0.8, 0.8, 0.8], [0.79]), "no spread: any lower mean is worse, as welch says"


def test_runs_trained_longer_are_read_against_the_same_rate_at_the_profile_epochs(tmp_path):
    longer = {"epochs": 3}
    records = [
        fake_record("mrpc", "bitfit", seed, value, lr=3e-3, majority=0.684, settings=longer)
        for seed, value in enumerate((0.77, 0.76, 0.78))
    ]
    records += [fake_record("mrpc", "bitfit", seed, 0.684, lr=3e-3, majority=0.684) for seed in range(3)]
    records += [fake_record("mrpc", "bitfit", seed, 0.684, lr=1e-3, majority=0.684) for seed in range(3)]
    frame = frame_of(records)
    runs = analysis.longer_training_runs(frame, PROFILE)
    assert sorted(zip(runs["epochs"], runs["lr"])) == [(1, 3e-3)] * 3 + [(3, 3e-3)] * 3, "other rates are not pulled in"
    assert analysis.longer_training_runs(frame_of(records[3:]), PROFILE).empty
    table = analysis.longer_training_table(frame, PROFILE, "bitfit")  # what notebooks 02 and 03 show
    assert table[["epochs", "n"]].values.tolist() == [[1, 3], [3, 3]]
    assert table["mean"].round(3).tolist() == [0.684, 0.77]
    assert analysis.longer_training_table(frame, PROFILE, "lora").empty
    text = _report_of(records, tmp_path)
    assert "### Training longer" in text
    assert "On MRPC (bitfit, lr 0.003), 3 epochs beats 1 epochs by 0.086" in text
    assert "1 epochs does not beat always predicting the majority class (0.684)." in text
    # The 1-epoch runs end at a loss of 0.6 against 0.624, the entropy of a 0.684 / 0.316 prior.
    assert "MRPC, bitfit: the training loss over the last tenth of the logged steps averages 0.600 (3 seeds)" in text
    assert "against 0.624, the cross-entropy of always answering the class frequencies (0.684 / 0.316)" in text
    assert "Other training settings lift its mean off the majority class (test, mean ± std over seeds" in text
    assert "too few updates at this budget, not too few parameters" in text  # 3 epochs: shown above it
    assert "3 epochs: 0.770 ± 0.010." in text


def test_gap_closed_interval_brackets_the_share_and_narrows_with_less_spread():
    head, full = [0.70, 0.71, 0.69], [0.90, 0.91, 0.89]
    low, high = analysis.gap_closed_interval([0.80, 0.82, 0.78], head, full)
    assert 0.3 < low < 0.5 < high < 0.7
    low, high = analysis.gap_closed_interval([0.80, 0.80, 0.80], [0.70] * 3, [0.90] * 3)
    assert low == pytest.approx(0.5) and high == pytest.approx(0.5), "no spread: the share itself"


def test_best_lr_table_names_the_best_rate_and_the_rates_tied_with_it():
    records = [
        fake_record("sst2", "bitfit", seed, 0.5, lr=lr, validation=value + 0.002 * seed, majority=0.5)
        for lr, value in ((1e-3, 0.70), (1e-2, 0.80), (3e-2, 0.795))
        for seed in (0,)
    ]
    table = analysis.best_lr_table(analysis.best_lr(frame_of(records)))
    assert table.iloc[0].to_dict() == {
        "task": "SST-2",
        "method": "bitfit",
        "lr": "0.01",
        "best validation (mean)": "0.800",
        "std": "–",
        "seeds": 1,
        "95% interval": "–",
        "within noise of the best": "0.01, 0.03 (undecided: 1 seed(s))",
        "learned? (validation)": "yes: above its majority class",
    }
    at_the_top = analysis.best_lr_table(analysis.best_lr(frame_of(records[:2])))
    assert at_the_top.iloc[0]["lr"] == "0.01 (grid edge)", "a best rate at the grid's end is flagged"


def test_pooling_comparisons_skip_pairs_trained_with_one_pooling():
    records = []
    for seed, jitter in enumerate((0.0, 0.003, -0.003)):
        for pooling, value in (("model", 0.72), ("mean", 0.77)):
            records.append(fake_record("sst2", "bitfit", seed, value + jitter, majority=0.5, pooling=pooling))
        records.append(fake_record("sst2", "lora", seed, 0.8 + jitter, majority=0.5))  # [CLS] pooling only
    comparisons = analysis.pooling_comparisons(frame_of(records))
    assert [(task, variant) for task, variant, _ in comparisons] == [("sst2", "bitfit")]
    _, _, comparison = comparisons[0]
    assert comparison.verdict == "a" and comparison.a == "mean pooling"
    assert analysis.task_sentence(comparison, "sst2").startswith("On SST-2, mean pooling beats [CLS] pooling by 0.050")


def test_seed_summary_and_run_counts():
    records = [fake_record("sst2", "bitfit", seed, 0.8 + 0.01 * seed) for seed in (0, 1, 2)]
    records.append(fake_record("mrpc", "lora", 0, 0.7))
    frame = frame_of(records)
    summary = analysis.seed_summary(frame, ["task", "method"]).set_index("task")
    assert summary.loc["sst2", "test mean"] == pytest.approx(0.81) and summary.loc["sst2", "seeds"] == 3
    assert summary.loc["sst2", "test std"] == pytest.approx(0.01) and summary.loc["mrpc", "test std"] == 0.0
    counts = analysis.run_counts(frame)
    assert counts.loc["sst2", "bitfit"] == 3 and counts.loc["sst2", "lora"] == 0 and counts.loc["mrpc", "lora"] == 1


def test_a_profile_rate_for_a_task_sets_its_runs_and_the_comparison_reads_them():
    """Profile.rates: the quick profile's MRPC rates; a task or method it does not name keeps the default."""
    from dataclasses import replace

    from helpers.experiments import experiment_configs
    from helpers.training import DEFAULT_LR

    rated = replace(PROFILE, name="rated", rates={"mrpc": {"bitfit": 1e-2}})
    lrs = {(c.task, c.lr) for c in experiment_configs("bitfit", rated, tasks=("sst2", "MRPC"))}
    assert lrs == {("sst2", DEFAULT_LR["bitfit"]), ("mrpc", 1e-2)}
    assert {c.lr for c in experiment_configs("bitfit", rated, tasks=("mrpc",), lr=3e-4)} == {3e-4}  # given: kept
    records = [fake_record("mrpc", "bitfit", seed, 0.80, lr=1e-2) for seed in range(2)]
    records += [fake_record(task, "bitfit", 0, 0.60, lr=DEFAULT_LR["bitfit"]) for task in ("mrpc", "sst2")]
    chosen = analysis.profile_runs(frame_of(records), rated)
    assert sorted(zip(chosen["task"], chosen["lr"])) == [("mrpc", 1e-2), ("mrpc", 1e-2), ("sst2", DEFAULT_LR["bitfit"])]


def test_targets_pick_each_side_on_validation_report_its_test_and_compare_peft_with_full():
    records = [
        fake_record("sst2", method, seed, value + 0.004 * seed, validation=validation, majority=0.5)
        for method, value, validation in (("bitfit", 0.880, 0.90), ("lora", 0.890, 0.85), ("full", 0.850, 0.95))
        for seed in (0, 1, 2)
    ]
    records += [
        fake_record("sst2", "bitfit", seed, 0.95, settings={"epochs": PROFILE.epochs + 3}, validation=0.80)
        for seed in (0, 1, 2)
    ]  # trained longer: compared too, but its validation is lower, so its better test does not count
    assert set(analysis.compared_runs(frame_of(records), PROFILE)["epochs"]) == {PROFILE.epochs, PROFILE.epochs + 3}
    row = analysis.targets_table(frame_of(records), PROFILE).iloc[0]
    # BitFit wins on validation (0.90 vs LoRA's 0.85) although LoRA's test is higher: selection never reads the test.
    assert (
        row["best BitFit or LoRA"].startswith(f"bitfit ({PROFILE.epochs:g} epochs")
        and "0.884 ± 0.004" in row["best BitFit or LoRA"]
    )
    assert row["baseline met?"] == "yes"  # SST-2's course baseline is 0.88
    assert row["PEFT − full"].startswith("+0.030 (PEFT ahead, p = ")
    from helpers.report.targets import _other_peft_method

    # The method validation did not pick is named with its own best group (LoRA: 0.894, over the baseline).
    assert _other_peft_method(analysis.compared_runs(frame_of(records), PROFILE)) == [
        "- SST-2, the PEFT method validation did not pick: lora (1 epochs, lr 0.003) scores 0.894 ± 0.004 "
        "[0.884–0.904] and meets the baseline (accuracy ≥ 0.88)."
    ]
    # Full fine-tuning's best group trained longer than BitFit's: the difference says the budgets differ.
    records += [
        fake_record("sst2", "full", seed, 0.86, settings={"epochs": PROFILE.epochs + 3}, validation=0.97)
        for seed in (0, 1, 2)
    ]
    row = analysis.targets_table(frame_of(records), PROFILE).iloc[0]
    assert row["PEFT − full"].endswith(f"; at {PROFILE.epochs:g} vs {PROFILE.epochs + 3:g} epochs")


def test_rate_selection_keeps_variants_apart_and_takes_the_default_where_nothing_was_learned():
    default = DEFAULT_LR["bitfit"]
    rates = (default / 3, default, default * 3)
    records = [fake_record("mrpc", "bitfit", s, 0.684, lr=lr, validation=0.676) for lr in rates for s in (0, 1, 2)]
    # Sparse BitFit at the same rates and seeds (tier 4) is another variant, not more seeds of BitFit.
    records += [
        fake_record("mrpc", "bitfit", 0, 0.70 + i / 100, lr=lr, validation=0.70 + i / 100, bitfit_variant="sparse")
        for i, lr in enumerate(rates)
    ]
    best = analysis.best_lr(frame_of(records)).set_index("variant")
    assert best.loc["bitfit", "lr"] == default  # every rate tied: the default, as helpers.study trains it
    assert best.loc["bitfit (sparse)", "lr"] == default * 3 and best.loc["bitfit (sparse)", "n"] == 1
    shown = analysis.best_lr_table(analysis.best_lr(frame_of(records))).set_index("method")
    assert shown.loc["bitfit (sparse)", "within noise of the best"].endswith("(undecided: 1 seed(s))")


def test_a_rate_with_one_seed_beside_a_three_seed_best_is_not_ruled_out_and_says_so():
    records = [fake_record("sst2", "lora", s, 0.9, lr=1e-3, validation=0.90 + s / 100) for s in (0, 1, 2)]
    records.append(fake_record("sst2", "lora", 0, 0.9, lr=3e-3, validation=0.905))  # one seed, within the spread
    shown = analysis.best_lr_table(analysis.best_lr(frame_of(records))).iloc[0]
    assert shown["within noise of the best"] == "0.001, 0.003 (1 seed: not ruled out)"


def test_the_cost_table_and_figure_read_runs_without_a_named_device(tmp_path):
    from helpers import plots

    records = [fake_record("sst2", m, 0, 0.8) for m in ("bitfit", "lora")]
    records[0]["versions"]["device"] = None
    frame = frame_of(records)
    table = analysis.cost_table(frame).set_index("variant")
    assert table.loc["bitfit", "speed measured on"] == "unknown device"
    plots.cost_per_method(frame, tmp_path)
    assert (tmp_path / "time_memory.png").is_file()


def test_same_rank_pairs_pool_over_ranks_with_each_rank_one_unit():
    import pandas as pd

    from helpers.report.rank import _scale_pooled

    def pair(rank, larger, smaller, seeds=3):
        rows = [{"rank": rank, "scale": 16.0 / rank, "test": larger + s / 1000} for s in range(seeds)]
        return pd.DataFrame(rows + [{"rank": rank, "scale": 0.01, "test": smaller + s / 1000} for s in range(seeds)])

    blocks = [pair(1, 0.73, 0.70), pair(2, 0.72, 0.70), pair(4, 0.75, 0.70), pair(64, 0.70, 0.70, seeds=1)]
    line, p_value = _scale_pooled(blocks, "MRPC")
    # r=64 has one seed a side: left out; the other three differences are +0.03, +0.02, +0.05.
    assert "r = 1, 2, 4," in line and "ahead at 3 of 3 ranks, by +0.033 on average" in line
    assert _scale_pooled(blocks[:2], "MRPC") == ("", None)  # two ranks are too few to pool
    assert 0 < p_value < 1


def test_a_task_never_trained_longer_says_how_often_its_best_epoch_was_the_last():
    from helpers.report.results import _not_trained_longer

    records = [fake_record("sst2", "lora", seed, 0.85) for seed in (0, 1, 2)]
    for record in records[:2]:  # the best evaluation at the last epoch in two runs of three
        record["best"]["epoch"] = float(PROFILE.epochs)
    records[2]["best"]["epoch"] = PROFILE.epochs / 2
    frame = frame_of(records)
    text = _not_trained_longer(frame, PROFILE, frame.iloc[:0])
    assert f"no run trained longer than {PROFILE.epochs:g} epochs" in text
    assert "the last one in 2 of 3 runs, so more epochs might still pay there (not measured)" in text


def test_bitfit_is_judged_again_at_a_longer_budget_where_every_method_trained_it():
    from helpers.report.peft import _bitfit_trained_longer

    longer = {"epochs": PROFILE.epochs + 3}
    records = [
        fake_record("mrpc", method, seed, value + seed / 1000, settings=longer, majority=0.684)
        for method, value in (("bitfit", 0.79), ("head", 0.70), ("full", 0.80))
        for seed in (0, 1, 2)
    ]
    lines = _bitfit_trained_longer(frame_of(records), PROFILE)
    assert len(lines) == 1 and f"Trained for {PROFILE.epochs + 3:g} epochs instead" in lines[0]
    assert (
        "BitFit beats the classifier alone by 0.090" in lines[0]
        and "supported: BitFit closes 90% of the gap" in lines[0]
    )
    assert _bitfit_trained_longer(frame_of(records[:6]), PROFILE) == []  # no full fine-tuning at that budget


def test_bitfit_level_with_full_fine_tuning_is_not_said_to_close_more_than_the_whole_gap():
    from helpers.report.peft import _bitfit_verdict

    records = [
        fake_record("mrpc", method, seed, value + spread * (seed - 1), majority=0.684)
        for method, value, spread in (("bitfit", 0.796, 0.011), ("head", 0.701, 0.004), ("full", 0.784, 0.002))
        for seed in (0, 1, 2)
    ]
    verdict = _bitfit_verdict(frame_of(records))
    assert "is not distinguishable from full fine-tuning" in verdict and "%" not in verdict.split("training")[0]
    assert "beats the classifier alone (0.701)" in verdict


def test_the_validation_test_gap_is_compared_at_two_training_sizes():
    from helpers.report.design import _gap_against_training_size

    def runs(size, gap):
        records = [fake_record("sst2", "full", seed, 0.85, validation=0.85 + gap) for seed in (0, 1, 2)]
        frame = frame_of(records)
        return frame.assign(train_size=size)

    text = _gap_against_training_size(runs(60_000, 0.08), runs(8_000, 0.04), "sst2")
    assert "8,000 → 60,000 training examples" in text and "full +0.040 → +0.080" in text
    assert _gap_against_training_size(runs(8_000, 0.08), runs(8_000, 0.04), "sst2") == ""  # one size: nothing to add


def test_a_course_target_above_the_published_score_is_read_against_both(tmp_path):
    records = [
        fake_record("cola", method, seed, value + 0.01 * seed, validation=validation, majority=0.0)
        for method, value, validation in (("bitfit", 0.40, 0.45), ("lora", 0.42, 0.44), ("full", 0.45, 0.50))
        for seed in (0, 1, 2)
    ]
    text = _report_of(records, tmp_path)
    # CoLA's course target (0.6) lies above the published MiniLM-L6 score (0.475): no "stretch" line, but how close.
    assert (
        "- CoLA: the course target (matthews_correlation ≥ 0.6) lies above the published full fine-tuning of a model "
        "this size (0.475); the best BitFit or LoRA (bitfit, 0.410) is 0.065 below that published figure and 0.190 "
        "short of the target." in text
    )
    assert "CoLA, stretch" not in text


def test_runs_with_test_curves_get_a_table_per_epoch_and_count_with_the_runs_without(tmp_path):
    records = [fake_record("sst2", "lora", seed, 0.80, majority=0.5) for seed in range(3)]
    longer = {"epochs": PROFILE.epochs + 1, "eval_test": True}
    for seed in range(3):
        record = fake_record("sst2", "lora", seed, 0.85, validation=0.9, majority=0.5, settings=longer)
        record["evals"] = [
            {"step": 2 * epoch, "epoch": float(epoch), "split": split, "metrics": {"accuracy": value}, "loss": 0.5}
            for epoch, values in ((1, (0.88, 0.83)), (2, (0.90, 0.85 + 0.01 * seed)))
            for split, value in zip(("validation", "test"), values)
        ]
        record["best"]["epoch"] = 2.0
        records.append(record)
    # eval_test changes nothing that trains: the runs are read as trained longer, beside the profile's.
    assert analysis.longer_training_runs(frame_of(records), PROFILE)["epochs"].value_counts().to_dict() == {
        PROFILE.epochs: 3,
        PROFILE.epochs + 1: 3,
    }
    text = _report_of(records, tmp_path)
    assert "### Validation and test per epoch" in text
    assert "| SST-2 | lora r=8 | 0.003 | test | 0.830 ± 0.000 | 0.860 ± 0.010 | 2, 2, 2 |" in text
    assert "| SST-2 | lora r=8 | 0.003 | validation | 0.880 ± 0.000 | 0.900 ± 0.000 | 2, 2, 2 |" in text
    assert (tmp_path / "figures" / "test_curves.png").is_file()


def test_setting_grids_leave_out_tasks_where_the_setting_was_never_varied():
    records = [
        fake_record("mrpc", "bitfit", seed, 0.70, majority=0.68, settings={"batch_size": batch})
        for batch in (8, PROFILE.batch_size)
        for seed in range(3)
    ]
    records += [fake_record("cola", "bitfit", seed, 0.30, majority=0.0) for seed in range(3)]  # its rate search only
    runs = analysis.setting_grid_runs(frame_of(records), PROFILE, "batch_size")
    assert set(runs["task"]) == {"mrpc"} and sorted(set(runs["batch_size"])) == sorted({8, PROFILE.batch_size})


def test_a_task_scored_by_mcc_reads_its_label_prior_from_the_saved_split_numbers(tmp_path):
    records = [fake_record("cola", "bitfit", seed, 0.0, majority=0.0) for seed in range(3)]
    records += [fake_record("cola", "lora", seed, 0.3, majority=0.0) for seed in range(3)]
    _write(records, tmp_path / "results")
    shares = {"unacceptable": 0.3, "acceptable": 0.7}
    save_split_overlap(tmp_path / "results", "cola", {"validation": {"label_shares": shares}}, "local:fixture")
    text = write_report(
        tmp_path / "results", tmp_path / "figures", tmp_path / "report.md", PROFILE.name, bench_path=tmp_path / "x.json"
    )
    # The fixture's runs end at a loss of 0.6; the entropy of a 0.3 / 0.7 prior is 0.611.
    assert (
        "- CoLA, bitfit: the training loss over the last tenth of the logged steps averages 0.600 (3 seeds), against "
        "0.611, the cross-entropy of always answering the class frequencies (acceptable 0.700 / unacceptable 0.300)"
        in text
    )


def test_targets_list_groups_at_the_majority_class_and_those_whose_interval_reaches_it():
    from helpers.report.targets import _against_the_majority

    records = [fake_record("rte", "bitfit", seed, 0.527, majority=0.527) for seed in (0, 1, 2)]  # learned nothing
    records += [fake_record("rte", "full", seed, v, majority=0.527) for seed, v in enumerate((0.527, 0.585, 0.570))]
    records += [fake_record("rte", "lora", seed, v, majority=0.527) for seed, v in enumerate((0.56, 0.57, 0.58))]
    nothing, unshown = _against_the_majority(analysis.compared_runs(frame_of(records), PROFILE))
    assert "RTE bitfit (" in nothing and "0.527 vs 0.527" in nothing and "lora" not in nothing
    # Full fine-tuning's mean (0.561) is above 0.527, but its interval over 3 seeds reaches it; LoRA's does not.
    assert "RTE full (" in unshown and "0.561 [" in unshown and "lora" not in unshown


def test_a_difference_decided_with_p_between_0_01_and_0_05_is_called_weak_evidence():
    weak = analysis.Comparison("A", "B", [0.80, 0.81, 0.82], [0.775, 0.785, 0.795])
    strong = analysis.Comparison("A", "B", [0.80, 0.81, 0.82], [0.70, 0.71, 0.72])
    assert weak.verdict == strong.verdict == "a"
    assert analysis.STRONG_P <= weak.test[0] < analysis.ALPHA and strong.test[0] < analysis.STRONG_P
    assert "Weak evidence" in weak.sentence("accuracy", "MRPC")
    assert "Weak evidence" not in strong.sentence("accuracy", "MRPC")


def test_a_method_at_the_majority_class_that_mean_pooling_lifts_is_said_to_be_limited_by_its_input(tmp_path):
    records = [fake_record("mrpc", "bitfit", seed, 0.684, lr=3e-3, majority=0.684) for seed in range(3)]
    records += [
        fake_record("mrpc", "bitfit", seed, value, lr=3e-3, majority=0.684, pooling="mean")
        for seed, value in enumerate((0.73, 0.74, 0.75))
    ]
    # RTE: mean pooling lifts the mean a little, but its interval over 3 seeds reaches the majority class.
    records += [fake_record("rte", "bitfit", seed, 0.527, lr=3e-3, majority=0.527) for seed in range(3)]
    records += [
        fake_record("rte", "bitfit", seed, value, lr=3e-3, majority=0.527, pooling="mean")
        for seed, value in enumerate((0.53, 0.54, 0.56))
    ]
    text = _report_of(records, tmp_path)
    assert "At the same budget, another pooling lifts its mean" in text and "mean pooling: 0.740 ± 0.010." in text
    assert "The head's input limited it" in text.split("- MRPC, bitfit")[1].split("\n")[0]
    rte = text.split("- RTE, bitfit")[1].split("\n")[0]
    assert "mean pooling: 0.543 ± 0.015 [" in rte and "not shown above it]" in rte and "a hint" in rte
    assert (
        "- **Pooling** (" in text
        and "MRPC bitfit: mean pooling 0.740 vs [CLS] pooling 0.684: mean pooling ahead" in text
    )
    assert "Other training settings lift" not in text  # nothing trained longer here


def test_comparisons_per_budget_give_a_verdict_at_the_profiles_epochs_and_at_each_longer_budget():
    longer = {"epochs": PROFILE.epochs + 2}
    records = []
    for method, short, long in (("lora", 0.72, 0.79), ("bitfit", 0.684, 0.80)):
        records += [fake_record("mrpc", method, s, short + 0.01 * s, lr=3e-3, majority=0.684) for s in range(3)]
        records += [
            fake_record("mrpc", method, s, long + 0.01 * s, lr=3e-3, majority=0.684, settings=longer) for s in range(3)
        ]
    found = analysis.comparisons_per_budget(frame_of(records), PROFILE, "lora", "bitfit", ("LoRA", "BitFit"))
    assert [(task, epochs) for task, epochs, _ in found] == [("mrpc", PROFILE.epochs), ("mrpc", PROFILE.epochs + 2)]
    assert [c.verdict for _, _, c in found] == ["a", "tie"]  # LoRA ahead at the short budget only
