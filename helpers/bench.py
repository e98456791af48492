"""`python -m helpers bench`: the usual notebook recipe against this project's, side by side.

Baseline (what students usually write): Trainer, every example padded to max_length at
tokenization, fp32, random batches, evaluation with Trainer's defaults.
Project ("fast" recipe): per-batch padding, length-grouped batches, evaluation sorted by length in
larger batches under `torch.inference_mode`, bf16 autocast where the hardware supports it.

Both run on identical data (same subsets, same seeds), model, method, batch size and epochs, each
in a fresh process so its peak memory is its own. Runs are timed one after another, never at once.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from helpers.device import cpu_has_bf16, device_name, fast_bf16, library_versions, resolve_precision
from helpers.fields import default_of
from helpers.models import DEFAULT_MODEL
from helpers.paths import BENCH_DIR
from helpers.records import load_record, write_json_atomic
from helpers.speed import COMPILE_PAD_MULTIPLE
from helpers.tasks import get_task
from helpers.training import TrainConfig

DEFAULT_SAMPLES = {"sst2": 2000, "rte": 600}
DEFAULT_METHODS = ("bitfit", "lora", "full")
# Every bench trains at the project's batch size and length (TrainConfig's), for one epoch, and
# evaluates a validation subset.
BATCH_SIZE = default_of(TrainConfig, "batch_size")
MAX_LENGTH = default_of(TrainConfig, "max_length")
EPOCHS = 1.0
VALIDATION_SAMPLES = 256


def matmul_rate(dtype: torch.dtype, size: int = 2048, repeats: int = 10) -> float:
    """Dense matrix multiply rate of this machine in GFLOP/s (square size x size products)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    for _ in range(3):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def matmul_peaks(size: int | None = None) -> dict[str, float | None]:
    """This machine's fp32 and bf16 matmul rates (GFLOP/s). bf16 is None where it is only emulated:
    there it runs tens of times slower than fp32, is never used for training, and would take minutes."""
    size = size or (8192 if torch.cuda.is_available() else 2048)  # a GPU needs large products to reach its peak
    return {
        "fp32": matmul_rate(torch.float32, size),
        "bf16": matmul_rate(torch.bfloat16, size) if fast_bf16() else None,
        "fp16": matmul_rate(torch.float16, size)
        if torch.cuda.is_available()
        else None,  # CPUs never train in fp16 here
    }


def _run(task: str, method: str, recipe: str, precision: str, samples: int, args) -> dict:
    """One timed training run in its own process; returns its run record."""
    command = [
        sys.executable,
        "-m",
        "helpers",
        "train",
        "--task",
        task,
        "--method",
        method,
        "--recipe",
        recipe,
        "--precision",
        precision,
        "--max-train-samples",
        str(samples),
        "--epochs",
        str(args["epochs"]),
        "--batch-size",
        str(args["batch_size"]),
        "--max-length",
        str(args["max_length"]),
        "--seed",
        str(args["seed"]),
        "--max-validation-samples",
        str(args["validation_samples"]),
        "--model",
        args["model"],
        "--results-dir",
        str(args["runs_dir"]),
        "--force",
        "--quiet",
    ]
    if args["glue_dir"]:
        command += ["--glue-dir", str(args["glue_dir"])]
    if args.get("lr"):
        command += ["--lr", str(args["lr"])]
    if args.get("compile") and recipe == "fast":
        command += ["--compile"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"bench run failed: {' '.join(command)}\n{done.stderr[-3000:]}")
    run_id = json.loads(done.stdout)["run_id"]
    return load_record(Path(args["runs_dir"]) / f"{run_id}.json")


def _row(record: dict, peaks: dict) -> dict:
    timing, config = record["timing"], record["config"]
    task = get_task(config["task"])
    dtype = config["precision_used"]
    peak = (peaks.get(dtype) or math.nan) * 1e9  # the rate of the dtype the run trained in
    return {
        "task": config["task"],
        "method": config["method"]["method"],
        "recipe": config["recipe"],
        "precision": dtype,
        "seed": config["seed"],
        "train_samples": record["data"]["sizes"]["train"],
        "samples_per_second": timing["train_samples_per_second"],
        "tokens_per_second": timing["train_tokens_per_second"],
        "padding_fraction": timing["padding_fraction"],
        "eval_seconds": timing["eval_seconds"],
        "peak_rss_bytes": record["memory"]["process_peak_rss_bytes"],
        "dev_metric": task.main_metric,
        "dev_value": record["test"]["metrics"][task.main_metric],
        "model_flops_per_second": timing["model_flops_per_second"],
        "computed_flops_per_second": timing["computed_flops_per_second"],
        "model_flops_utilisation": timing["model_flops_per_second"] / peak,
        "computed_flops_utilisation": timing["computed_flops_per_second"] / peak,
        "run_id": record["run_id"],
    }


def summarise(rows: list[dict]) -> list[dict]:
    """Per task and method: mean of each recipe over seeds, and project ÷ baseline."""
    summary = []
    keys = sorted(
        {(r["task"], r["method"]) for r in rows},
        key=lambda k: (k[0], DEFAULT_METHODS.index(k[1]) if k[1] in DEFAULT_METHODS else 9),
    )
    for task, method in keys:
        by_recipe = {}
        for recipe in ("baseline", "fast"):
            chosen = [r for r in rows if r["task"] == task and r["method"] == method and r["recipe"] == recipe]
            if not chosen:
                continue
            values = [r["dev_value"] for r in chosen]
            by_recipe[recipe] = {
                "samples_per_second": statistics.mean(r["samples_per_second"] for r in chosen),
                "tokens_per_second": statistics.mean(r["tokens_per_second"] for r in chosen),
                "padding_fraction": statistics.mean(r["padding_fraction"] for r in chosen),
                "eval_seconds": statistics.mean(r["eval_seconds"] for r in chosen),
                "peak_rss_bytes": max(r["peak_rss_bytes"] for r in chosen),
                "dev_mean": statistics.mean(values),
                "dev_std": statistics.stdev(values) if len(values) > 1 else 0.0,
                "seeds": len(chosen),
                "precision": chosen[0]["precision"],
                "model_flops_utilisation": statistics.mean(r["model_flops_utilisation"] for r in chosen),
                "computed_flops_utilisation": statistics.mean(r["computed_flops_utilisation"] for r in chosen),
            }
        entry = {"task": task, "method": method, **by_recipe}
        if "baseline" in by_recipe and "fast" in by_recipe:
            entry["speedup"] = by_recipe["fast"]["samples_per_second"] / by_recipe["baseline"]["samples_per_second"]
            entry["eval_speedup"] = by_recipe["baseline"]["eval_seconds"] / by_recipe["fast"]["eval_seconds"]
            entry["dev_difference"] = by_recipe["fast"]["dev_mean"] - by_recipe["baseline"]["dev_mean"]
        summary.append(entry)
    return summary


def markdown_table(result: dict) -> str:
    """The summary table, as committed in results/bench/summary.md and shown in the README."""
    peaks = result["matmul_gflops"]
    lines = [
        f"Device: {result['device']}; dense matmul {peaks['fp32']:.0f} GFLOP/s fp32, "
        + (f"{peaks['bf16']:.0f} GFLOP/s bf16. " if peaks.get("bf16") else "bf16 not in hardware. ")
        + f"{result['settings']['epochs']} epoch(s), batch {result['settings']['batch_size']}, "
        f"seeds {result['settings']['seeds']}."
        + (
            f" Project runs: torch.compile over lengths padded to multiples of {COMPILE_PAD_MULTIPLE},"
            " compile time included."
            if result["settings"].get("project_compile")
            else ""
        ),
        "",
        "| task | method | baseline samples/s | project samples/s | speed-up | padding (base → proj) | eval speed-up | "
        "dev metric baseline | dev metric project | model FLOP util. (project) | peak RSS base / proj (GB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in result["summary"]:
        base, fast = entry.get("baseline"), entry.get("fast")
        if not (base and fast):
            continue
        lines.append(
            f"| {entry['task']} | {entry['method']} | {base['samples_per_second']:.1f} | "
            f"{fast['samples_per_second']:.1f} ({fast['precision']}) "
            f"| **{entry['speedup']:.1f}×** | {base['padding_fraction']:.0%} → {fast['padding_fraction']:.0%} | "
            f"{entry['eval_speedup']:.1f}× "
            f"| {base['dev_mean']:.3f} ± {base['dev_std']:.3f} | {fast['dev_mean']:.3f} ± {fast['dev_std']:.3f} "
            f"| {fast['model_flops_utilisation']:.0%} ({fast['computed_flops_utilisation']:.0%} incl. padding) "
            f"| {base['peak_rss_bytes'] / 1e9:.2f} / {fast['peak_rss_bytes'] / 1e9:.2f} |"
        )
    samples = ", ".join(f"{task} {count:,}" for task, count in result["settings"].get("samples", {}).items())
    lines += [
        "",
        f"Training examples per task: {samples or 'every one'}. The dev metrics after so short a run only check that "
        "the two recipes learn alike (same data and seeds); they are not tuned results, and on a task this budget is "
        "too short for, both recipes stay near chance.",
    ]
    return "\n".join(lines) + "\n"


def run_bench(
    *,
    samples: dict[str, int] | None = None,
    methods: tuple[str, ...] = DEFAULT_METHODS,
    seeds: tuple[int, ...] = (0,),
    epochs: float = EPOCHS,
    batch_size: int = BATCH_SIZE,
    max_length: int = MAX_LENGTH,
    validation_samples: int = VALIDATION_SAMPLES,
    project_precision: str = "auto",
    model: str = DEFAULT_MODEL,
    glue_dir: str | os.PathLike | None = None,
    out_dir: str | os.PathLike = BENCH_DIR,
    name: str = "bench",
    lr: float | None = None,
    compile: bool = False,
    progress: bool = True,
) -> dict:
    """Run both recipes for every task, method and seed; save and return the JSON result.
    `compile`: the project's runs use torch.compile over bucketed lengths (`--compile`), compile time
    included in their training time."""
    samples = samples or DEFAULT_SAMPLES
    out_dir = Path(out_dir)
    project_precision = resolve_precision(project_precision, "fast")
    peaks = matmul_peaks()
    args = {
        "epochs": epochs,
        "batch_size": batch_size,
        "max_length": max_length,
        "validation_samples": validation_samples,
        "model": model,
        "glue_dir": glue_dir,
        "runs_dir": out_dir / "runs",
        "lr": lr,
        "compile": compile,
    }
    rows = _bench_rows(samples, methods, seeds, project_precision, args, peaks, progress)
    settings = {
        "samples": samples,
        "methods": list(methods),
        "seeds": list(seeds),
        "epochs": epochs,
        "batch_size": batch_size,
        "max_length": max_length,
        "validation_samples": validation_samples,
        "project_precision": project_precision,
        "model": model,
        "project_compile": compile,
    }
    result = {
        "device": device_name(),
        "versions": library_versions(),
        "matmul_gflops": peaks,
        "settings": settings,
        "rows": rows,
        "summary": summarise(rows),
    }
    _save_result(out_dir, name, result, markdown_table(result))
    return result


def _bench_rows(
    samples: dict[str, int],
    methods: tuple[str, ...],
    seeds: tuple[int, ...],
    project_precision: str,
    args: dict,
    peaks: dict,
    progress: bool,
) -> list[dict]:
    """Train every task x method x seed in both recipes (the baseline in fp32), one row each."""
    from tqdm.auto import tqdm

    plan = [
        (task, n, method, seed, recipe)
        for task, n in samples.items()
        for method in methods
        for seed in seeds
        for recipe in ("baseline", "fast")
    ]
    rows = []
    for task, n, method, seed, recipe in tqdm(plan, desc="bench", unit="run", disable=not progress):
        precision = "fp32" if recipe == "baseline" else project_precision
        record = _run(task, method, recipe, precision, n, {**args, "seed": seed})
        rows.append(_row(record, peaks))
    return rows


def _save_result(out_dir: Path, name: str, result: dict, table: str) -> None:
    """The result as <name>.json and its table as <name>.md."""
    write_json_atomic(out_dir / f"{name}.json", result)
    (out_dir / f"{name}.md").write_text(table)


# ---------------------------------------------------------------------------------------------
# Step ablation: what each change of the fast recipe buys, on one fixed training step
# ---------------------------------------------------------------------------------------------

STEP_VARIANTS = {
    # name: (autocast bf16, fast attention, fast dropout)
    "fp32, SDPA, native dropout": (False, False, False),
    "fp32, eager attention, fast dropout (project without bf16)": (False, True, True),
    "bf16, SDPA, native dropout": (True, False, False),
    "bf16, eager attention, native dropout": (True, True, False),
    "bf16, eager attention, fast dropout (project)": (True, True, True),
}


def step_time(
    method: str,
    bf16: bool,
    fast_attention: bool,
    fast_dropout: bool,
    *,
    batch: int = BATCH_SIZE,
    length: int = MAX_LENGTH,
    model: str = DEFAULT_MODEL,
    warmup: int = 3,
    steps: int = 5,
) -> float:
    """Seconds per training step (forward, backward, AdamW) on a fixed random batch, outside Trainer."""
    import contextlib

    from helpers.methods import MethodConfig, prepare_model
    from helpers.models import load_model
    from helpers.speed import use_fast_attention, use_fast_dropout

    torch.manual_seed(0)
    network = load_model(model, "sst2")
    if fast_attention:
        use_fast_attention(network)
    network = prepare_model(network, MethodConfig(method=method)).train()
    if fast_dropout:
        use_fast_dropout(network)
    optimizer = torch.optim.AdamW([p for p in network.parameters() if p.requires_grad], lr=1e-4)
    inputs = {
        "input_ids": torch.randint(1000, 20000, (batch, length)),
        "attention_mask": torch.ones(batch, length, dtype=torch.long),
        "labels": torch.randint(0, 2, (batch,)),
    }
    inputs["attention_mask"][:, -8:] = 0  # some padding, as in real batches
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext

    def one_step():
        with autocast():
            loss = network(**inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    for _ in range(warmup):
        one_step()
    start = time.perf_counter()
    for _ in range(steps):
        one_step()
    return (time.perf_counter() - start) / steps


def run_step_ablation(methods=DEFAULT_METHODS, out_dir=BENCH_DIR, model: str = DEFAULT_MODEL) -> dict:
    """Time one training step on the CPU for every variant in STEP_VARIANTS; save JSON and a markdown table."""
    import transformers

    transformers.logging.set_verbosity_error()
    rows = []
    for method in methods:
        for name, (bf16, attention, dropout) in STEP_VARIANTS.items():
            if bf16 and not cpu_has_bf16():
                continue
            seconds = step_time(method, bf16, attention, dropout, model=model)
            rows.append(
                {
                    "method": method,
                    "variant": name,
                    "ms_per_step": round(1000 * seconds, 1),
                    "samples_per_second": round(BATCH_SIZE / seconds, 1),
                }
            )
    result = {
        "device": device_name(),
        "versions": library_versions(),
        "batch": [BATCH_SIZE, MAX_LENGTH],
        "model": model,
        "rows": rows,
    }
    out_dir = Path(out_dir)
    write_json_atomic(out_dir / "step_ablation.json", result)
    lines = [
        f"One training step (forward, backward, AdamW) on a {BATCH_SIZE} × {MAX_LENGTH} batch, {device_name()}:",
        "",
        "| method | variant | ms per step | samples/s |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r['method']} | {r['variant']} | {r['ms_per_step']} | {r['samples_per_second']} |" for r in rows]
    (out_dir / "step_ablation.md").write_text("\n".join(lines) + "\n")
    return result


# ---------------------------------------------------------------------------------------------
# Grid throughput: one sweep in one process against several processes sharing the cores
# ---------------------------------------------------------------------------------------------

GRID_SAMPLES = {"sst2": 2000, "mrpc": 2000}
GRID_METHODS = ("bitfit", "lora")
GRID_SEEDS = (0, 1)
GRID_LAYOUTS = ((1, 2), (2, 1))  # (workers, torch threads per worker): today's sweep first, the ratio is against it


def parse_layouts(text: str) -> tuple[tuple[int, int], ...]:
    """`"1x2,2x1"` as ((1, 2), (2, 1)): workers x threads per worker."""
    layouts = []
    for item in text.split(","):
        workers, _, threads = item.strip().partition("x")
        if not (workers.isdigit() and threads.isdigit()) or int(workers) < 1 or int(threads) < 1:
            raise ValueError(f"--layouts takes workers x threads pairs like 1x2,2x1; got {item!r}.")
        layouts.append((int(workers), int(threads)))
    return tuple(layouts)


def _warm_data_caches(samples: dict[str, int], validation_samples: int, max_length: int, model: str, glue_dir) -> None:
    """Load and tokenize every task once, so that no layout pays for the tokenization cache."""
    from helpers.data import load_glue
    from helpers.models import load_tokenizer
    from helpers.tokenization import tokenize_splits

    tokenizer = load_tokenizer(model)
    for task, count in samples.items():
        splits = load_glue(task, glue_dir=glue_dir, max_train_samples=count, max_validation_samples=validation_samples)
        tokenize_splits(splits, task, tokenizer, max_length=max_length)


def _sweep_wall_seconds(workers: int, threads: int, runs_dir: Path, args: dict) -> float:
    """Train the grid with `python -m helpers sweep` in a fresh folder; its wall time, process start included."""
    import shutil

    shutil.rmtree(runs_dir, ignore_errors=True)
    samples = args["samples"]
    if len(set(samples.values())) != 1:
        raise ValueError(f"The grid bench takes one training-subset size for every task, got {samples}.")
    command = [
        sys.executable,
        "-m",
        "helpers",
        "sweep",
        "--task",
        ",".join(samples),
        "--method",
        ",".join(args["methods"]),
        "--seed",
        ",".join(str(s) for s in args["seeds"]),
        "--max-train-samples",
        str(next(iter(samples.values()))),
        "--max-validation-samples",
        str(args["validation_samples"]),
        "--epochs",
        str(args["epochs"]),
        "--batch-size",
        str(args["batch_size"]),
        "--max-length",
        str(args["max_length"]),
        "--model",
        args["model"],
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--results-dir",
        str(runs_dir),
        "--quiet",
    ]
    if args["glue_dir"]:
        command += ["--glue-dir", str(args["glue_dir"])]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"grid bench sweep failed: {' '.join(command)}\n{done.stderr[-3000:]}")
    return seconds


def run_grid_bench(
    *,
    samples: dict[str, int] | None = None,
    methods: tuple[str, ...] = GRID_METHODS,
    seeds: tuple[int, ...] = GRID_SEEDS,
    layouts: tuple[tuple[int, int], ...] = GRID_LAYOUTS,
    repeats: int = 1,
    epochs: float = EPOCHS,
    batch_size: int = BATCH_SIZE,
    max_length: int = MAX_LENGTH,
    validation_samples: int = VALIDATION_SAMPLES,
    model: str = DEFAULT_MODEL,
    glue_dir: str | os.PathLike | None = None,
    out_dir: str | os.PathLike = BENCH_DIR / "grid",
    name: str = "grid",
    progress: bool = True,
) -> dict:
    """Time one fixed grid (tasks x methods x seeds) as a sweep in each layout (workers x threads),
    one layout after the other, in a fresh results folder each; save and return runs per hour and
    each layout's ratio to the first. With repeats > 1 the order alternates (A B, B A, ...) so that
    a machine getting busier or quieter does not favour one layout."""
    from tqdm.auto import tqdm

    samples = samples or GRID_SAMPLES
    out_dir = Path(out_dir)
    args = {
        "samples": samples,
        "methods": list(methods),
        "seeds": list(seeds),
        "epochs": epochs,
        "batch_size": batch_size,
        "max_length": max_length,
        "validation_samples": validation_samples,
        "model": model,
        "glue_dir": glue_dir,
    }
    runs = len(samples) * len(methods) * len(seeds)
    _warm_data_caches(samples, validation_samples, max_length, model, glue_dir)
    plan = [(repeat, layout) for repeat in range(repeats) for layout in (layouts if repeat % 2 == 0 else layouts[::-1])]
    rows = [
        _time_layout(workers, threads, repeat, out_dir / "runs" / f"{workers}x{threads}-{repeat}", args, runs)
        for repeat, (workers, threads) in tqdm(plan, desc="grid bench", unit="sweep", disable=not progress)
    ]
    result = {
        "device": device_name(),
        "cores": os.cpu_count(),
        "versions": library_versions(),
        "settings": {**args, "layouts": [list(layout) for layout in layouts], "repeats": repeats, "runs": runs},
        "rows": rows,
        "summary": _grid_summary(rows, layouts),
    }
    _save_result(out_dir, name, result, grid_markdown_table(result))
    return result


def _time_layout(workers: int, threads: int, repeat: int, runs_dir: Path, args: dict, runs: int) -> dict:
    """One sweep of the grid in one layout, into a fresh `runs_dir`: its wall time and runs per hour."""
    seconds = _sweep_wall_seconds(workers, threads, runs_dir, args)
    records = [load_record(path) for path in sorted(runs_dir.glob("*.json"))]
    if len(records) != runs:
        raise RuntimeError(f"The {workers}x{threads} sweep left {len(records)} records in {runs_dir}, expected {runs}.")
    return {
        "workers": workers,
        "threads": threads,
        "repeat": repeat,
        "wall_seconds": round(seconds, 2),
        "runs": runs,
        "runs_per_hour": round(runs * 3600 / seconds, 2),
        "mean_run_samples_per_second": round(
            statistics.mean(r["timing"]["train_samples_per_second"] for r in records), 2
        ),
        "mean_run_wall_seconds": round(statistics.mean(r["timing"]["wall_seconds"] for r in records), 2),
    }


def _grid_summary(rows: list[dict], layouts: tuple[tuple[int, int], ...]) -> list[dict]:
    """Each layout's means over its repeats, in the order given, and its runs per hour over the first's."""
    summary = []
    for workers, threads in layouts:
        chosen = [r for r in rows if (r["workers"], r["threads"]) == (workers, threads)]
        summary.append(
            {
                "workers": workers,
                "threads": threads,
                "runs_per_hour": statistics.mean(r["runs_per_hour"] for r in chosen),
                "wall_seconds": statistics.mean(r["wall_seconds"] for r in chosen),
                "mean_run_samples_per_second": statistics.mean(r["mean_run_samples_per_second"] for r in chosen),
            }
        )
    for entry in summary:
        entry["ratio"] = entry["runs_per_hour"] / summary[0]["runs_per_hour"]
    return summary


def grid_markdown_table(result: dict) -> str:
    """Runs per hour of each layout, side by side, and the ratio to the first."""
    settings = result["settings"]
    lines = [
        f"Device: {result['device']} ({result['cores']} cores). Grid: {settings['runs']} runs "
        f"({', '.join(f'{t} {n:,}' for t, n in settings['samples'].items())} training examples; "
        f"{', '.join(settings['methods'])}; "
        f"seeds {settings['seeds']}; {settings['epochs']} epoch(s), batch {settings['batch_size']}); "
        f"{settings['repeats']} repeat(s).",
        "",
        "| workers × threads | wall time (min) | runs per hour | ratio | samples/s per run (mean) |",
        "|---|---|---|---|---|",
    ]
    for entry in result["summary"]:
        lines.append(
            f"| {entry['workers']} × {entry['threads']} | {entry['wall_seconds'] / 60:.1f} | "
            f"{entry['runs_per_hour']:.1f} "
            f"| **{entry['ratio']:.2f}×** | {entry['mean_run_samples_per_second']:.1f} |"
        )
    return "\n".join(lines) + "\n"
