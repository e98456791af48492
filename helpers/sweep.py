"""Grids of runs: expand comma lists into configs, run what has no record yet, one progress bar.

Every run writes its record atomically when it finishes, so a sweep killed part-way and started
again trains only the runs whose records are missing.
"""

from __future__ import annotations

import itertools
import logging
import os
from pathlib import Path

from helpers.methods import LORA_METHODS, PROMPT_METHODS, MethodConfig
from helpers.records import find_record, prepare_results_dir
from helpers.training import RESULTS_DIR, TrainConfig, check_run, train

log = logging.getLogger(__name__)

METHOD_FIELDS = {f for f in MethodConfig.__dataclass_fields__}
TRAIN_FIELDS = {f for f in TrainConfig.__dataclass_fields__} - {"method"}
# Knobs that only mean something for some methods: other methods ignore them in the grid.
ONLY_FOR = {
    "rank": LORA_METHODS,
    "alpha": LORA_METHODS,
    "lora_dropout": LORA_METHODS,
    "target_modules": LORA_METHODS,
    "num_virtual_tokens": PROMPT_METHODS,
    "prefix_projection": ("prefix",),
    "encoder_hidden_size": ("ptuning",),
    "bitfit_variant": ("bitfit",),
}


def make_config(values: dict) -> TrainConfig:
    """A TrainConfig from one flat dict of TrainConfig and MethodConfig fields."""
    unknown = set(values) - METHOD_FIELDS - TRAIN_FIELDS
    if unknown:
        raise ValueError(f"Unknown setting(s) {sorted(unknown)}.")
    method = MethodConfig(**{k: v for k, v in values.items() if k in METHOD_FIELDS})
    return TrainConfig(method=method, **{k: v for k, v in values.items() if k in TRAIN_FIELDS})


def expand_grid(grid: dict[str, list], fixed: dict | None = None) -> list[TrainConfig]:
    """Every combination of the grid's values (a method-specific knob only varies for its methods),
    de-duplicated by run id, in a stable order."""
    fixed = dict(fixed or {})
    keys = list(grid)
    configs: dict[str, TrainConfig] = {}
    for combination in itertools.product(*(grid[k] for k in keys)):
        values = {**fixed, **dict(zip(keys, combination))}
        method = values.get("method", MethodConfig.method)
        for knob, methods in ONLY_FOR.items():
            if knob in grid and method not in methods:
                values.pop(knob, None)
        config = make_config(values)
        configs.setdefault(config.run_id, config)
    return list(configs.values())


def run_sweep(
    configs: list[TrainConfig],
    *,
    glue_dir: str | os.PathLike | None = None,
    results_dir: str | os.PathLike = RESULTS_DIR,
    force: bool = False,
    progress: bool = True,
    **train_kwargs,
) -> list[dict]:
    """Train every config that has no record yet; returns all records in the configs' order."""
    from tqdm.auto import tqdm

    results_dir = Path(results_dir)
    # Complete each run id with the fingerprint of its data (read once per task), so the records
    # counted here are those of this data.
    cache = {"cache_dir": train_kwargs["cache_dir"]} if "cache_dir" in train_kwargs else {}
    configs = [c if c.data_fingerprint else c.with_data(glue_dir, **cache) for c in configs]
    done = 0 if force else sum(find_record(results_dir, c.run_id, warn=False) is not None for c in configs)
    if done < len(configs):  # a mistake in the last config of the grid fails now, not after hours of training
        for config in configs:
            check_run(config)
        prepare_results_dir(results_dir)
    records = []
    with tqdm(total=len(configs), initial=0, desc="sweep", unit="run", disable=not progress) as bar:
        if done:
            bar.write(f"{done} of {len(configs)} runs already have records in {results_dir}; training the rest.")
        # Runs are quiet (no bar per run), but each trained run's trainable / total / percent line is
        # still printed, above the sweep's bar.
        announce = bar.write if progress else None
        for config in configs:
            bar.set_postfix_str(config.run_id, refresh=True)
            records.append(train(config, glue_dir=glue_dir, results_dir=results_dir, force=force, quiet=True, announce=announce, **train_kwargs))
            bar.update(1)
    return records
