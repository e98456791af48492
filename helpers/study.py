"""The committed study (`results/full/`), as tiers of run grids that resume across sessions.

Tier 1, the course core on SST-2 and MRPC, has three steps, each decided by the records of the
one before (selection on the validation slice, never on the GLUE dev set):

- `1a`: a learning-rate grid per method (head, BitFit, LoRA r=8, full), one seed, SST-2 capped at
  8,000 training examples (stated in PLAN.md), MRPC whole; 2 epochs.
- `1b`: seeds 1 and 2 at each grid's best rate and its two neighbours, so that the best rate is
  chosen over 3 seeds and the "which rate is best" verdicts have their test.
- `1c`: each method at its selected rate, 3 seeds, on the whole training sets, 2 epochs.
- `1d`: MRPC, every core method for 5 epochs, 3 seeds (at 2 epochs BitFit learned nothing at any rate).
- `1e`: SST-2, LoRA and BitFit for 3 epochs, 3 seeds, with test curves.

Tier 2 (LoRA rank sweep, alpha = 16 and alpha = 2r) and tier 3 (batch size and warmup for BitFit and
LoRA) train at the rates tier 1 selected (`selected_rates`: the default rate where a method learned
nothing at any rate of its grid); tier 6 (overfitting 32 examples) at the default rates. Tier 4 (the
six other methods) and tier 5 (CoLA and RTE) each run a short search per method: three rates on one seed,
one step further past an edge, then 3 seeds at the best rate on the whole training set; tier 5b trains
tier 5's methods for 5 epochs at those rates. Tier 7 repeats BitFit and LoRA on MRPC, CoLA and RTE with mean
pooling. See results/full/PLAN.md.
Tier `llm` fine-tunes the packaged LLM and MiniLM side by side (`--results-dir results/llm`); tier
`qlora` (a CUDA GPU with bitsandbytes) repeats it with QLoRA.

`python -m helpers.study --tier 1a` trains what has no record yet; `--dry-run` lists the runs.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
from pathlib import Path

from helpers.analysis import all_tied, default_if_all_tied
from helpers.methods import MethodConfig
from helpers.paths import llm_results_dir
from helpers.profiles import get_profile
from helpers.sweep import expand_grid, run_sweep
from helpers.training import DEFAULT_LR, RESULTS_DIR, TrainConfig

PROFILE = get_profile("full")  # the study's settings live in its profile
STUDY_DIR = RESULTS_DIR / PROFILE.name
TASKS = ("sst2", "mrpc")
SEEDS = PROFILE.seeds
# Shared by every run: 2 epochs (the CPU budget; in the two 3-epoch checks in results/full SST-2's
# validation gained 0.004 from epoch 2 to 3, MRPC's still climbed, 0.706 to 0.744, which tier 1d follows
# up), a validation slice capped at 2,000 examples (evaluated every epoch), and fp32: the
# sessions' CPUs differ (AVX2 only, or AVX-512 with bf16, where `auto` would train in bf16 under other run
# ids), and one precision keeps every tier comparable with the tiers before it.
COMMON = {k: v for k, v in PROFILE.data_settings().items() if k != "max_train_samples"}
GRID_TRAIN_SAMPLES = PROFILE.grid_max_train_samples  # the grids' SST-2 cap (MRPC has 3,301: whole)
# Each grid brackets the rates where its method is known to peak; extend it when the best is at an edge.
LR_GRID = PROFILE.lr_grid
METHOD_ORDER = ("bitfit", "lora", "full", "head")  # the course core first, if the time runs out


def tier_1a() -> list[TrainConfig]:
    configs = []
    for method in METHOD_ORDER:
        configs += expand_grid(
            {"task": list(TASKS), "lr": list(LR_GRID[method])},
            {**COMMON, "method": method, "seed": 0, "max_train_samples": GRID_TRAIN_SAMPLES},
        )
    return configs


def _best_validation(config: TrainConfig, results_dir: Path, glue_dir) -> float | None:
    """The recorded best validation score of this run, or None if it has no record yet."""
    from helpers.records import find_record

    record = find_record(results_dir, config.with_data(glue_dir).run_id)
    value = record["best"].get("value") if record is not None else None
    return None if value is None or math.isnan(value) else value


def _method_fields(method: str | MethodConfig) -> dict:
    """A method's name (at its defaults) or config as the flat settings expand_grid takes."""
    return {"method": method} if isinstance(method, str) else method.to_dict()


def _grid_runs(task: str, method: str | MethodConfig, lr: float, seeds) -> list[TrainConfig]:
    """A grid point's runs: SST-2 at the grids' cap, MRPC whole."""
    base = {**COMMON, "task": task, **_method_fields(method), "lr": lr, "max_train_samples": GRID_TRAIN_SAMPLES}
    return expand_grid({"seed": list(seeds)}, base)


def _outward(lr: float, up: bool) -> float:
    """The next rate beyond `lr` on the half-decade ladder the grids use (..., 1e-3, 3e-3, 1e-2, ...)."""
    rate = lr * 3 if up else lr / 3
    exponent = math.floor(math.log10(rate))
    mantissa = min((1, 3, 10), key=lambda m: abs(math.log10(rate / 10**exponent / m)))
    return float(f"{mantissa * 10**exponent:.0e}")


def rate_ladder(task: str, method: str, results_dir: Path = STUDY_DIR, glue_dir=None) -> tuple[float, ...]:
    """The method's grid, one step longer where seed 0's best rate (1a, validation) sits on an edge:
    a best rate on the edge of its grid is not known to be the best (one extension, not repeated)."""
    grid = LR_GRID[method]
    scores = {lr: _best_validation(_grid_runs(task, method, lr, [0])[0], results_dir, glue_dir) for lr in grid}
    scores = {lr: value for lr, value in scores.items() if value is not None}
    if len(scores) < 2 or all_tied(scores.values()):  # nothing learned more than another rate: no edge
        return grid
    best = max(scores, key=scores.get)
    if best == grid[0]:
        return (_outward(grid[0], up=False), *grid)
    if best == grid[-1]:
        return (*grid, _outward(grid[-1], up=True))
    return grid


def tier_1b(results_dir: Path = STUDY_DIR, glue_dir=None) -> list[TrainConfig]:
    """Seeds 1 and 2 at each 1a grid's best rate (seed 0, validation) and its two neighbours on the
    rate ladder; a neighbour beyond the grid's edge gets seed 0 too. A grid whose rates all scored the
    same (nothing learned more than the majority class) gets them at the method's default rate, so
    that "it does not learn" rests on three seeds too."""
    configs = []
    for task in TASKS:
        for method in METHOD_ORDER:
            ladder = rate_ladder(task, method, results_dir, glue_dir)
            scores = {
                lr: _best_validation(_grid_runs(task, method, lr, [0])[0], results_dir, glue_dir)
                for lr in LR_GRID[method]
            }
            scores = {lr: value for lr, value in scores.items() if value is not None}
            if not scores:
                continue
            # A grid where every rate scored the same has no best: its neighbourhood is the default rate's.
            tied = all_tied(scores.values()) and DEFAULT_LR[method] in ladder
            best = ladder.index(DEFAULT_LR[method] if tied else max(scores, key=scores.get))
            for lr in ladder[max(0, best - 1) : best + 2]:
                configs += _grid_runs(task, method, lr, SEEDS if lr not in LR_GRID[method] else SEEDS[1:])
    return configs


def selected_rates(results_dir: Path = STUDY_DIR, glue_dir=None) -> dict[tuple[str, str], float]:
    """Per (task, method): among the rates with all 3 seeds (1a + 1b), the best mean validation score;
    where every such rate scored the same (nothing learned at any rate: MRPC BitFit in 2 epochs), the
    method's default rate, where tier 1b centred its seeds (helpers.analysis.selected_lr: the same rule)."""
    chosen = {}
    for task in TASKS:
        for method in METHOD_ORDER:
            means = {}
            for lr in rate_ladder(task, method, results_dir, glue_dir):
                runs = _grid_runs(task, method, lr, SEEDS)
                values = [v for c in runs if (v := _best_validation(c, results_dir, glue_dir)) is not None]
                if len(values) == len(SEEDS):
                    means[lr] = sum(values) / len(values)
            if means:
                default = default_if_all_tied(means, method)
                chosen[(task, method)] = default if default is not None else max(means, key=means.get)
    return chosen


def tier_1c(results_dir: Path = STUDY_DIR, glue_dir=None) -> list[TrainConfig]:
    """Each method at its selected rate, 3 seeds, whole training sets."""
    rates = selected_rates(results_dir, glue_dir)
    configs = []
    for method in METHOD_ORDER:
        for task in TASKS:
            if (task, method) in rates:
                configs += expand_grid(
                    {"seed": list(SEEDS)}, {**COMMON, "task": task, "method": method, "lr": rates[(task, method)]}
                )
    return configs


# Tier 1d: MRPC trained longer. At 2 epochs BitFit stayed at the majority class at every rate (3e-4 to
# 3e-2), while a 3-epoch check (recipe 1) was still climbing on validation at its last epoch
# (0.676, 0.706, 0.744; test 0.775). At 5 epochs BitFit and LoRA both passed full fine-tuning's 2-epoch
# score, so full fine-tuning and the head get the same 5 epochs: every method compared at one budget.
LONGER = {"tasks": ("mrpc",), "epochs": 5, "methods": METHOD_ORDER}
# SST-2's best validation epoch was the last of 2 in every tier-1c run: does a third pay? BitFit and LoRA
# (the course's PEFT methods, 0.018 and 0.024 short of the 0.88 baseline), LoRA first.
# Its runs also score the test set after every epoch (eval_test): the test curves the report shows.
THIRD_EPOCH = {"tasks": ("sst2",), "epochs": 3, "methods": ("lora", "bitfit"), "settings": {"eval_test": True}}


def _at_rates(plan: dict, rates: dict[tuple[str, str], float]) -> list[TrainConfig]:
    """plan's methods (in its order, each on every task of the plan), 3 seeds, whole training sets, each at its
    rate in rates (a method without one is not listed yet), with the plan's epochs, method knobs and settings
    where it gives them: one thing apart from the runs at that rate they are read against."""
    return [
        config
        for method in plan["methods"]
        for task in plan["tasks"]
        if (task, method) in rates
        for config in expand_grid(
            {"seed": list(SEEDS)},
            {
                **COMMON,
                "task": task,
                **_method_fields(MethodConfig(method=method, **plan.get("knobs", {}))),
                "lr": rates[(task, method)],
                **{key: plan[key] for key in ("epochs",) if key in plan},
                **plan.get("settings", {}),
            },
        )
    ]


def tier_1d(results_dir: Path = STUDY_DIR, glue_dir=None) -> list[TrainConfig]:
    """Each core method on MRPC for LONGER epochs (`_at_rates`)."""
    return _at_rates(LONGER, selected_rates(results_dir, glue_dir))


def tier_1e(results_dir: Path = STUDY_DIR, glue_dir=None) -> list[TrainConfig]:
    """LoRA and BitFit on SST-2 for a THIRD_EPOCH (`_at_rates`)."""
    return _at_rates(THIRD_EPOCH, selected_rates(results_dir, glue_dir))


RANKS = PROFILE.ranks
BATCH_SIZES = tuple(b for b in PROFILE.batch_sizes if b != PROFILE.batch_size)  # the default comes from tier 1
WARMUP_RATIOS = tuple(w for w in PROFILE.warmup_ratios if w != TrainConfig.warmup_ratio)  # likewise
OVERFIT = {"max_train_samples": 32, "epochs": 30, "batch_size": 8, "max_validation_samples": 200, "eval_train": True}


def _at_selected_rate(results_dir, glue_dir, methods, grid: dict, fixed: dict) -> list[TrainConfig]:
    """Grid runs of each method at its selected rate, 3 seeds, SST-2 at the grid's cap, MRPC whole."""
    rates = selected_rates(results_dir, glue_dir)
    configs = []
    for task in TASKS:
        for method in methods:
            if (task, method) in rates:
                base = {
                    **COMMON,
                    "task": task,
                    "method": method,
                    "lr": rates[(task, method)],
                    "max_train_samples": GRID_TRAIN_SAMPLES,
                    **fixed,
                }
                configs += expand_grid({**grid, "seed": list(SEEDS)}, base)
    return configs


def tier_2(results_dir: Path = STUDY_DIR, glue_dir=None) -> list[TrainConfig]:
    """LoRA rank sweep at alpha = 16 on both tasks, and at alpha = 2r (constant scale) on MRPC."""
    fixed_alpha = _at_selected_rate(results_dir, glue_dir, ("lora",), {"rank": list(RANKS)}, {"alpha": 16.0})
    scaled = [
        c
        for rank in RANKS
        for c in _at_selected_rate(results_dir, glue_dir, ("lora",), {"rank": [rank]}, {"alpha": 2.0 * rank})
        if c.task == "mrpc"
    ]
    return list({c.run_id: c for c in fixed_alpha + scaled}.values())


def tier_3(results_dir: Path = STUDY_DIR, glue_dir=None) -> list[TrainConfig]:
    """Batch size, then warmup, one factor at a time, for BitFit and LoRA, and the point both vary from
    (the default batch size and warmup: tier 1b's runs at the selected rate, not trained again)."""
    methods = ("bitfit", "lora")
    return (
        _at_selected_rate(results_dir, glue_dir, methods, {}, {})
        + _at_selected_rate(results_dir, glue_dir, methods, {"batch_size": list(BATCH_SIZES)}, {})
        + _at_selected_rate(results_dir, glue_dir, methods, {"warmup_ratio": list(WARMUP_RATIOS)}, {})
    )


def tier_6(results_dir: Path = STUDY_DIR, glue_dir=None) -> list[TrainConfig]:
    """The overfitting check: every core method on 32 training examples for 30 epochs, scoring the
    training split each epoch (it should reach ~100% accuracy), at each method's default rate."""
    return expand_grid({"task": list(TASKS), "method": list(METHOD_ORDER)}, {**COMMON, **OVERFIT, "seed": 0})


# Tiers 4 and 5 tune on one seed (the "short grid"): a centre rate and one half-decade step
# either side on the grids' data (SST-2 capped), one step further where seed 0's best sits on an edge,
# then 3 seeds at the best rate on the whole training set. analysis.selected_lr reads the same rate from
# the records: the best single-seed grid score (the lowest such rate on a tie), or the default rate
# where every rate tied and the default was tried (analysis.default_if_all_tied).
OTHER_TASKS = ("cola", "rte")  # tier 5
CORE_PEFT_AND_FULL = ("bitfit", "lora", "full")


def similar_task(task: str) -> str:
    """The tier-1 task of the same kind (single sentences, or sentence pairs), where tier 5 centres its grids."""
    from helpers.tasks import get_task

    kind = len(get_task(task).text_columns)
    return next(t for t in TASKS if len(get_task(t).text_columns) == kind)


def other_methods() -> dict[str, MethodConfig]:
    """Tier 4's methods: every method and variant at its defaults (experiments.every_method) but tier 1's."""
    from helpers.experiments import every_method

    return {name: method for name, method in every_method().items() if name not in METHOD_ORDER}


def _short_search(task: str, method: str | MethodConfig, centre: float, results_dir, glue_dir) -> list[TrainConfig]:
    """The runs of one method's short search on one task, each part listed once the part it depends on
    has its records: the grid (seed 0), the step beyond an edge, then 3 seeds at the best rate."""
    name = method if isinstance(method, str) else method.method
    runs = [
        c
        for lr in (_outward(centre, up=False), centre, _outward(centre, up=True))
        for c in _grid_runs(task, method, lr, [0])
    ]
    scores = {config.lr: _best_validation(config, results_dir, glue_dir) for config in runs}
    if None in scores.values():
        return runs
    best = max(sorted(scores), key=scores.get)
    if not all_tied(scores.values()) and best in (runs[0].lr, runs[-1].lr):
        runs += _grid_runs(task, method, _outward(best, up=best == runs[-1].lr), [0])
        scores[runs[-1].lr] = _best_validation(runs[-1], results_dir, glue_dir)
        if scores[runs[-1].lr] is None:
            return runs
        best = max(sorted(scores), key=scores.get)
    best = default_if_all_tied(scores, name) or best
    return runs + expand_grid({"seed": list(SEEDS)}, {**COMMON, "task": task, **_method_fields(method), "lr": best})


def tier_4(results_dir: Path = STUDY_DIR, glue_dir=None) -> list[TrainConfig]:
    """Every other method (other_methods) on SST-2 and MRPC: a short search around its default rate."""
    return [
        config
        for task in TASKS
        for method in other_methods().values()
        for config in _short_search(task, method, DEFAULT_LR[method.method], results_dir, glue_dir)
    ]


def tier_5(results_dir: Path = STUDY_DIR, glue_dir=None) -> list[TrainConfig]:
    """BitFit, LoRA r=8 and full fine-tuning on CoLA and RTE: a short search around the rate tier 1
    selected on the task of the same kind (similar_task); nothing for a method before tier 1 selects it."""
    rates = selected_rates(results_dir, glue_dir)
    return [
        config
        for task in OTHER_TASKS
        for method in CORE_PEFT_AND_FULL
        if (similar_task(task), method) in rates
        for config in _short_search(task, method, rates[(similar_task(task), method)], results_dir, glue_dir)
    ]


# Tier 5b: CoLA and RTE trained longer, as MRPC was (tier 1d). At 2 epochs (tier 5) BitFit and LoRA learned
# only the label prior on CoLA at every rate, BitFit did on RTE, and RTE's validation curve was still rising
# at the last epoch in 7 of 9 runs. LoRA first, then BitFit, then full fine-tuning (the same budget for the
# comparison), each at the rate tier 5 settled on, 3 seeds, whole training sets.
LONGER_OTHER = {
    "tasks": OTHER_TASKS,
    "epochs": 5,
    "methods": ("lora", "bitfit", "full"),
    "settings": {"eval_test": True},  # test curves over 5 epochs: where overfitting starts, if it does
}


def searched_rates(results_dir: Path = STUDY_DIR, glue_dir=None) -> dict[tuple[str, str], float]:
    """The rate tier 5's short search settled on per (task, method): that of its 3-seed runs, once listed."""
    return {
        (config.task, config.method.method): config.lr for config in tier_5(results_dir, glue_dir) if config.seed != 0
    }


def tier_5b(results_dir: Path = STUDY_DIR, glue_dir=None) -> list[TrainConfig]:
    """CoLA and RTE for LONGER_OTHER epochs at tier 5's rates (`_at_rates`)."""
    return _at_rates(LONGER_OTHER, searched_rates(results_dir, glue_dir))


# Tier 7: pooling. all-MiniLM-L6-v2 was trained as a sentence encoder that averages its token states (mean
# pooling), while the default head reads the first token through BERT's pooler, which that training never used.
# Where BitFit and LoRA learned only the label prior in 2 epochs (MRPC's BitFit, CoLA's both, RTE's BitFit), is
# the head's input the limit? Both methods with mean pooling at the rate their task's runs use (tier 1's
# selection, tier 5's search), 3 seeds, whole training sets, 2 epochs: one setting apart from those runs.
POOLING = {"tasks": ("mrpc", "cola", "rte"), "methods": ("bitfit", "lora"), "knobs": {"pooling": "mean"}}


def tier_7(results_dir: Path = STUDY_DIR, glue_dir=None) -> list[TrainConfig]:
    """BitFit and LoRA with POOLING's pooling on its tasks, each at the rate its model-pooling runs used."""
    return _at_rates(POOLING, {**selected_rates(results_dir, glue_dir), **searched_rates(results_dir, glue_dir)})


LLM_DIR = llm_results_dir(STUDY_DIR)  # results/llm, where notebook 06 looks too


def tier_llm(results_dir: Path = LLM_DIR, glue_dir=None) -> list[TrainConfig]:
    """The two models side by side: the packaged LLM (SmolLM2-135M-Instruct) and MiniLM, each a
    classifier fine-tuned with LoRA r=8 (query and value) and a new head, on the profile's 1,000 training
    examples, 3 seeds, at LoRA's default rate (the rate MiniLM's grid chose on SST-2); the records go
    to results/llm beside the LLM's in-context runs (notebook 06 shows them)."""
    from helpers.experiments import experiment_configs

    return experiment_configs("llm_lora", PROFILE, TASKS)


def tier_qlora(results_dir: Path = LLM_DIR, glue_dir=None) -> list[TrainConfig]:
    """On a CUDA GPU: tier `llm`'s runs as QLoRA (a 4-bit NF4 base, bitsandbytes), 3 seeds, and LoRA on
    the same GPU at seed 0, whose step memory and speed QLoRA's are read against."""
    from helpers.experiments import experiment_configs

    lora_here = [c for c in experiment_configs("llm_lora", PROFILE, TASKS) if c.seed == 0]
    return experiment_configs("llm_qlora", PROFILE, TASKS) + lora_here


TIERS = {
    "1a": lambda results_dir, glue_dir: tier_1a(),
    "1b": tier_1b,
    "1c": tier_1c,
    "1d": tier_1d,
    "1e": tier_1e,
    "2": tier_2,
    "3": tier_3,
    "4": tier_4,
    "5": tier_5,
    "5b": tier_5b,
    "6": tier_6,
    "7": tier_7,
    "llm": tier_llm,
    "qlora": tier_qlora,
}


def _run_tier(tier: str, results_dir: Path, glue_dir, dry_run: bool) -> None:
    """Train a tier's runs that have no record. A tier whose records decide its next runs (4, 5) lists
    more after each pass: it is read again until it asks for nothing new."""
    asked: set[str] = set()
    for attempt in itertools.count(1):
        configs = TIERS[tier](results_dir, glue_dir)
        if attempt > 1 and {config.run_id for config in configs} <= asked:
            return
        print(f"tier {tier}: {len(configs)} runs" + (f" (pass {attempt})" if attempt > 1 else ""))
        if dry_run:
            for config in configs:
                print(
                    f"  {config.task:<5} {Path(str(config.model)).name:<17} {config.method.label():<15} "
                    f"lr={config.lr:g} seed={config.seed} train≤{config.max_train_samples}"
                )
            return
        run_sweep(configs, glue_dir=glue_dir, results_dir=results_dir)
        asked |= {config.run_id for config in configs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.study", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tier", required=True, help=f"comma-separated tiers, run in order: {', '.join(TIERS)}")
    parser.add_argument(
        "--results-dir", default=str(STUDY_DIR), help="where the study's records live (default results/full)"
    )
    parser.add_argument("--glue-dir", default=None, help="local GLUE folder (default $GLUE_DIR, else the Hub)")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="list the runs of each tier without training (tiers 4 and 5 list the runs their records decide "
        "once those records exist)",
    )
    args = parser.parse_args(argv)
    for tier in args.tier.split(","):
        if tier not in TIERS:
            parser.error(f"unknown tier {tier!r}; choose from {', '.join(TIERS)}")
        glue_dir = args.glue_dir or os.environ.get("GLUE_DIR")
        _run_tier(tier, Path(args.results_dir), glue_dir, args.dry_run)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
