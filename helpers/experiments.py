"""The experiments behind the notebooks, as grids of run configs (one place, used by notebooks and CLI).

Every experiment shares the profile's data settings, so a run that belongs to two experiments
(LoRA r=8 is in the LoRA notebook and in the rank sweep) has one run id and is trained once.
LoRA keeps one alpha (MethodConfig's) for every rank, as the LoRA paper does ("we set alpha to
the first r we try and do not tune it"): the update is scaled by alpha / r.
"""

from __future__ import annotations

import os

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
    name: str, profile: str | Profile, tasks=DEFAULT_TASKS, model: str = DEFAULT_MODEL, **method_overrides
) -> list[TrainConfig]:
    """The run configs of one named experiment (see EXPERIMENTS)."""
    profile = get_profile(profile)
    if name not in EXPERIMENTS:
        raise ValueError(f"Unknown experiment {name!r}; choose one of {', '.join(EXPERIMENTS)}.")
    configs = EXPERIMENTS[name](profile, tuple(tasks), model, **method_overrides)
    return list({config.run_id: config for config in configs}.values())  # a run shared by two grid rows runs once


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
    **overrides,
) -> list[dict]:
    """Train every run of the experiment that has no record yet; returns all its records
    (report_to: Trainer's live view)."""
    from helpers.sweep import run_sweep

    profile = get_profile(profile)
    configs = experiment_configs(name, profile, tasks, model, **overrides)
    return run_sweep(
        configs,
        glue_dir=glue_dir,
        results_dir=results_dir or results_dir_for(profile.name),
        progress=progress,
        report_to=report_to,
    )


def results_dir_for(profile: str) -> os.PathLike:
    """Each profile keeps its records apart: results/<profile>/."""
    return RESULTS_DIR / profile
