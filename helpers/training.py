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
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from helpers.batching import ShuffledLengthBuckets
from helpers.data import DATA_CACHE, SELECT_ON_CHOICES, load_glue, source_name
from helpers.device import cpu_only, library_versions, resolve_precision
from helpers.flops import encoder_shape, training_flops
from helpers.methods import (
    LORA_METHODS,
    MethodConfig,
    count_parameters,
    head_parameter_count,
    lora_closed_form,
    prepare_model,
    quantization_config,
    resolve_target_modules,
    trainable_parameter_names,
)
from helpers.metrics import compute_metrics, majority_class_metrics
from helpers.models import DEFAULT_MODEL, arch_spec, describe_architecture, load_model, load_tokenizer
from helpers.records import config_hash, find_record, write_record
from helpers.speed import GPU_PAD_MULTIPLE, sdpa_without_cudnn, use_fast_attention, use_fast_dropout
from helpers.tasks import get_task
from helpers.tokenization import GlueCollator, tokenize_splits

log = logging.getLogger(__name__)

RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"
RECIPES = ("fast", "baseline")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
UNHASHED_WHEN_NONE = ("warmup_steps", "length_bucket_batches")

# Default peak learning rates, from short sweeps on SST-2 and MRPC with the packaged MiniLM
# (notebook 05 sweeps them properly): PEFT methods train few parameters from a good starting
# point and want much larger steps than full fine-tuning.
DEFAULT_LR = {
    "full": 5e-5,
    "head": 5e-3,
    "bitfit": 3e-3,
    "lora": 3e-3,
    "dora": 3e-3,
    "qlora": 3e-3,
    "ia3": 1e-2,
    "prefix": 1e-2,
    "prompt": 3e-2,
    "ptuning": 1e-2,
}


@dataclass
class TrainConfig:
    """Everything that decides a run's result; its resolved form is saved in the run record."""

    task: str = "sst2"
    model: str = DEFAULT_MODEL
    method: MethodConfig = field(default_factory=MethodConfig)
    lr: float | None = None  # None: the method's default (DEFAULT_LR)
    batch_size: int = 32
    epochs: float = 3.0
    warmup_ratio: float = 0.06  # fraction of steps with linearly rising learning rate
    warmup_steps: int | None = None  # a number of warmup steps instead of the ratio (overrides it)
    weight_decay: float = 0.01
    grad_accum: int = 1
    max_length: int = 128
    seed: int = 0
    # data
    select_on: str = "train_slice"
    validation_fraction: float = 0.1
    split_seed: int = 42
    max_train_samples: int | None = None
    max_validation_samples: int | None = None
    # evaluation and logging
    eval_steps: int | None = None  # N: also evaluate every N steps; the validation split is evaluated every epoch regardless
    logging_steps: int | None = None  # None: about 20 loss points per epoch
    early_stopping_patience: int | None = None  # evaluations without improvement before stopping
    eval_batch_size: int = 128
    # speed
    recipe: str = "fast"  # "fast": dynamic padding, length-grouped batches; "baseline": pad to max_length
    precision: str = "auto"  # auto: bf16/fp16 on GPUs, bf16 autocast on CPUs with bf16 instructions
    compile: bool = False  # torch.compile the model (slower here: see README "Throughput")
    length_grouping: bool = True  # fast recipe: batches of similar length (less padding); False: random batches
    length_bucket_batches: int | None = None  # batches per length bucket (None: 50); fewer: more random batches, more padding

    def __post_init__(self):
        if isinstance(self.method, dict):
            self.method = MethodConfig(**self.method)
        self.task = get_task(self.task).name
        checks = [
            (self.batch_size > 0, f"batch_size must be positive, got {self.batch_size}"),
            (self.epochs > 0, f"epochs must be positive, got {self.epochs}"),
            (0 <= self.warmup_ratio < 1, f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}"),
            (self.warmup_steps is None or (isinstance(self.warmup_steps, int) and not isinstance(self.warmup_steps, bool) and self.warmup_steps >= 0),
             f"warmup_steps must be a whole number of steps >= 0 (or None to use warmup_ratio), got {self.warmup_steps!r}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (self.grad_accum >= 1, f"grad_accum must be >= 1, got {self.grad_accum}"),
            (self.max_length > 0, f"max_length must be positive, got {self.max_length}"),
            (self.lr is None or self.lr > 0, f"lr must be positive, got {self.lr}"),
            (self.recipe in RECIPES, f"recipe must be one of {RECIPES}, got {self.recipe!r}"),
            (self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {self.precision!r}"),
            (self.select_on in SELECT_ON_CHOICES, f"select_on must be one of {SELECT_ON_CHOICES}, got {self.select_on!r}"),
            (self.eval_steps is None or self.eval_steps > 0, f"eval_steps must be positive, got {self.eval_steps}"),
            (self.length_bucket_batches is None or self.length_bucket_batches >= 1, f"length_bucket_batches must be >= 1, got {self.length_bucket_batches}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message + ".")
        if self.lr is None:
            self.lr = DEFAULT_LR[self.method.method]

    def to_dict(self) -> dict:
        """The resolved config as plain values (the method as its own dict), as saved in the record."""
        values = asdict(self)
        values["method"] = self.method.to_dict()
        return values

    @property
    def run_id(self) -> str:
        """Readable prefix + hash of the resolved config, e.g. `sst2-lora-r8-s0-1a2b3c4d5e`."""
        label = self.method.label().replace(" ", "").replace("=", "").replace("(", "-").replace(")", "")
        label = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in label)
        hashed = self.to_dict()
        # Fields added after records were written hash only when set, so those records keep their ids.
        for name in UNHASHED_WHEN_NONE:
            if hashed[name] is None:
                del hashed[name]
        return f"{self.task}-{label}-s{self.seed}-{config_hash(hashed)}"


def _make_trainer_class():
    from transformers import Trainer

    class GlueTrainer(Trainer):
        """Trainer that times evaluation and checkpoint saving apart from training, and keeps every
        evaluation's metrics with its step, epoch and split."""

        def __init__(self, *args, task=None, fast_eval=True, length_grouping=False, bucket_batches=None, **kwargs):
            super().__init__(*args, **kwargs)
            self.task = task
            self.fast_eval = fast_eval
            self.length_grouping = length_grouping
            self.bucket_batches = bucket_batches or ShuffledLengthBuckets.DEFAULT_BUCKET_BATCHES
            self.eval_seconds = 0.0
            self.save_seconds = 0.0
            self.evals: list[dict] = []

        def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
            start = time.perf_counter()
            counters = self.data_collator.counters()
            metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
            self.data_collator.restore(counters)  # evaluation batches are not training tokens
            self.eval_seconds += time.perf_counter() - start
            prefix = f"{metric_key_prefix}_"
            self.evals.append({
                "step": self.state.global_step,
                "epoch": round(self.state.epoch or 0.0, 4),
                "split": "validation",
                "metrics": {k[len(prefix):]: v for k, v in metrics.items() if k.startswith(prefix) and k[len(prefix):] in self.task.metrics},
                "loss": metrics.get(f"{prefix}loss"),
            })
            return metrics

        def _get_train_sampler(self, train_dataset=None):
            dataset = train_dataset if train_dataset is not None else self.train_dataset
            if not self.length_grouping:
                return super()._get_train_sampler(train_dataset)
            batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
            return ShuffledLengthBuckets(dataset["length"], batch, bucket_batches=self.bucket_batches, seed=self.args.seed)

        def save_model(self, output_dir=None, _internal_call=False):
            start = time.perf_counter()
            super().save_model(output_dir, _internal_call)
            self.save_seconds += time.perf_counter() - start

        def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
            if not self.fast_eval:  # the baseline recipe keeps Trainer's own (torch.no_grad)
                return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)
            with torch.inference_mode():
                return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)

    return GlueTrainer


def _make_epoch_evaluation_callback():
    from transformers import TrainerCallback

    class EvaluateAtEpochEnd(TrainerCallback):
        """With `eval_steps`, Trainer evaluates every N steps only; this adds the end of every epoch.

        It also saves there, so that load_best_model_at_end can load a best model found at an epoch
        end; a step that was just evaluated (N divides the epoch, or the last step) is not redone.
        """

        def __init__(self):
            self.last_evaluated_step = -1

        def on_evaluate(self, args, state, control, **kwargs):
            self.last_evaluated_step = state.global_step

        def on_epoch_end(self, args, state, control, **kwargs):
            if state.global_step != self.last_evaluated_step:
                control.should_evaluate = True
                control.should_save = True
            return control

    return EvaluateAtEpochEnd()


def _history(log_history: list[dict]) -> list[dict]:
    rows = []
    for entry in log_history:
        if "loss" in entry and "eval_loss" not in entry:
            rows.append({
                "step": entry.get("step"),
                "epoch": round(entry.get("epoch", 0.0), 4),
                "loss": entry["loss"],
                "lr": entry.get("learning_rate"),
                "grad_norm": entry.get("grad_norm"),
            })
    return rows


def _sorted_for_eval(dataset, recipe: str = "fast"):
    """Evaluation order does not change metrics; sorting by length removes almost all padding."""
    if recipe != "fast" or "length" not in dataset.column_names:
        return dataset
    order = np.argsort(-np.asarray(dataset["length"]), kind="stable")
    return dataset.select(order)


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
    report_to: str | list[str] | None = None,
) -> dict:
    """Train and evaluate one configuration; returns its run record (loading it if it exists).

    `announce` receives the trainable / total / percent line before training (default: print,
    unless quiet); a sweep passes its progress bar's `write` so the line does not break the bar.
    `report_to` names Trainer's live views (e.g. "tensorboard": logs in <results_dir>/tensorboard/<run_id>/);
    it changes nothing about the run, so it is not part of the config.
    """
    from transformers import EarlyStoppingCallback, PrinterCallback, TrainingArguments, set_seed

    results_dir = Path(results_dir)
    run_id = config.run_id
    if not force and (existing := find_record(results_dir, run_id)) is not None:
        existing_source = existing.get("data", {}).get("source", "unknown")  # older or hand-edited records may lack it
        if existing_source == source_name(glue_dir):
            if not quiet:
                print(f"[{run_id}] record found in {results_dir}: not training again (force=True to redo).")
            return existing
        log.warning("[%s] the record in %s was trained on %s, not %s: training again.", run_id, results_dir, existing_source, source_name(glue_dir))

    task = get_task(config.task)
    precision = resolve_precision(config.precision, config.recipe)
    wall_start = time.perf_counter()
    if quiet:
        _silence_libraries()
    set_seed(config.seed)

    # Data
    splits = load_glue(
        task,
        glue_dir=glue_dir,
        select_on=config.select_on,
        validation_fraction=config.validation_fraction,
        split_seed=config.split_seed,
        max_train_samples=config.max_train_samples,
        max_validation_samples=config.max_validation_samples,
        cache_dir=cache_dir,
    )
    with _naming_the_model(config.model):
        tokenizer = load_tokenizer(config.model)
    padding = "max_length" if config.recipe == "baseline" else False
    tokenized = tokenize_splits(splits, task, tokenizer, max_length=config.max_length, padding=padding, cache_dir=cache_dir)

    # Model and method
    with _naming_the_model(config.model):
        model = load_model(config.model, task, pooling=config.method.pooling, quantization_config=quantization_config(config.method))
    architecture = describe_architecture(model)
    targets = resolve_target_modules(model, config.method) if config.method.method in LORA_METHODS else None
    fast_cpu_kernels = config.recipe == "fast" and cpu_only()
    if fast_cpu_kernels:
        use_fast_attention(model)
    model = prepare_model(model, config.method, seed=config.seed)
    if fast_cpu_kernels:
        use_fast_dropout(model)  # after the method, so its own dropout (LoRA's) is swapped too
    counts = count_parameters(model)
    params = counts.to_dict()
    if config.method.method in LORA_METHODS:
        params["lora_closed_form"] = lora_closed_form(architecture, arch_spec(model), targets, config.method, head_parameter_count(model))
        params["lora_targets"] = targets
        if params["lora_closed_form"] != counts.trainable:  # an adapted layer missed or a shape misread
            log.warning("[%s] LoRA closed form r*(d_in + d_out) + head gives %s trainable parameters, but %s are counted (targets %s).",
                        run_id, f"{params['lora_closed_form']:,}", f"{counts.trainable:,}", targets)
    if announce is None and not quiet:
        announce = print
    if announce is not None:
        announce(f"[{run_id}] {config.method.label()} on {task.display_name}: {counts}")

    on_gpu_fast = config.recipe == "fast" and torch.cuda.is_available()
    collator = GlueCollator(tokenizer, pad_to_multiple_of=GPU_PAD_MULTIPLE if on_gpu_fast else None)
    train_dataset = tokenized["train"]
    steps_per_epoch = max(1, math.ceil(len(train_dataset) / (config.batch_size * config.grad_accum)))
    logging_steps = config.logging_steps or max(1, steps_per_epoch // 20)
    # Every epoch always; with eval_steps also every N steps (the epoch ends come from a callback).
    strategy = "steps" if config.eval_steps else "epoch"
    checkpoint_dir = results_dir / "checkpoints" / run_id
    args = TrainingArguments(
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
        metric_for_best_model=task.main_metric,
        greater_is_better=True,
        logging_steps=logging_steps,
        seed=config.seed,
        data_seed=config.seed,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=cpu_only(),  # also what makes torchrun on CPU use DDP with gloo
        train_sampling_strategy="random",  # the fast recipe groups by length itself (helpers/batching.py)
        remove_unused_columns=False,
        report_to=_live_view(report_to, results_dir, run_id),
        disable_tqdm=quiet,
        log_level="error" if quiet else "passive",
        dataloader_pin_memory=torch.cuda.is_available(),
        torch_compile=config.compile,
    )
    callbacks = [_make_epoch_evaluation_callback()] if config.eval_steps else []
    if config.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    trainer = _make_trainer_class()(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=_sorted_for_eval(tokenized["validation"], config.recipe),
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

    # Memory breakdown on one fixed-shape batch (batch_size x max_length), before training.
    from helpers.memory import memory_breakdown, process_peak_rss_bytes

    probe = collator([{k: v for k, v in train_dataset[i].items()} for i in range(min(config.batch_size, len(train_dataset)))])
    probe = _pad_probe(probe, config.max_length, tokenizer.pad_token_id)
    breakdown = memory_breakdown(trainer.model, probe, torch.bfloat16 if precision == "bf16" else None)
    collator.reset()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()

    attention_kernels = sdpa_without_cudnn if on_gpu_fast else contextlib.nullcontext
    with attention_kernels():
        train_output = trainer.train()
    train_seconds = train_output.metrics["train_runtime"] - trainer.eval_seconds - trainer.save_seconds
    real_tokens, padded_tokens, real_sq, padded_sq = _sum_over_processes(*collator.counters())
    shape = encoder_shape(model)
    # full: weight gradients too; head: no backward through the frozen encoder at all.
    backward = {"full": "weights", "head": "none"}.get(config.method.method, "inputs")
    useful_flops = training_flops(shape, real_tokens, real_sq, backward)
    computed_flops = training_flops(shape, padded_tokens, padded_sq, backward)

    # The best checkpoint (by the validation main metric) is loaded; score it once on each test split.
    test_start = time.perf_counter()
    test_metrics = {}
    with attention_kernels():
        for split in task.test_splits:
            prediction = trainer.predict(_sorted_for_eval(tokenized[split], config.recipe), metric_key_prefix="test")
            test_metrics[split] = compute_metrics(task, _logits(prediction.predictions), prediction.label_ids)
    test_seconds = time.perf_counter() - test_start

    if torch.cuda.is_available():
        memory = {"peak_bytes": torch.cuda.max_memory_allocated(), "kind": "cuda_max_allocated"}
    else:
        memory = {"peak_bytes": breakdown["total_bytes"], "kind": "cpu_breakdown_total"}
    memory.update({"breakdown": breakdown, "process_peak_rss_bytes": process_peak_rss_bytes()})

    best_eval = _best_eval(trainer.evals, task.main_metric)
    samples_seen = len(train_dataset) * float(train_output.metrics.get("epoch", config.epochs))
    record = {
        "run_id": run_id,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": {**config.to_dict(), "precision_used": precision, "fast_cpu_kernels": fast_cpu_kernels, "lr": config.lr,
                   "eval_batch_size_used": args.per_device_eval_batch_size},
        "data": splits.glue_info.to_dict(),
        "model_info": architecture,
        "versions": {**library_versions(), "world_size": trainer.args.world_size},
        "params": params,
        "trainable_names": trainable_parameter_names(model),
        "history": _history(trainer.state.log_history),
        "evals": trainer.evals,
        "best": best_eval,
        "test": {"split": task.main_test_split, "metrics": test_metrics[task.main_test_split], "splits": test_metrics},
        # The floor every run must beat: always predicting the most frequent training label.
        "majority_class": {split: majority_class_metrics(task, splits["train"]["label"], splits[split]["label"])
                           for split in ("validation", *task.test_splits)},
        "timing": {
            "train_seconds": round(train_seconds, 3),
            "train_samples_per_second": round(samples_seen / train_seconds, 3),
            "train_tokens_per_second": round(real_tokens / train_seconds, 3),
            "padding_fraction": round(1 - real_tokens / max(1, padded_tokens), 4),
            "eval_seconds": round(trainer.eval_seconds + test_seconds, 3),
            "checkpoint_seconds": round(trainer.save_seconds, 3),
            # helpers.flops: useful = real tokens only; computed = padding included (what the hardware did)
            "model_flops_per_second": round(useful_flops / train_seconds),
            "computed_flops_per_second": round(computed_flops / train_seconds),
            "wall_seconds": round(time.perf_counter() - wall_start, 3),
            "steps": trainer.state.global_step,
            "samples_seen": int(samples_seen),
            "real_tokens_seen": real_tokens,
        },
        "memory": memory,
    }
    if trainer.is_world_process_zero():
        if save_adapter:
            record["adapter_path"] = str(save_trained_weights(trainer.model, results_dir / "adapters" / run_id))
        write_record(record, results_dir)
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
        if not quiet:
            test_text = ", ".join(f"{k}={v:.4f}" for k, v in record["test"]["metrics"].items())
            print(f"[{run_id}] test ({task.main_test_split}): {test_text}; {record['timing']['train_samples_per_second']:.1f} train samples/s")
    return record


@contextlib.contextmanager
def _naming_the_model(name: str):
    """from_pretrained's OSError does not always say which model it could not load (offline, it never does)."""
    try:
        yield
    except OSError as error:
        raise OSError(f"Could not load the model {name!r}: {error} The model name or path must exist on the Hugging Face Hub "
                      "(in the local cache when offline) or on disk.") from error


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
        os.environ.update(TENSORBOARD_LOGGING_DIR=str(Path(results_dir) / "tensorboard" / run_id), PEFT_GLUE_TENSORBOARD_AUTO="1")
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
