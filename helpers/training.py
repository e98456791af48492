"""One training run: data -> model -> method -> Trainer (evaluating during training) -> run record.

`train(TrainConfig(...))` returns the run record. If a record for the same resolved config already
exists under `results_dir`, it is returned without training (unless `force=True`), so an interrupted
sweep, re-run, only finishes what is missing.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from helpers.batching import ShuffledLengthBuckets
from helpers.data import (
    DATA_CACHE,
    DEFAULT_SELECT_ON,
    DEFAULT_SPLIT_SEED,
    DEFAULT_VALIDATION_FRACTION,
    SELECT_ON_CHOICES,
    data_fingerprint,
    load_glue,
    same_source,
    source_name,
)
from helpers.device import cpu_only, library_versions, resolve_precision
from helpers.flops import encoder_shape, training_flops
from helpers.locks import RunLock
from helpers.methods import (
    LORA_METHODS,
    REGISTRY,
    MethodConfig,
    RegistryMapping,
    check_runtime,
    count_parameters,
    head_parameter_count,
    lora_closed_form,
    prepare_model,
    quantization_config,
    resolve_target_modules,
    trainable_parameter_names,
)
from helpers.metrics import compute_metrics, majority_class_metrics
from helpers.models import (
    DEFAULT_MODEL,
    arch_spec,
    canonical_model_name,
    default_target_modules,
    describe_architecture,
    load_model,
    load_tokenizer,
    max_input_tokens,
)
from helpers.paths import RESULTS_DIR
from helpers.records import (
    HistoryRow,
    RecordConfig,
    RecordData,
    RecordMemory,
    RecordParams,
    RecordTest,
    RecordTiming,
    RunRecord,
    StorageError,
    config_hash,
    find_record,
    is_storage_error,
    load_record,
    prepare_results_dir,
    write_record,
)
from helpers.speed import (
    COMPILE_PAD_MULTIPLE,
    GPU_PAD_MULTIPLE,
    sdpa_without_cudnn,
    static_bucket_shapes,
    use_fast_attention,
    use_fast_dropout,
)
from helpers.tasks import TaskSpec, get_task
from helpers.tokenization import GlueCollator, tokenize_splits

log = logging.getLogger(__name__)

RECIPES = ("fast", "baseline")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# How a run trains, as a version in its identity: a change that can change results under the same
# settings gets a new version, so the study never reuses a record made the old way.
#   1: length buckets seeded with seed + epoch (seed 0's second epoch replayed seed 1's first).
#   2: every (seed, epoch) its own batch order; the id also holds the precision actually used and
#      the data's fingerprint, and settings are canonical (2 and 2.0 epochs are one run).
RECIPE_VERSION = 2
# Record config keys that are not TrainConfig fields (what the run resolved or measured).
RESOLVED_KEYS = ("precision_used", "fast_cpu_kernels", "eval_batch_size_used")
# Where a trained run's record goes when the results folder cannot take it (disk full), so the run is not lost.
UNSAVED_RECORDS_DIR = Path(tempfile.gettempdir()) / "peft-glue-unsaved-records"

# Default peak learning rate per method: each registry row's default_lr (helpers.methods, where the
# rates are explained), read on every use so a registered method has one too.
DEFAULT_LR = RegistryMapping(lambda: {name: spec.default_lr for name, spec in REGISTRY.items()})


@dataclass
class TrainConfig:
    """Everything that decides a run's result; its resolved form is saved in the run record.

    Each setting's default and help text live beside it; the command line (`python -m helpers train
    --help`), the profiles and the functions that mirror a setting read them from here
    (helpers.fields.default_of). `metadata["added_in_recipe"]`: see `_unhashed_at_default`.
    """

    task: str = field(default="sst2", metadata={"help": "GLUE task, or a dataset of your own"})
    model: str = field(
        default=DEFAULT_MODEL,
        metadata={"help": "the packaged MiniLM (offline) or any from_pretrained name or path, e.g. roberta-base"},
    )
    method: MethodConfig = field(default_factory=MethodConfig)  # its knobs are MethodConfig's fields
    lr: float | None = field(
        default=None, metadata={"help": "peak learning rate", "default_help": "the method's (DEFAULT_LR)"}
    )
    batch_size: int = field(default=32, metadata={"help": "training batch size per device"})
    epochs: float = field(default=3.0, metadata={"help": "training epochs (fractions allowed)"})
    warmup_ratio: float = field(
        default=0.06, metadata={"help": "fraction of the steps with a linearly rising learning rate"}
    )
    warmup_steps: int | None = field(
        default=None,
        metadata={
            "help": "a number of warmup steps instead of the ratio (overrides warmup_ratio)",
            "default_help": "use the ratio",
            "added_in_recipe": 1,
        },
    )
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    grad_accum: int = field(default=1, metadata={"help": "gradient accumulation steps"})
    max_length: int = field(default=128, metadata={"help": "truncate sequences to this many tokens"})
    seed: int = field(default=0, metadata={"help": "training seed: head init, dropout, batch order"})
    # data
    select_on: str = field(
        default=DEFAULT_SELECT_ON,
        metadata={"help": "train_slice: select on a held-out slice of train; dev: on the GLUE dev set (as papers do)"},
    )
    validation_fraction: float = field(
        default=DEFAULT_VALIDATION_FRACTION, metadata={"help": "fraction of train held out for validation"}
    )
    split_seed: int = field(
        default=DEFAULT_SPLIT_SEED, metadata={"help": "seed of the validation slice and subsampling"}
    )
    max_train_samples: int | None = field(
        default=None,
        metadata={"help": "seeded, stratified subsample of the training split", "default_help": "all"},
    )
    max_validation_samples: int | None = field(
        default=None,
        metadata={"help": "seeded, stratified subsample of the validation split", "default_help": "all"},
    )
    # evaluation and logging
    eval_steps: int | None = field(
        default=None,
        metadata={
            "help": "also evaluate every N steps; the validation split is evaluated every epoch regardless",
            "default_help": "only every epoch",
        },
    )
    logging_steps: int | None = field(
        default=None,
        metadata={"help": "log the training loss every N steps", "default_help": "about 20 points per epoch"},
    )
    early_stopping_patience: int | None = field(
        default=None,
        metadata={"help": "stop after N evaluations without improvement; 0: off", "default_help": "off"},
    )
    eval_batch_size: int = field(default=128, metadata={"help": "evaluation batch size"})
    eval_train: bool = field(
        default=False,
        metadata={
            "help": "also score the training split at every evaluation (the overfitting check)",
            "added_in_recipe": 2,
        },
    )
    eval_test: bool = field(
        default=False,
        metadata={
            "help": "also score the test split(s) at every evaluation: test curves to look at, never to select by "
            "(the best epoch is still chosen on validation)",
            "added_in_recipe": 2,
        },
    )
    # speed
    recipe: str = field(
        default="fast",
        metadata={
            "help": "fast: dynamic padding + length-grouped batches; baseline: pad to max_length, random batches"
        },
    )
    precision: str = field(
        default="auto",
        metadata={
            "help": f"one of {', '.join(PRECISIONS)}; auto: bf16/fp16 on GPUs, bf16 autocast on CPUs with "
            "bf16 instructions, else fp32"
        },
    )
    compile: bool = field(
        default=False,
        metadata={
            "help": "torch.compile the model, lengths padded to multiples of "
            f'{COMPILE_PAD_MULTIPLE} so each gets one static graph (slower here: see README "Throughput")'
        },
    )
    length_grouping: bool = field(
        default=True,
        metadata={"help": "fast recipe: batches of similar length, less padding; off: random batches"},
    )
    length_bucket_batches: int | None = field(
        default=None,
        metadata={
            "help": "fast recipe: batches per length bucket; fewer: more random batches, more padding",
            "default_help": str(ShuffledLengthBuckets.DEFAULT_BUCKET_BATCHES),
            "added_in_recipe": 1,
        },
    )
    # identity (set by the code, not by hand: no help text, so not on the command line)
    recipe_version: int = RECIPE_VERSION  # records made before a recipe change keep their version
    data_fingerprint: str | None = None  # helpers.data.data_fingerprint; filled in by train() and sweeps

    def __post_init__(self):
        if isinstance(self.method, dict):
            self.method = MethodConfig(**self.method)
        self.task = get_task(self.task).name
        # Every condition is evaluated before the first that fails raises.
        checks = self._training_checks() + self._data_checks() + self._evaluation_and_recipe_checks()
        for ok, message in checks:
            if not ok:
                raise ValueError(message + ".")
        if self.lr is None:
            self.lr = DEFAULT_LR[self.method.method]

    def _training_checks(self) -> list[tuple[bool, str]]:
        """(ok, message) for the optimisation settings and the training seed."""
        return [
            (self.batch_size > 0, f"batch_size must be positive, got {self.batch_size}"),
            (math.isfinite(self.epochs) and self.epochs > 0, f"epochs must be positive and finite, got {self.epochs}"),
            (0 <= self.warmup_ratio < 1, f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}"),
            (
                self.warmup_steps is None
                or (
                    isinstance(self.warmup_steps, int)
                    and not isinstance(self.warmup_steps, bool)
                    and self.warmup_steps >= 0
                ),
                "warmup_steps must be a whole number of steps >= 0 (or None to use warmup_ratio), "
                f"got {self.warmup_steps!r}",
            ),
            (
                math.isfinite(self.weight_decay) and self.weight_decay >= 0,
                f"weight_decay must be >= 0 and finite, got {self.weight_decay}",
            ),
            (self.grad_accum >= 1, f"grad_accum must be >= 1, got {self.grad_accum}"),
            (self.max_length > 0, f"max_length must be positive, got {self.max_length}"),
            (
                self.lr is None or (math.isfinite(self.lr) and self.lr > 0),
                f"lr must be positive and finite, got {self.lr}",
            ),
            (0 <= self.seed < 2**32, f"seed must be in [0, 2**32), got {self.seed}"),
        ]

    def _data_checks(self) -> list[tuple[bool, str]]:
        """(ok, message) for the validation slice and the subsample sizes."""
        return [
            (0 <= self.split_seed < 2**32, f"split_seed must be in [0, 2**32), got {self.split_seed}"),
            (
                0 < self.validation_fraction < 1,
                f"validation_fraction must be in (0, 1), got {self.validation_fraction}",
            ),
            (
                self.max_train_samples is None or self.max_train_samples > 0,
                f"max_train_samples must be a positive number of examples, got {self.max_train_samples}",
            ),
            (
                self.max_validation_samples is None or self.max_validation_samples > 0,
                f"max_validation_samples must be a positive number of examples, got {self.max_validation_samples}",
            ),
        ]

    def _evaluation_and_recipe_checks(self) -> list[tuple[bool, str]]:
        """(ok, message) for evaluation, logging, early stopping and the recipe."""
        return [
            (self.eval_batch_size > 0, f"eval_batch_size must be positive, got {self.eval_batch_size}"),
            (
                self.logging_steps is None or self.logging_steps > 0,
                f"logging_steps must be positive, got {self.logging_steps}",
            ),
            (
                self.early_stopping_patience is None or self.early_stopping_patience >= 0,
                f"early_stopping_patience must be >= 0 (0 or None: off), got {self.early_stopping_patience}",
            ),
            (self.recipe in RECIPES, f"recipe must be one of {RECIPES}, got {self.recipe!r}"),
            (self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {self.precision!r}"),
            (
                self.select_on in SELECT_ON_CHOICES,
                f"select_on must be one of {SELECT_ON_CHOICES}, got {self.select_on!r}",
            ),
            (self.eval_steps is None or self.eval_steps > 0, f"eval_steps must be positive, got {self.eval_steps}"),
            (
                self.length_bucket_batches is None or self.length_bucket_batches >= 1,
                f"length_bucket_batches must be >= 1, got {self.length_bucket_batches}",
            ),
            (
                self.recipe_version in range(1, RECIPE_VERSION + 1),
                f"recipe_version must be 1 to {RECIPE_VERSION}, got {self.recipe_version!r}",
            ),
        ]

    def to_dict(self) -> dict:
        """The resolved config as plain values (the method as its own dict), as saved in the record."""
        values = asdict(self)
        values["method"] = self.method.to_dict()
        return values

    @classmethod
    def from_record(cls, config: dict) -> TrainConfig:
        """The config of a saved run (its record's `config`), so that its run id can be recomputed."""
        values = {key: value for key, value in config.items() if key not in RESOLVED_KEYS}
        values.setdefault("recipe_version", 1)  # records from before recipe versions
        if values["recipe_version"] >= 2 and "precision_used" in config:
            values["precision"] = config["precision_used"]  # what `auto` resolved to on the machine that ran it
        rebuilt = cls(**values)
        if rebuilt.recipe_version == 1:  # its id hashed only the fields that existed when it ran
            rebuilt._recorded_keys = frozenset(values) - {"recipe_version"}
        return rebuilt

    def with_data(self, glue_dir=None, cache_dir=DATA_CACHE) -> TrainConfig:
        """This config with the fingerprint of the data it would train on (what makes its run id complete)."""
        return replace(self, data_fingerprint=data_fingerprint(self.task, glue_dir, cache_dir))

    @property
    def run_id(self) -> str:
        """Readable prefix + hash of the resolved config, e.g. `sst2-lora-r8-s0-1a2b3c4d5e`."""
        label = self.method.label().replace(" ", "").replace("=", "").replace("(", "-").replace(")", "")
        label = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in label)
        hashed = self._legacy_identity() if self.recipe_version == 1 else self._identity()
        return f"{self.task}-{label}-s{self.seed}-{config_hash(hashed)}"

    def _legacy_identity(self) -> dict:
        """Recipe version 1: the config as given (Python types included), so old records keep their ids."""
        hashed = self.to_dict()
        del hashed["recipe_version"], hashed["data_fingerprint"]
        for name, default in _unhashed_at_default(self.recipe_version).items():
            if hashed[name] == default:
                del hashed[name]
        recorded = getattr(self, "_recorded_keys", None)  # a record from before some fields existed
        return {key: value for key, value in hashed.items() if recorded is None or key in recorded}

    def _identity(self) -> dict:
        """Recipe version 2 on: canonical values, the precision actually used, and the data."""
        hashed = canonical_config(self.to_dict())
        for name, default in _unhashed_at_default(self.recipe_version).items():
            if hashed[name] == default:
                del hashed[name]
        with contextlib.suppress(ValueError):  # fp16 on a CPU: train() refuses it with this message
            hashed["precision"] = resolve_precision(self.precision, self.recipe)
        if self.data_fingerprint is None:
            del hashed["data_fingerprint"]  # an incomplete id (grids before the data is read); train() completes it
        return hashed


def _unhashed_at_default(recipe_version: int) -> dict:
    """{field: default} of the fields a record of this recipe version hashes only when not at their default.

    A field added after records were written declares `metadata={"added_in_recipe": N}`, N being the
    recipe version of those records: every id of version N or older leaves the field out while it has
    its default, so the records made before it existed keep their ids; a later version hashes it always.
    """
    return {f.name: f.default for f in fields(TrainConfig) if f.metadata.get("added_in_recipe", 0) >= recipe_version}


_FLOAT_FIELDS = ("lr", "epochs", "warmup_ratio", "weight_decay", "validation_fraction", "alpha", "lora_dropout")


def canonical_config(values: dict) -> dict:
    """One spelling per setting: floats as floats (2 and 2.0 epochs are one run), the model's
    canonical name (aliases of the packaged MiniLM are one model), LoRA's default targets as None."""
    values = {**values, "method": dict(values["method"])}
    for scope in (values, values["method"]):
        for name in _FLOAT_FIELDS:
            if isinstance(scope.get(name), (int, float)) and not isinstance(scope.get(name), bool):
                scope[name] = float(scope[name])
    values["model"] = canonical_model_name(values["model"])
    targets, defaults = values["method"].get("target_modules"), None
    if targets:
        defaults = default_target_modules(values["model"])
    if targets and defaults:
        resolved = {d for d in defaults for t in targets if d == t or d.endswith("." + t)}
        if resolved == set(defaults) and all(any(d == t or d.endswith("." + t) for d in defaults) for t in targets):
            values["method"]["target_modules"] = None
    return values


def _history(log_history: list[dict]) -> list[HistoryRow]:
    """The training loss log of Trainer's history (its evaluation and summary entries left out)."""
    rows = []
    for entry in log_history:
        if "loss" in entry and "eval_loss" not in entry:
            rows.append(
                HistoryRow(
                    step=entry.get("step"),
                    epoch=round(entry.get("epoch", 0.0), 4),
                    loss=entry["loss"],
                    lr=entry.get("learning_rate"),
                    grad_norm=entry.get("grad_norm"),
                )
            )
    return rows


def _eval_datasets(tokenized, config: TrainConfig):
    """The validation split, with `eval_train` the training split too and with `eval_test` the test
    split(s) (Trainer names their metrics by split)."""
    validation = _sorted_for_eval(tokenized["validation"], config.recipe)
    if not (config.eval_train or config.eval_test):
        return validation
    splits = ["train"] * config.eval_train + list(get_task(config.task).test_splits) * config.eval_test
    return {"validation": validation, **{name: _sorted_for_eval(tokenized[name], config.recipe) for name in splits}}


def _sorted_for_eval(dataset, recipe: str = "fast"):
    """Evaluation order does not change metrics; sorting by length removes almost all padding."""
    if recipe != "fast" or "length" not in dataset.column_names:
        return dataset
    order = np.argsort(-np.asarray(dataset["length"]), kind="stable")
    return dataset.select(order)


@dataclass(frozen=True)
class RunOptions:
    """How `train` runs a config and where it writes (its keyword arguments, but `lock`); none of it
    is part of the run's identity."""

    glue_dir: str | os.PathLike | None
    results_dir: Path
    cache_dir: str | os.PathLike
    force: bool
    quiet: bool
    save_adapter: bool
    announce: Callable[[str], None] | None
    report_to: str | list[str] | None


def train(
    config: TrainConfig,
    *,
    glue_dir: str | os.PathLike | None = None,
    results_dir: str | os.PathLike = RESULTS_DIR,
    cache_dir: str | os.PathLike = DATA_CACHE,
    force: bool = False,
    quiet: bool = False,
    save_adapter: bool = False,
    announce: Callable[[str], None] | None = None,
    lock: RunLock | bool = True,
    report_to: str | list[str] | None = None,
) -> RunRecord:
    """Train and evaluate one configuration; returns its run record (loading it if it exists).

    `announce` receives the trainable / total / percent line before training (default: print,
    unless quiet); a sweep passes its progress bar's `write` so the line does not break the bar.
    `lock`: True claims the run first (helpers/locks.py), waiting while another process trains it,
    and then returns the record that process wrote; a RunLock is one the caller already holds (a
    sweep worker); False trains without one. Under torchrun there is no lock: every process of the
    run would otherwise wait for the first.
    `report_to` names Trainer's live views (e.g. "tensorboard": logs in <results_dir>/tensorboard/<run_id>/);
    it changes nothing about the run, so it is not part of the config.
    """
    options = RunOptions(
        glue_dir=glue_dir,
        results_dir=Path(results_dir),
        cache_dir=cache_dir,
        force=force,
        quiet=quiet,
        save_adapter=save_adapter,
        announce=announce,
        report_to=report_to,
    )
    if config.data_fingerprint is None:  # the run id is complete only with the data's fingerprint
        config = config.with_data(glue_dir, cache_dir)
    reusable = not force and reusable_record(find_record(results_dir, config.run_id, warn=False), config, glue_dir)
    # A record to reuse needs no lock (and a read-only results folder stays readable).
    if lock is not True or reusable or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return _train_claimed(config, options)
    check_run(config, results_dir)  # a mistake, or a results folder that cannot take the lock, fails here
    with RunLock(results_dir, config.run_id):
        return _train_claimed(config, options)


def reusable_record(record: dict | None, config: TrainConfig, glue_dir) -> bool:
    """Whether a record found under a run id answers it: always from recipe version 2 on (the data's
    fingerprint is part of the id); older ids named no data, so the record's source must match."""
    if record is None:
        return False
    return config.recipe_version >= 2 or same_source(record.get("data", {}).get("source", "unknown"), glue_dir)


def _train_claimed(config: TrainConfig, options: RunOptions) -> RunRecord:
    """`train` once the run is claimed (or needs no claim): its stages, in order."""
    from transformers import set_seed

    existing = _record_to_reuse(config, options)
    if existing is not None:
        return existing
    check_run(config, options.results_dir)
    task = get_task(config.task)
    precision = resolve_precision(config.precision, config.recipe)
    wall_start = time.perf_counter()
    if options.quiet:
        _silence_libraries()
    set_seed(config.seed)

    splits, tokenizer, tokenized = _load_data(config, task, options)
    built = _build_model(config, task, options)
    collator = GlueCollator(tokenizer, pad_to_multiple_of=_pad_multiple(config))
    checkpoint_dir = options.results_dir / "checkpoints" / checkpoint_folder_name(config.run_id)
    check_free_space(options.results_dir, built.model)
    args = _training_arguments(config, task, precision, checkpoint_dir, len(tokenized["train"]), options)
    trainer = _make_trainer(config, task, built.model, args, tokenized, collator, options.quiet)
    breakdown = _measure_memory(trainer, collator, tokenized["train"], config, tokenizer.pad_token_id, precision)

    train_output = _fit(trainer, config, checkpoint_dir)
    throughput = _throughput(trainer, train_output, collator, built.model, config, len(tokenized["train"]))
    test_metrics, test_seconds = _score_test_splits(trainer, task, tokenized, config)
    memory = _memory_record(breakdown)
    record = _make_record(
        config,
        task=task,
        precision=precision,
        splits=splits,
        tokenized=tokenized,
        built=built,
        trainer=trainer,
        test_metrics=test_metrics,
        timing=_timing(throughput, trainer, test_seconds, wall_start),
        memory=memory,
    )
    return _save_record(record, trainer, checkpoint_dir, options)


def _record_to_reuse(config: TrainConfig, options: RunOptions) -> RunRecord | None:
    """The run's saved record, unless `force` or it was trained on other data; a run of an older
    recipe is refused (its record can be loaded, but this code would not train it the same way)."""
    run_id = config.run_id
    if not options.force and (existing := find_record(options.results_dir, run_id)) is not None:
        if reusable_record(existing, config, options.glue_dir):
            if not options.quiet:
                print(f"[{run_id}] record found in {options.results_dir}: not training again (force=True to redo).")
            return existing
        log.warning(
            "[%s] the record in %s was trained on %s, not %s: training again.",
            run_id,
            options.results_dir,
            existing.get("data", {}).get("source", "unknown"),
            source_name(options.glue_dir, config.task),
        )
    if config.recipe_version != RECIPE_VERSION:
        raise ValueError(
            f"[{run_id}] describes a run of recipe version {config.recipe_version}, but this code trains version "
            f"{RECIPE_VERSION} (helpers.training.RECIPE_VERSION): load its record, or train it anew without "
            "recipe_version."
        )
    return None


def _load_data(config: TrainConfig, task: TaskSpec, options: RunOptions) -> tuple:
    """The run's splits (checked against the fingerprint in its id), its tokenizer, and the tokenized splits."""
    splits = load_glue(
        task,
        glue_dir=options.glue_dir,
        select_on=config.select_on,
        validation_fraction=config.validation_fraction,
        split_seed=config.split_seed,
        max_train_samples=config.max_train_samples,
        max_validation_samples=config.max_validation_samples,
        cache_dir=options.cache_dir,
    )
    if splits.glue_info.fingerprint != config.data_fingerprint:
        raise ValueError(
            f"[{config.run_id}] the {task.display_name} data changed while the run was being set up "
            f"(fingerprint {splits.glue_info.fingerprint}, expected {config.data_fingerprint}): run it again."
        )
    with _naming_the_model(config.model):
        tokenizer = load_tokenizer(config.model)
    padding = "max_length" if config.recipe == "baseline" else False
    tokenized = tokenize_splits(
        splits, task, tokenizer, max_length=config.max_length, padding=padding, cache_dir=options.cache_dir
    )
    return splits, tokenizer, tokenized


@dataclass(frozen=True)
class _BuiltModel:
    """A run's model, ready to train, and what its record says about it."""

    model: torch.nn.Module
    architecture: dict
    params: RecordParams
    fast_cpu_kernels: bool  # the fast recipe on a CPU: helpers.speed's attention and dropout


def _build_model(config: TrainConfig, task: TaskSpec, options: RunOptions) -> _BuiltModel:
    """Load the model, apply the method, and count (and announce) what it trains."""
    check_runtime(config.method)
    with _naming_the_model(config.model):
        model = load_model(
            config.model, task, pooling=config.method.pooling, quantization_config=quantization_config(config.method)
        )
    architecture = describe_architecture(model)
    targets = resolve_target_modules(model, config.method) if config.method.method in LORA_METHODS else None
    fast_cpu_kernels = config.recipe == "fast" and cpu_only()
    if fast_cpu_kernels:
        use_fast_attention(model)
    model = prepare_model(model, config.method, seed=config.seed)
    if fast_cpu_kernels:
        use_fast_dropout(model)  # after the method, so its own dropout (LoRA's) is swapped too
    counts = count_parameters(model)
    params = RecordParams(**counts.to_dict())
    if config.method.method in LORA_METHODS:
        params.update(_lora_closed_form(model, architecture, targets, config, counts.trainable))
    announce = options.announce if options.announce is not None or options.quiet else print
    if announce is not None:
        announce(f"[{config.run_id}] {config.method.label()} on {task.display_name}: {counts}")
    return _BuiltModel(model, architecture, params, fast_cpu_kernels)


def _lora_closed_form(model, architecture: dict, targets, config: TrainConfig, trainable: int) -> dict:
    """LoRA's trainable count from the shapes, r*(d_in + d_out) per adapted layer + head, and its targets;
    a count that disagrees (an adapted layer missed, a shape misread) is logged."""
    closed_form = lora_closed_form(architecture, arch_spec(model), targets, config.method, head_parameter_count(model))
    if closed_form != trainable:
        log.warning(
            "[%s] LoRA closed form r*(d_in + d_out) + head gives %s trainable parameters, but %s are counted "
            "(targets %s).",
            config.run_id,
            f"{closed_form:,}",
            f"{trainable:,}",
            targets,
        )
    return {"lora_closed_form": closed_form, "lora_targets": targets}


def _on_gpu_fast(config: TrainConfig) -> bool:
    return config.recipe == "fast" and torch.cuda.is_available()


def _bucketed_compile(config: TrainConfig) -> bool:
    """Compiled with the fast recipe: a few fixed lengths, one compiled graph each (helpers/speed.py)."""
    return config.compile and config.recipe == "fast"


def _pad_multiple(config: TrainConfig) -> int | None:
    """What the collator rounds batch lengths up to: the compiled buckets, or a GPU-friendly multiple."""
    if _bucketed_compile(config):
        return COMPILE_PAD_MULTIPLE
    return GPU_PAD_MULTIPLE if _on_gpu_fast(config) else None


@contextlib.contextmanager
def _speed_kernels(config: TrainConfig):
    """Around training and test scoring: the fast recipe's GPU attention kernels, and the compiled bucket shapes."""
    attention_kernels = sdpa_without_cudnn if _on_gpu_fast(config) else contextlib.nullcontext
    compiled_shapes = static_bucket_shapes if _bucketed_compile(config) else contextlib.nullcontext
    with attention_kernels(), compiled_shapes():
        yield


def _training_arguments(
    config: TrainConfig, task: TaskSpec, precision: str, checkpoint_dir: Path, train_size: int, options: RunOptions
):
    """Trainer's arguments for the run: schedule, evaluation and checkpoints, selection, logging, precision."""
    from transformers import TrainingArguments

    steps_per_epoch = max(1, math.ceil(train_size / (config.batch_size * config.grad_accum)))
    # Every epoch always; with eval_steps also every N steps (the epoch ends come from a callback).
    strategy = "steps" if config.eval_steps else "epoch"
    return TrainingArguments(
        output_dir=str(checkpoint_dir),
        learning_rate=config.lr,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.eval_batch_size if config.recipe == "fast" else config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        num_train_epochs=config.epochs,
        lr_scheduler_type="linear",
        # transformers reads an int as a number of steps and a float < 1 as a ratio of the total steps
        warmup_steps=config.warmup_steps if config.warmup_steps is not None else config.warmup_ratio,
        weight_decay=config.weight_decay,
        eval_strategy=strategy,
        save_strategy=strategy,
        eval_steps=config.eval_steps,
        save_steps=config.eval_steps,
        save_total_limit=1,
        save_only_model=True,
        load_best_model_at_end=True,
        metric_for_best_model=(
            f"validation_{task.main_metric}" if config.eval_train or config.eval_test else task.main_metric
        ),
        greater_is_better=True,
        logging_steps=config.logging_steps or max(1, steps_per_epoch // 20),  # default: about 20 per epoch
        seed=config.seed,
        data_seed=config.seed,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=cpu_only(),  # also what makes torchrun on CPU use DDP with gloo
        train_sampling_strategy="random",  # the fast recipe groups by length itself (helpers/batching.py)
        remove_unused_columns=False,
        report_to=_live_view(options.report_to, options.results_dir, config.run_id),
        disable_tqdm=options.quiet,
        log_level="error" if options.quiet else "passive",
        dataloader_pin_memory=torch.cuda.is_available(),
        torch_compile=config.compile,
    )


def _make_trainer(config: TrainConfig, task: TaskSpec, model, args, tokenized, collator, quiet: bool):
    """The run's GlueTrainer, with evaluation at epoch ends (with eval_steps) and early stopping if asked."""
    from transformers import EarlyStoppingCallback, PrinterCallback

    from helpers.trainer import EvaluateAtEpochEnd, GlueTrainer

    callbacks = [EvaluateAtEpochEnd()] if config.eval_steps else []
    if config.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    trainer = GlueTrainer(
        model=model,
        args=args,
        train_dataset=tokenized["train"],
        eval_dataset=_eval_datasets(tokenized, config),
        data_collator=collator,
        compute_metrics=lambda prediction: compute_metrics(task, _logits(prediction.predictions), prediction.label_ids),
        callbacks=callbacks,
        task=task,
        fast_eval=config.recipe == "fast",
        length_grouping=config.recipe == "fast" and config.length_grouping,
        bucket_batches=config.length_bucket_batches,
    )
    if quiet:
        trainer.remove_callback(PrinterCallback)  # it prints every log line to stdout without tqdm
    return trainer


def _measure_memory(trainer, collator, train_dataset, config: TrainConfig, pad_id: int, precision: str) -> dict:
    """Memory breakdown of one training step on a fixed-shape batch (batch_size x max_length), before training."""
    from helpers.memory import memory_breakdown

    rows = [{k: v for k, v in train_dataset[i].items()} for i in range(min(config.batch_size, len(train_dataset)))]
    probe = _pad_probe(collator(rows), config.max_length, pad_id)
    breakdown = memory_breakdown(trainer.model, probe, torch.bfloat16 if precision == "bf16" else None)
    collator.reset()  # the probe's tokens are not training tokens
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    return breakdown


def _fit(trainer, config: TrainConfig, checkpoint_dir: Path):
    """Train (Trainer loads the best checkpoint at the end); a failed or interrupted run leaves no checkpoints."""
    try:
        with _speed_kernels(config):
            return trainer.train()
    except BaseException:
        if trainer.is_world_process_zero():
            remove_checkpoints(checkpoint_dir)
        raise


@dataclass(frozen=True)
class _Throughput:
    """What training did, counted as it ends (test scoring's batches go through the collator too)."""

    train_seconds: float  # Trainer's runtime less evaluation and checkpoint saving
    samples_seen: float
    real_tokens: int
    padded_tokens: int
    useful_flops: float  # helpers.flops: real tokens only
    computed_flops: float  # padding included (what the hardware did)


def _throughput(trainer, train_output, collator, model, config: TrainConfig, train_size: int) -> _Throughput:
    real_tokens, padded_tokens, real_sq, padded_sq = _sum_over_processes(*collator.counters())
    shape = encoder_shape(model)
    # full: weight gradients too; head: no backward through the frozen encoder at all (the registry row says).
    backward = REGISTRY[config.method.method].backward
    return _Throughput(
        train_seconds=train_output.metrics["train_runtime"] - trainer.eval_seconds - trainer.save_seconds,
        samples_seen=train_size * float(train_output.metrics.get("epoch", config.epochs)),
        real_tokens=real_tokens,
        padded_tokens=padded_tokens,
        useful_flops=training_flops(shape, real_tokens, real_sq, backward),
        computed_flops=training_flops(shape, padded_tokens, padded_sq, backward),
    )


def _score_test_splits(trainer, task: TaskSpec, tokenized, config: TrainConfig) -> tuple[dict, float]:
    """The selected (best) checkpoint's metrics on each test split, and the seconds scoring took."""
    start = time.perf_counter()
    test_metrics = {}
    with _speed_kernels(config):
        for split in task.test_splits:
            prediction = trainer.predict(_sorted_for_eval(tokenized[split], config.recipe), metric_key_prefix="test")
            test_metrics[split] = compute_metrics(task, _logits(prediction.predictions), prediction.label_ids)
    return test_metrics, time.perf_counter() - start


def _memory_record(breakdown: dict) -> RecordMemory:
    """The peak (CUDA's high-water mark on a GPU, else the breakdown's total), the breakdown, the process's peak RSS."""
    from helpers.memory import process_peak_rss_bytes

    if torch.cuda.is_available():
        peak_bytes, kind = torch.cuda.max_memory_allocated(), "cuda_max_allocated"
    else:
        peak_bytes, kind = breakdown["total_bytes"], "cpu_breakdown_total"
    return RecordMemory(
        peak_bytes=peak_bytes, kind=kind, breakdown=breakdown, process_peak_rss_bytes=process_peak_rss_bytes()
    )


def _timing(throughput: _Throughput, trainer, test_seconds: float, wall_start: float) -> RecordTiming:
    seconds = throughput.train_seconds
    return RecordTiming(
        train_seconds=round(seconds, 3),
        train_samples_per_second=round(throughput.samples_seen / seconds, 3),
        train_tokens_per_second=round(throughput.real_tokens / seconds, 3),
        padding_fraction=round(1 - throughput.real_tokens / max(1, throughput.padded_tokens), 4),
        eval_seconds=round(trainer.eval_seconds + test_seconds, 3),
        checkpoint_seconds=round(trainer.save_seconds, 3),
        model_flops_per_second=round(throughput.useful_flops / seconds),
        computed_flops_per_second=round(throughput.computed_flops / seconds),
        wall_seconds=round(time.perf_counter() - wall_start, 3),
        steps=trainer.state.global_step,
        samples_seen=int(throughput.samples_seen),
        real_tokens_seen=throughput.real_tokens,
    )


def _make_record(
    config: TrainConfig,
    *,
    task: TaskSpec,
    precision: str,
    splits,
    tokenized,
    built: _BuiltModel,
    trainer,
    test_metrics: dict,
    timing: RecordTiming,
    memory: RecordMemory,
) -> RunRecord:
    """The run's record: resolved config, data, model, training history, evaluations, test scores and costs."""
    resolved = {"precision_used": precision, "fast_cpu_kernels": built.fast_cpu_kernels}
    return RunRecord(
        run_id=config.run_id,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        config=RecordConfig(
            **config.to_dict(), **resolved, eval_batch_size_used=trainer.args.per_device_eval_batch_size
        ),
        data=RecordData(**splits.glue_info.to_dict(), token_lengths=_token_lengths(tokenized)),
        model_info=built.architecture,
        versions={**library_versions(), "world_size": trainer.args.world_size},
        params=built.params,
        trainable_names=trainable_parameter_names(built.model),
        history=_history(trainer.state.log_history),
        evals=trainer.evals,
        best=_best_eval([e for e in trainer.evals if e["split"] == "validation"], task.main_metric),
        test=RecordTest(split=task.main_test_split, metrics=test_metrics[task.main_test_split], splits=test_metrics),
        # The floor every run must beat: always predicting the most frequent training label.
        majority_class={
            split: majority_class_metrics(task, splits["train"]["label"], splits[split]["label"])
            for split in ("validation", *task.test_splits)
        },
        timing=timing,
        memory=memory,
    )


def _save_record(record: RunRecord, trainer, checkpoint_dir: Path, options: RunOptions) -> RunRecord:
    """On the main process: remove the checkpoints, save the adapter (if asked) and the record, print the result."""
    if not trainer.is_world_process_zero():
        return record
    remove_checkpoints(checkpoint_dir)  # first: the space they free may be what the record needs
    try:
        if options.save_adapter:
            folder = options.results_dir / "adapters" / record["run_id"]
            record["adapter_path"] = str(save_trained_weights(trainer.model, folder))
        record = load_record(write_record(record, options.results_dir))  # as saved: strict JSON, non-finite as null
    except Exception as error:
        if not is_storage_error(error):
            raise
        raise StorageError(_unsaved_record_message(record, options.results_dir, error)) from error
    if not options.quiet:
        test = ", ".join(f"{k}={v:.4f}" if v is not None else f"{k}=null" for k, v in record["test"]["metrics"].items())
        speed = record["timing"]["train_samples_per_second"]
        print(f"[{record['run_id']}] test ({record['test']['split']}): {test}; {speed:.1f} train samples/s")
    return record


def check_run(config: TrainConfig, results_dir: str | os.PathLike | None = None) -> None:
    """What can be checked before loading data or training: the model exists and takes `max_length`
    tokens (plus a prompt method's virtual tokens); the machine can train the method (QLoRA: CUDA);
    the results folder is writable."""
    check_runtime(config.method)
    with _naming_the_model(config.model):
        limit = max_input_tokens(config.model)
    virtual = config.method.num_virtual_tokens if REGISTRY[config.method.method].input_tokens else 0
    if limit is not None and config.max_length + virtual > limit:
        taken = f" ({virtual} of them taken by {config.method.method}'s virtual tokens)" if virtual else ""
        raise ValueError(
            f"max_length {config.max_length} is more than the model {config.model!r} takes: "
            f"it has {limit} positions{taken}. "
            f"Use a max_length of at most {limit - virtual}."
        )
    if results_dir is not None:
        prepare_results_dir(results_dir)


def check_free_space(results_dir: Path, model) -> None:
    """Checkpoints (the best and the latest) must fit on the results folder's disk: fail before training, not after."""
    weights = (
        p for p in model.parameters() if p.requires_grad or not hasattr(model, "peft_config")
    )  # peft saves the adapter only
    needed = 2 * sum(p.numel() * p.element_size() for p in weights) + 2**20
    free = shutil.disk_usage(results_dir).free
    if free < needed:
        raise StorageError(
            f"Only {free / 2**20:,.0f} MiB free on the disk of {results_dir}; this run's checkpoints need about "
            f"{needed / 2**20:,.0f} MiB. Free some space or pass another --results-dir. Nothing was trained."
        )


def remove_checkpoints(checkpoint_dir: Path) -> None:
    """Delete a run's checkpoints, and the `checkpoints/` folder once no run has any left there."""
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    with contextlib.suppress(OSError):  # not empty: another run is training into it
        checkpoint_dir.parent.rmdir()


def _unsaved_record_message(record: dict, results_dir: Path, error: Exception) -> str:
    """Explain a record that could not be written, after keeping a copy elsewhere if possible."""
    reason = getattr(error, "strerror", None) or f"{type(error).__name__}: {error}"
    message = f"Training finished but its record could not be written to {results_dir}: {reason}."
    try:
        copy = write_record(record, UNSAVED_RECORDS_DIR)
    except OSError:
        return message + " No copy could be written either; the run has to be trained again once there is space."
    return (
        message
        + f" A copy was saved as {copy}: move it into {results_dir} once there is space, and the run counts as done."
    )


def checkpoint_folder_name(run_id: str) -> str:
    """`<run_id>-<host>-<pid>`: checkpoints are per process, so a process that took over a stale run
    never writes into (or deletes) the folder of one still running. Under torchrun every process of
    the run must read the same folder, so there it is `<run_id>-ddp-<master address>-<master port>`."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        name = f"{run_id}-ddp-{os.environ.get('MASTER_ADDR', 'localhost')}-{os.environ.get('MASTER_PORT', '')}"
    else:
        name = f"{run_id}-{socket.gethostname()}-{os.getpid()}"
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name)


@contextlib.contextmanager
def _naming_the_model(name: str):
    """from_pretrained's OSError does not always say which model it could not load (offline, it never does)."""
    try:
        yield
    except OSError as error:
        raise OSError(
            f"Could not load the model {name!r}: {error} The model name or path must exist on the Hugging Face Hub "
            "(in the local cache when offline) or on disk."
        ) from error


def _sum_over_processes(*counts: int) -> list[int]:
    """Token counters summed over DDP processes (each process only sees its own batches)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return list(counts)
    tensor = torch.tensor(counts, dtype=torch.long)
    dist.all_reduce(tensor)
    return tensor.tolist()


def _live_view(report_to: str | list[str] | None, results_dir: Path, run_id: str) -> str | list[str]:
    """Trainer's report_to; TensorBoard logs go beside the records (the checkpoint folder is deleted after the run)."""
    if not report_to or report_to == "none":
        return "none"
    names = report_to.split(",") if isinstance(report_to, str) else list(report_to)
    chosen_by_user = "TENSORBOARD_LOGGING_DIR" in os.environ and "PEFT_GLUE_TENSORBOARD_AUTO" not in os.environ
    if ("tensorboard" in names or "all" in names) and not chosen_by_user:
        os.environ.update(
            TENSORBOARD_LOGGING_DIR=str(Path(results_dir) / "tensorboard" / run_id), PEFT_GLUE_TENSORBOARD_AUTO="1"
        )
    return names


def _silence_libraries() -> None:
    """Quiet mode: no progress bars or load reports from datasets/transformers."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def _logits(predictions):
    return predictions[0] if isinstance(predictions, (tuple, list)) else predictions


def _pad_probe(batch: dict, length: int, pad_id: int) -> dict:
    """Right-pad a collated batch to `length` so memory is measured at a fixed shape for every method."""
    current = batch["input_ids"].shape[1]
    if current >= length:
        return {k: v[:, :length] if v.dim() == 2 else v for k, v in batch.items()}
    extra = length - current
    padded = {}
    for key, value in batch.items():
        if value.dim() == 2:
            fill = pad_id if key == "input_ids" else 0
            padded[key] = torch.nn.functional.pad(value, (0, extra), value=fill)
        else:
            padded[key] = value
    # Count every position as real so the measurement does not depend on the batch's padding.
    padded["attention_mask"] = torch.ones_like(padded["attention_mask"])
    return padded


def _token_lengths(tokenized) -> dict:
    """Mean and median tokens per example of each split (after truncation): SST-2's train holds
    phrases and its dev set whole sentences, which this makes visible in every record."""
    lengths = {}
    for split, dataset in tokenized.items():
        values = np.asarray(dataset["length"]) if "length" in dataset.column_names and len(dataset) else None
        if values is not None:
            lengths[split] = {"mean": round(float(values.mean()), 2), "median": float(np.median(values))}
    return lengths


def _best_eval(evals: list[dict], metric: str) -> dict:
    if not evals:
        return {}
    best = max(evals, key=lambda e: e["metrics"].get(metric, -math.inf))  # first of the ties, like Trainer
    return {"step": best["step"], "epoch": best["epoch"], "metric": metric, "value": best["metrics"].get(metric)}


def save_trained_weights(model, folder: Path) -> Path:
    """Save what the method trained: the peft adapter (with the head), or the trainable tensors."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "peft_config"):
        model.save_pretrained(str(folder))
    else:
        tensors = {name: p.detach().cpu().contiguous() for name, p in model.named_parameters() if p.requires_grad}
        save_file(tensors, str(folder / "trainable.safetensors"))
    return folder
