"""`python -m helpers bench`: the usual notebook recipe against this project's, side by side.

Baseline (what students usually write): Trainer, every example padded to max_length=128 at
tokenization, fp32, random batches, evaluation with Trainer's defaults.
Project ("fast" recipe): per-batch padding, length-grouped batches, evaluation sorted by length in
larger batches under `torch.inference_mode`, bf16 autocast where the hardware supports it.

Both run on identical data (same subsets, same seeds), model, method, batch size and epochs, each
in a fresh process so its peak memory is its own. Runs are timed one after another, never at once.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from helpers.records import load_record, write_json_atomic
from helpers.tasks import get_task
from helpers.device import device_name, library_versions, resolve_precision
from helpers.training import RESULTS_DIR

BENCH_DIR = RESULTS_DIR / "bench"
DEFAULT_SAMPLES = {"sst2": 2000, "rte": 600}
DEFAULT_METHODS = ("bitfit", "lora", "full")


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


def _run(task: str, method: str, recipe: str, precision: str, samples: int, args) -> dict:
    """One timed training run in its own process; returns its run record."""
    command = [
        sys.executable, "-m", "helpers", "train", "--task", task, "--method", method, "--recipe", recipe,
        "--precision", precision, "--max-train-samples", str(samples), "--epochs", str(args["epochs"]),
        "--batch-size", str(args["batch_size"]), "--max-length", str(args["max_length"]), "--seed", str(args["seed"]),
        "--max-validation-samples", str(args["validation_samples"]), "--model", args["model"],
        "--results-dir", str(args["runs_dir"]), "--force", "--quiet",
    ]
    if args["glue_dir"]:
        command += ["--glue-dir", str(args["glue_dir"])]
    if args.get("lr"):
        command += ["--lr", str(args["lr"])]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"bench run failed: {' '.join(command)}\n{done.stderr[-3000:]}")
    run_id = json.loads(done.stdout)["run_id"]
    return load_record(Path(args["runs_dir"]) / f"{run_id}.json")


def _row(record: dict, peaks: dict) -> dict:
    timing, config = record["timing"], record["config"]
    task = get_task(config["task"])
    dtype = config["precision_used"]
    peak = peaks["bf16" if dtype in ("bf16", "fp16") else "fp32"] * 1e9
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
    keys = sorted({(r["task"], r["method"]) for r in rows}, key=lambda k: (k[0], DEFAULT_METHODS.index(k[1]) if k[1] in DEFAULT_METHODS else 9))
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
        f"Device: {result['device']}; dense matmul {peaks['fp32']:.0f} GFLOP/s fp32, {peaks['bf16']:.0f} GFLOP/s bf16. "
        f"{result['settings']['epochs']} epoch(s), batch {result['settings']['batch_size']}, seeds {result['settings']['seeds']}.",
        "",
        "| task | method | baseline samples/s | project samples/s | speed-up | padding (base → proj) | eval speed-up | dev metric baseline | dev metric project | model FLOP util. (project) | peak RSS base / proj (GB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in result["summary"]:
        base, fast = entry.get("baseline"), entry.get("fast")
        if not (base and fast):
            continue
        lines.append(
            f"| {entry['task']} | {entry['method']} | {base['samples_per_second']:.1f} | {fast['samples_per_second']:.1f} ({fast['precision']}) "
            f"| **{entry['speedup']:.1f}×** | {base['padding_fraction']:.0%} → {fast['padding_fraction']:.0%} | {entry['eval_speedup']:.1f}× "
            f"| {base['dev_mean']:.3f} ± {base['dev_std']:.3f} | {fast['dev_mean']:.3f} ± {fast['dev_std']:.3f} "
            f"| {fast['model_flops_utilisation']:.0%} ({fast['computed_flops_utilisation']:.0%} incl. padding) "
            f"| {base['peak_rss_bytes'] / 1e9:.2f} / {fast['peak_rss_bytes'] / 1e9:.2f} |"
        )
    return "\n".join(lines) + "\n"


def run_bench(
    *,
    samples: dict[str, int] | None = None,
    methods: tuple[str, ...] = DEFAULT_METHODS,
    seeds: tuple[int, ...] = (0,),
    epochs: float = 1.0,
    batch_size: int = 32,
    max_length: int = 128,
    validation_samples: int = 256,
    project_precision: str = "auto",
    model: str = "all-MiniLM-L6-v2",
    glue_dir: str | os.PathLike | None = None,
    out_dir: str | os.PathLike = BENCH_DIR,
    name: str = "bench",
    lr: float | None = None,
    progress: bool = True,
) -> dict:
    """Run both recipes for every task, method and seed; save and return the JSON result."""
    from tqdm.auto import tqdm

    samples = samples or DEFAULT_SAMPLES
    out_dir = Path(out_dir)
    project_precision = resolve_precision(project_precision, "fast")
    peaks = {"fp32": matmul_rate(torch.float32), "bf16": matmul_rate(torch.bfloat16)}
    args = {"epochs": epochs, "batch_size": batch_size, "max_length": max_length, "validation_samples": validation_samples,
            "model": model, "glue_dir": glue_dir, "runs_dir": out_dir / "runs", "lr": lr}
    plan = [(task, n, method, seed, recipe) for task, n in samples.items() for method in methods for seed in seeds for recipe in ("baseline", "fast")]
    rows = []
    for task, n, method, seed, recipe in tqdm(plan, desc="bench", unit="run", disable=not progress):
        precision = "fp32" if recipe == "baseline" else project_precision
        record = _run(task, method, recipe, precision, n, {**args, "seed": seed})
        rows.append(_row(record, peaks))
    result = {
        "device": device_name(),
        "versions": library_versions(),
        "matmul_gflops": peaks,
        "settings": {"samples": samples, "methods": list(methods), "seeds": list(seeds), "epochs": epochs, "batch_size": batch_size,
                     "max_length": max_length, "validation_samples": validation_samples, "project_precision": project_precision, "model": model},
        "rows": rows,
        "summary": summarise(rows),
    }
    write_json_atomic(out_dir / f"{name}.json", result)
    (out_dir / f"{name}.md").write_text(markdown_table(result))
    return result
