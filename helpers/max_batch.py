"""The largest training batch that fits: double the batch size until the device runs out of memory (CUDA)
or the measured peak would pass a memory limit (CPU, or CUDA given a limit), then back off to the last
size that fitted.

Each trial is one real training step of the method (forward, backward, AdamW step over its trainable
parameters) on full-length inputs (every example `max_length` tokens), so padding cannot flatter the
answer. Memory is measured as the run records measure it (helpers.memory):
- CUDA: the allocator's peak during the step;
- CPU: parameters + gradients + AdamW state + the activations autograd saves for backward. A CPU has no
  allocator peak to read (the process's RSS high-water mark only ever rises), and running a step that is
  too big would swap or be killed, so that forward pass is measured before the step runs, and the next
  size's need is predicted (activations grow linearly with the batch): a size predicted over the limit is
  not run. The process's resident high-water mark is reported beside it, and runs higher (the
  libraries, the allocator's cache, temporaries that autograd does not keep).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

GIB = 2**30
DEFAULT_CPU_LIMIT_GIB = 8.0  # on CPU there is no out-of-memory signal short of swapping; a limit stands in
BATCH_SIZE_CAP = 65536  # stop doubling here even if memory is left


@dataclass
class Trial:
    """One batch size tried: whether it fitted, its peak and batch-independent bytes, and its step time."""

    batch_size: int
    fits: bool
    peak_bytes: int | None = None  # measured; for a size not run, the predicted need
    static_bytes: int | None = None  # parameters + gradients + AdamW state
    step_seconds: float | None = None  # wall clock
    step_cpu_seconds: float | None = None  # CPU time of this process (all threads): steadier on a shared machine
    rss_peak_bytes: int | None = None  # the process's resident high-water mark after the trial (CPU: runs higher)
    note: str = ""

    def predicted_next(self) -> int:
        """Bytes the doubled batch should need: the batch-dependent part doubles, the rest stays."""
        return self.static_bytes + 2 * (self.peak_bytes - self.static_bytes)


@dataclass
class StepSetup:
    """The model of one method ready to train, with its optimizer, inputs and precision."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    tokenizer: object
    task: object
    max_length: int
    precision: str  # fp32, bf16 or fp16 (autocast)
    device: torch.device

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)


def limit_bytes(memory_limit_gib: float | None) -> int | None:
    """The limit in bytes (None: none given); zero, negative or non-finite limits are errors."""
    if memory_limit_gib is None:
        return None
    if not (math.isfinite(memory_limit_gib) and memory_limit_gib > 0):
        raise ValueError(f"--memory-limit-gib must be a positive number of GiB, got {memory_limit_gib}.")
    return int(memory_limit_gib * GIB)


def full_length_batch(tokenizer, task, batch_size: int, max_length: int) -> dict:
    """`batch_size` examples of `max_length` tokens each (pair tasks: two texts), with labels."""
    text = " ".join(["word"] * max_length)
    texts = [[text] * batch_size] * (2 if task.is_pair else 1)
    batch = tokenizer(*texts, truncation=True, max_length=max_length, padding="max_length", return_tensors="pt")
    labels = torch.zeros(batch_size, dtype=torch.float32 if task.is_regression else torch.long)
    return {**batch, "labels": labels}


def build_setup(task, model_name: str | None, method, max_length: int, precision: str = "auto") -> StepSetup:
    """Load the model, apply the method as training does (CPU: its fast kernels) and make an AdamW optimizer."""
    from helpers.device import cpu_only, resolve_precision
    from helpers.methods import prepare_model, quantization_config
    from helpers.models import load_model, load_tokenizer, max_input_tokens
    from helpers.speed import use_fast_attention, use_fast_dropout

    positions = max_input_tokens(model_name)
    if positions is not None and max_length > positions:
        raise ValueError(f"max_length {max_length} is more than the model's {positions} positions.")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    quantized = quantization_config(method)
    model = load_model(model_name, task, pooling=method.pooling, quantization_config=quantized)
    if cpu_only():
        use_fast_attention(model)
    model = prepare_model(model, method)
    if cpu_only():
        use_fast_dropout(model)
    if quantized is None:  # a 4-bit model is placed on the GPU as it loads
        model.to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-5)
    tokenizer = load_tokenizer(model_name)
    return StepSetup(
        model.train(), optimizer, tokenizer, task, max_length, resolve_precision(precision, "fast"), device
    )


def training_step(setup: StepSetup, batch: dict) -> tuple[float, float]:
    """(wall, CPU) seconds of one forward + backward + optimizer step on `batch` (gradients freed afterwards)."""
    cuda = setup.device.type == "cuda"
    autocast = (
        torch.autocast(setup.device.type, dtype=setup.autocast_dtype)
        if setup.autocast_dtype
        else contextlib.nullcontext()
    )
    if cuda:
        torch.cuda.synchronize()
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        with autocast:
            loss = setup.model(**batch).loss
        loss.backward()
        setup.optimizer.step()
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start, time.process_time() - cpu_start
    finally:
        setup.optimizer.zero_grad(set_to_none=True)


def measure_step(setup: StepSetup, batch_size: int, limit: int | None) -> Trial:
    """Try one training step at `batch_size`; on CPU, its memory is measured first and an over-limit step not run."""
    from helpers.memory import memory_breakdown, process_peak_rss_bytes, static_training_bytes

    batch = full_length_batch(setup.tokenizer, setup.task, batch_size, setup.max_length)
    batch = {key: value.to(setup.device) for key, value in batch.items()}
    static = sum(static_training_bytes(setup.model).values())
    if setup.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        seconds, cpu_seconds = training_step(setup, batch)
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = memory_breakdown(setup.model, batch, setup.autocast_dtype)["total_bytes"]
        if limit is not None and peak > limit:
            return Trial(batch_size, False, peak, static, note="over the limit (measured; step not run)")
        seconds, cpu_seconds = training_step(setup, batch)
    fits = limit is None or peak <= limit
    note = "" if fits else "over the limit (measured)"
    return Trial(
        batch_size, fits, peak, static, round(seconds, 4), round(cpu_seconds, 4), process_peak_rss_bytes(), note
    )


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA's out-of-memory error, or a CPU allocation that failed."""
    return isinstance(error, (torch.cuda.OutOfMemoryError, MemoryError)) or (
        isinstance(error, RuntimeError) and "can't allocate memory" in str(error)
    )


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def search(
    measure: Callable[[int], Trial], limit: int | None, start: int = 1, cap: int = BATCH_SIZE_CAP
) -> list[Trial]:
    """Trials at start, 2·start, 4·start, ... up to `cap`, ending with the first size that does not fit
    (out of memory, measured or predicted over `limit`); every earlier trial fitted."""
    trials: list[Trial] = []
    size = start
    while size <= cap:
        try:
            trial = measure(size)
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            trial = Trial(size, False, note="out of memory")
        free_memory()  # after the except block, when the error no longer holds the step's tensors
        trials.append(trial)
        if not trial.fits:
            break
        if limit is not None and trial.predicted_next() > limit:
            trials.append(
                Trial(
                    2 * size,
                    False,
                    trial.predicted_next(),
                    trial.static_bytes,
                    note="predicted over the limit; not run",
                )
            )
            break
        size *= 2
    return trials


def find_max_batch(
    task,
    model: str | None = None,
    method: str = "lora",
    max_length: int = 128,
    memory_limit_gib: float | None = None,
    precision: str = "auto",
    start: int = 1,
    cap: int = BATCH_SIZE_CAP,
) -> dict:
    """The largest batch size that fits for this task, model and method, with its step time and every trial."""
    from helpers.device import device_name
    from helpers.methods import MethodConfig
    from helpers.models import canonical_model_name
    from helpers.tasks import get_task

    limit = limit_bytes(memory_limit_gib)  # checked before anything loads
    if not 1 <= start <= cap:
        raise ValueError(f"Batch sizes must satisfy 1 <= start ({start}) <= cap ({cap}).")
    if max_length <= 0:
        raise ValueError(f"max_length must be positive, got {max_length}.")
    if limit is None and not torch.cuda.is_available():
        limit = int(DEFAULT_CPU_LIMIT_GIB * GIB)
    task, method_config = get_task(task), MethodConfig(method=method)
    setup = build_setup(task, model, method_config, max_length, precision)
    trials = search(functools.partial(measure_step, setup, limit=limit), limit, start, cap)
    fitted = [trial for trial in trials if trial.fits]
    if not fitted:
        need = f"{trials[0].peak_bytes / GIB:.3f} GiB" if trials[0].peak_bytes else "more memory than there is"
        raise ValueError(f"Even batch size {start} does not fit: it needs {need} ({trials[0].note}).")
    best = fitted[-1]
    return {
        "task": task.name,
        "model": canonical_model_name(model),
        "method": method,
        "max_length": max_length,
        "device": device_name(),
        "precision": setup.precision,
        "memory_kind": "cuda_max_allocated" if setup.device.type == "cuda" else "cpu_breakdown_total",
        "memory_limit_bytes": limit,
        "batch_size": best.batch_size,
        "peak_bytes": best.peak_bytes,
        "step_seconds": best.step_seconds,
        "step_cpu_seconds": best.step_cpu_seconds,
        "samples_per_second": round(best.batch_size / best.step_seconds, 2),
        "stopped_by": trials[-1].note if not trials[-1].fits else f"reached the cap ({cap})",
        "process_peak_rss_bytes": best.rss_peak_bytes,
        "trials": [asdict(trial) for trial in trials],
    }


def _gib(value: int | None) -> str:
    return "-" if value is None else f"{value / GIB:.3f}"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def format_table(result: dict) -> str:
    """The trials as a plain-text table, then the answer in one line."""
    lines = [
        f"{'batch':>7} {'fits':>5} {'peak GiB':>9} {'RSS GiB':>8} {'step s':>8} {'CPU s':>8} {'samples/s':>10}  note"
    ]
    for trial in result["trials"]:
        seconds = trial["step_seconds"]
        lines.append(
            f"{trial['batch_size']:>7} {'yes' if trial['fits'] else 'no':>5} {_gib(trial['peak_bytes']):>9} "
            f"{_gib(trial['rss_peak_bytes']):>8} {_number(seconds):>8} {_number(trial['step_cpu_seconds']):>8} "
            f"{_number(trial['batch_size'] / seconds if seconds else None):>10}  {trial['note']}"
        )
    limit = result["memory_limit_bytes"]
    lines.append(
        f"Largest batch that fits: {result['batch_size']} ({result['task']}, {result['method']}, "
        f"{result['max_length']} tokens, {result['precision']}) on {result['device']}: "
        f"{result['step_seconds']} s/step ({result['step_cpu_seconds']} CPU s), "
        f"{result['samples_per_second']} samples/s; "
        f"limit {'none (until out of memory)' if limit is None else f'{limit / GIB:g} GiB'}; "
        f"stopped by: {result['stopped_by']}."
    )
    return "\n".join(lines)
