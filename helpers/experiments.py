"""The experiments behind the notebooks, as grids of run configs (one place, used by notebooks and CLI).

Every experiment shares the profile's data settings, so a run that belongs to two experiments
(LoRA r=8 is in the LoRA notebook and in the rank sweep) has one run id and is trained once.
LoRA keeps one alpha (MethodConfig's) for every rank, as the LoRA paper does ("we set alpha to
the first r we try and do not tune it"): the update is scaled by alpha / r.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from helpers.fields import default_of
from helpers.methods import REGISTRY, MethodConfig
from helpers.models import DEFAULT_MODEL
from helpers.paths import RESULTS_DIR
from helpers.profiles import Profile, get_profile
from helpers.training import DEFAULT_LR, TrainConfig

DEFAULT_TASKS = ("sst2", "mrpc")


def _config(profile: Profile, task: str, model: str, seed: int, method: MethodConfig, **overrides) -> TrainConfig:
    """A run of the profile; its learning rate: `lr` if given (not None), else the profile's for the task
    and method, else the method's default."""
    if overrides.get("lr") is None:
        overrides["lr"] = profile.rate(task, method.method)
    return TrainConfig(task=task, model=model, method=method, seed=seed, **{**profile.data_settings(), **overrides})


def experiment_configs(
    name: str,
    profile: str | Profile,
    tasks=DEFAULT_TASKS,
    model: str = DEFAULT_MODEL,
    *,
    results_dir: str | os.PathLike | None = None,
    glue_dir: str | os.PathLike | None = None,
    **method_overrides,
) -> list[TrainConfig]:
    """The run configs of one named experiment (see EXPERIMENTS). In a profile made `from_study`, at the
    notebooks' default settings, the runs the study made for it (STUDY_TIERS) stand in for the grid's
    runs of the study's tasks (their rates are the ones the study selected from its records in
    `results_dir`); the rest of the grid (other tasks, methods the study has not trained) stays."""
    profile = get_profile(profile)
    if name not in EXPERIMENTS:
        raise ValueError(f"Unknown experiment {name!r}; choose one of {', '.join(EXPERIMENTS)}.")
    configs = EXPERIMENTS[name](profile, tuple(tasks), model, **method_overrides)
    if profile.from_study and name in STUDY_TIERS and model == DEFAULT_MODEL and _at_defaults(method_overrides):
        configs = _study_runs(name, configs, tasks, results_dir or results_dir_for(profile.name), glue_dir)
    return list({config.run_id: config for config in configs}.values())  # a run shared by two grid rows runs once


def _at_defaults(overrides: dict) -> bool:
    """Are the notebook's settings the defaults (None, or the method's default value)?"""
    defaults = {"variant": default_of(MethodConfig, "bitfit_variant"), "methods": None}
    defaults |= {knob: default_of(MethodConfig, knob) for knob in ("rank", "alpha", "target_modules")}
    return all(value is None or (name in defaults and value == defaults[name]) for name, value in overrides.items())


# Per experiment: the study's tiers that train it, which of their runs belong to it, and which of the
# experiment's own runs the study does not cover (they stay, as runs without a record until trained).
STUDY_TIERS = {
    "bitfit": ("1c", lambda c: c.method.method == "bitfit", lambda c: False),
    "lora": ("1c", lambda c: c.method.method == "lora", lambda c: False),
    "lora_targets": ("1c", lambda c: c.method.method == "lora", lambda c: c.method.target_modules is not None),
    "rank_sweep": ("2", lambda c: c.method.alpha == default_of(MethodConfig, "alpha"), lambda c: False),
    # Tier 4's runs of a method stand in once it lists its final runs (3 seeds, whole sets; after its grid).
    "methods": ("1c,4", lambda c: c.max_train_samples is None, lambda c: False),
    "lr_sweep": ("1a,1b", lambda c: True, lambda c: False),
    "batch_warmup": ("3", lambda c: True, lambda c: False),
    "pooling": ("1c,7", lambda c: c.method.method != "full", lambda c: c.method.pooling != "model" and not _tier_7(c)),
}


def _tier_7(config: TrainConfig) -> bool:
    """Is this one of the runs tier 7 trains (its methods with its pooling on its tasks)?"""
    from helpers.study import POOLING

    return (
        config.task in POOLING["tasks"]
        and config.method.method in POOLING["methods"]
        and config.method.pooling == POOLING["knobs"]["pooling"]
    )


def _study_runs(name: str, configs: list[TrainConfig], tasks, results_dir, glue_dir) -> list[TrainConfig]:
    from helpers import study
    from helpers.tasks import get_task

    tiers, belongs, uncovered = STUDY_TIERS[name]
    tasks = {get_task(task).name for task in tasks}
    ours = [
        config
        for tier in tiers.split(",")
        for config in study.TIERS[tier](Path(results_dir), glue_dir)
        if config.task in tasks and belongs(config)
    ]
    # A grid run stays where the study does not cover it, or lists no run of its task and method yet.
    stays = [
        c
        for c in configs
        if c.task not in study.TASKS or uncovered(c) or not any(o.task == c.task and o.method == c.method for o in ours)
    ]
    # A run the study does not cover, beside runs it does (all-linear LoRA beside query/value, mean pooling
    # beside the model's): at the rate the study selected for its task and method, so the pair differs in one thing.
    if any(c.task in study.TASKS and uncovered(c) for c in stays):
        rates = study.selected_rates(Path(results_dir), glue_dir)
        stays = [
            replace(c, lr=rates[(c.task, c.method.method)])
            if c.task in study.TASKS and uncovered(c) and (c.task, c.method.method) in rates
            else c
            for c in stays
        ]
    return ours + stays


def _bitfit(profile, tasks, model, variant="all", **kw):
    return [
        _config(profile, t, model, s, MethodConfig(method="bitfit", bitfit_variant=variant), **kw)
        for t in tasks
        for s in profile.seeds
    ]


def _lora(profile, tasks, model, target_modules=None, **kw):
    """LoRA at MethodConfig's rank and alpha unless `rank` or `alpha` is given."""
    knobs = {name: kw.pop(name) for name in ("rank", "alpha") if name in kw}
    method = MethodConfig(method="lora", target_modules=target_modules, **knobs)
    return [_config(profile, t, model, s, method, **kw) for t in tasks for s in profile.seeds]


def _lora_targets(profile, tasks, model, **kw):
    return [c for targets in profile.lora_targets for c in _lora(profile, tasks, model, target_modules=targets, **kw)]


def _rank_sweep(profile, tasks, model, **kw):
    return [c for rank in profile.ranks for c in _lora(profile, tasks, model, rank=rank, **kw)]


def every_method() -> dict[str, MethodConfig]:
    """Display name -> config of every registered method and variant at its defaults, in display order;
    methods that need more than a CPU (QLoRA: CUDA) are left out, so the experiment runs anywhere."""
    every = {}
    for name, spec in REGISTRY.items():
        if not spec.needs:
            every[name] = MethodConfig(method=name)
            for variant in spec.variants:
                every[f"{name} ({variant})"] = MethodConfig(method=name, **{spec.variant_knob: variant})
    return every


def _methods(profile, tasks, model, methods=None, **kw):
    """Every method at its defaults (every_method); `methods`, a list of names as the report writes them
    ("bitfit (sparse)" for the sparse variant; "bitfit sparse" is accepted too), picks a subset."""
    every = every_method()
    methods = methods if methods is not None else profile.methods
    if methods is not None:
        if isinstance(methods, str):
            raise ValueError(f"methods must be a list of names, e.g. [{methods!r}], not a string.")
        methods = {_display_name(name) for name in methods}
        unknown = methods - set(every)
        if unknown:
            raise ValueError(
                f"Unknown method(s) {sorted(unknown)} for the methods experiment; choose from {list(every)}."
            )
        every = {name: config for name, config in every.items() if name in methods}
    return [_config(profile, t, model, s, m, **kw) for m in every.values() for t in tasks for s in profile.seeds]


def _display_name(name: str) -> str:
    """The display name of a name typed in a list: "bitfit sparse" (easier to type) is "bitfit (sparse)"."""
    method, _, variant = name.partition(" ")
    return f"{method} ({variant})" if variant and not variant.startswith("(") else name


def _lr_sweep(profile, tasks, model, **kw):
    """Each method's grid plus its default rate (DEFAULT_LR), so the sweep contains the runs the other
    experiments use."""
    kw.pop("lr", None)  # the sweep sets the rate itself
    return [
        _config(profile, t, model, s, MethodConfig(method=m), lr=lr, **kw)
        for m, lrs in profile.lr_grid.items()
        for lr in sorted({*lrs, DEFAULT_LR[m]})
        for t in tasks
        for s in profile.lr_sweep_seeds
    ]


def _batch_warmup(profile, tasks, model, **kw):
    lora = MethodConfig(method="lora")
    by_batch = [
        _config(profile, t, model, s, lora, batch_size=b, **kw)
        for b in profile.batch_sizes
        for t in tasks
        for s in profile.lr_sweep_seeds
    ]
    by_warmup = [
        _config(profile, t, model, s, lora, warmup_ratio=w, **kw)
        for w in profile.warmup_ratios
        for t in tasks
        for s in profile.lr_sweep_seeds
    ]
    return by_batch + by_warmup


def _pooling(profile, tasks, model, **kw):
    return [
        _config(profile, t, model, s, MethodConfig(method=m, pooling=p), **kw)
        for m in ("head", "bitfit", "lora")
        for p in profile.poolings
        for t in tasks
        for s in profile.seeds
    ]


def _llm_lora(profile, tasks, model, llm=None, method="lora", **kw):
    """LoRA (r=8, query and value, and a new head) on the LLM and on `model`, otherwise the same runs:
    the profile's LLM training subset, validation slice and seeds (method="qlora": on a 4-bit base);
    none where the profile does not fine-tune the LLM."""
    from helpers.llm import DEFAULT_LLM

    if not profile.llm_finetune:
        return []

    sizes = {"max_train_samples": profile.llm_train_samples, "max_validation_samples": profile.llm_validation_samples}
    # Each machine's own precision (`auto`): these runs compare the hardware too (CPU fp32, GPU bf16).
    sizes["precision"] = default_of(TrainConfig, "precision")
    return [
        _config(profile, t, name, s, MethodConfig(method=method), **{**sizes, **kw})
        for t in tasks
        for name in (llm or DEFAULT_LLM, model)
        for s in profile.llm_seeds
    ]


def icl_configs(profile: str | Profile, tasks=DEFAULT_TASKS, llm: str | None = None, scorings=("loglik",)) -> list:
    """The profile's in-context learning runs: its shots, one demonstration draw per LLM seed (zero-shot
    once), on its seeded subset of each dev set."""
    from helpers.icl import icl_grid
    from helpers.llm import DEFAULT_LLM

    profile = get_profile(profile)
    return [
        config
        for task in tasks
        for config in icl_grid(
            task,
            llm or DEFAULT_LLM,
            list(profile.icl_shots),
            list(scorings),
            list(profile.llm_seeds),
            max_eval_samples=profile.icl_eval_samples,
        )
    ]


EXPERIMENTS = {
    "bitfit": _bitfit,
    "bitfit_sparse": lambda p, t, m, **kw: _bitfit(p, t, m, variant="sparse", **kw),
    "lora": _lora,
    "lora_targets": _lora_targets,
    "rank_sweep": _rank_sweep,
    "methods": _methods,
    "lr_sweep": _lr_sweep,
    "batch_warmup": _batch_warmup,
    "pooling": _pooling,
    "llm_lora": _llm_lora,
    "llm_qlora": lambda p, t, m, **kw: _llm_lora(p, t, m, method="qlora", **kw),
}


def run_experiment(
    name: str,
    profile: str | Profile,
    *,
    tasks=DEFAULT_TASKS,
    model: str = DEFAULT_MODEL,
    glue_dir: str | os.PathLike | None = None,
    results_dir: str | os.PathLike | None = None,
    progress: bool = True,
    report_to: str | list[str] | None = None,
    train: bool | None = None,
    **overrides,
) -> list[dict]:
    """Train every run of the experiment that has no record yet; returns all its records
    (report_to: Trainer's live view). `train=False` (the default in a profile made `from_study`) trains
    nothing: it returns the records there are and says which runs have none."""
    from helpers.data import pinned_fingerprints
    from helpers.sweep import run_sweep

    profile = get_profile(profile)
    results_dir = results_dir or results_dir_for(profile.name)
    if train is None:
        train = not profile.from_study
    if train:
        configs = experiment_configs(
            name, profile, tasks, model, results_dir=results_dir, glue_dir=glue_dir, **overrides
        )
        return run_sweep(configs, glue_dir=glue_dir, results_dir=results_dir, progress=progress, report_to=report_to)
    with pinned_fingerprints(_records_data(results_dir, glue_dir, tasks)):
        configs = experiment_configs(
            name, profile, tasks, model, results_dir=results_dir, glue_dir=glue_dir, **overrides
        )
        return _recorded(name, configs, profile, results_dir, glue_dir)


def _records_data(results_dir, glue_dir, tasks) -> dict[str, str]:
    """Per task whose records in `results_dir` were trained on other data than this machine's copy (the same
    rows in another order, e.g. the Hub's SST-2 against the official files): their fingerprint, so that
    reading finds them; says so, since their numbers then come from that data, not from this copy."""
    from helpers.data import data_fingerprint
    from helpers.records import recorded_fingerprints
    from helpers.tasks import get_task

    recorded, pins = recorded_fingerprints(results_dir), {}
    for task in dict.fromkeys(get_task(t).name for t in tasks):
        theirs, ours = recorded.get(task), data_fingerprint(task, glue_dir)
        if theirs and theirs != ours:
            pins[task] = theirs
            print(
                f"{get_task(task).display_name}: the records in {results_dir} were trained on data with fingerprint "
                f"{theirs}; this machine's copy has {ours} (other rows, or the same in another order, as the Hub's "
                "SST-2 is against the official GLUE files). Showing those records: their numbers come from that data."
            )
    return pins


def _recorded(name: str, configs: list[TrainConfig], profile: Profile, results_dir, glue_dir) -> list[dict]:
    """The records of the configs that have one; prints which runs have none and how to train them."""
    from collections import Counter

    from helpers.records import find_record
    from helpers.study import TASKS as STUDY_TASKS

    tiers, _, uncovered = STUDY_TIERS.get(name, (None, None, lambda config: True))
    records, missing = [], {True: Counter(), False: Counter()}  # by "in the study's plan"
    for config in configs:
        record = find_record(results_dir, config.with_data(glue_dir).run_id)
        if record is not None:
            records.append(record)
        else:
            in_study = tiers is not None and config.task in STUDY_TASKS and not uncovered(config)
            missing[in_study][_run_label(config, profile)] += 1
    for in_study, runs in missing.items():
        if runs:
            listed = "; ".join(f"{what} ({n} run{'s' * (n > 1)})" for what, n in runs.items())
            how = (
                f"the study trains them: `python -m helpers.study --tier {tiers}` (hours on CPU)"
                if in_study
                else "they are not in the study: run_experiment(..., train=True) trains them"
            )
            count = sum(runs.values())
            verb = "have" if count > 1 else "has"
            print(
                f"{count} run{'s' * (count > 1)} of experiment {name!r} {verb} no record in {results_dir}: "
                f"{listed}; {how}."
            )
    return records


def _run_label(config: TrainConfig, profile: Profile) -> str:
    """e.g. `SST-2 lora r=8 lr 0.003 batch 64`: the task, the method, and the settings not the profile's."""
    from helpers.tasks import get_task

    label = f"{get_task(config.task).display_name} {config.method.label()} lr {config.lr:g}"
    for name, text in (("batch_size", "batch {}"), ("warmup_ratio", "warmup {:g}")):
        if getattr(config, name) != profile.data_settings().get(name, default_of(TrainConfig, name)):
            label += " " + text.format(getattr(config, name))
    if config.method.pooling != default_of(MethodConfig, "pooling"):
        label += f" {config.method.pooling} pooling"
    return label


def results_dir_for(profile: str) -> os.PathLike:
    """Each profile keeps its records apart: results/<profile>/."""
    return RESULTS_DIR / profile
