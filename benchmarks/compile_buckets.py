"""Benchmark of `--compile` (issue 14): torch.compile over batch lengths padded to multiples of 32, one
graph per length, against the same fast recipe uncompiled, side by side in one process.

Each (task, method) trains twice on the same subset, seed and settings, once with `compile=True`: the
compiled run's training time includes compiling (the first step of each new length), as a user pays
it. Prints and writes results/bench/compile_buckets.md: training samples/s, the ratio, padding, and
the dev metric of both (one seed: the metric column checks that nothing broke, it decides nothing).
Run it on a quiet machine: the times are the measurement.

    GLUE_DIR=../shared/glue .venv/bin/python benchmarks/compile_buckets.py --samples rte=1000,sst2=4000
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from helpers.device import device_name
from helpers.methods import MethodConfig
from helpers.tasks import get_task
from helpers.training import TrainConfig, train

OUT = Path(__file__).resolve().parent.parent / "results" / "bench" / "compile_buckets.md"


def pair(task: str, method: str, samples: int, glue_dir: str | None, work: Path) -> list[dict]:
    """The uncompiled and the compiled run of one (task, method), one after the other."""
    rows = []
    for compiled in (False, True):
        config = TrainConfig(
            task=task,
            method=MethodConfig(method=method),
            epochs=1,
            max_train_samples=samples,
            max_validation_samples=200,
            compile=compiled,
        )
        record = train(config, glue_dir=glue_dir, results_dir=work / ("compiled" if compiled else "eager"), quiet=True)
        timing, spec = record["timing"], get_task(task)
        rows.append(
            {
                "task": spec.name,
                "method": method,
                "compiled": compiled,
                "train_seconds": timing["train_seconds"],
                "samples_per_second": timing["train_samples_per_second"],
                "padding": timing.get("padding_fraction"),
                "metric": record["test"]["metrics"][spec.main_metric],
                "metric_name": spec.main_metric,
            }
        )
    return rows


def table(rows: list[dict]) -> list[str]:
    lines = [
        "| task | method | samples | eager samples/s | compiled samples/s (compile included) | ratio | "
        "padding eager → compiled | dev metric eager / compiled |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for eager, compiled in zip(rows[::2], rows[1::2]):
        ratio = compiled["samples_per_second"] / eager["samples_per_second"]
        lines.append(
            f"| {eager['task']} | {eager['method']} | {eager['samples']} | {eager['samples_per_second']:.1f} | "
            f"{compiled['samples_per_second']:.1f} | **{ratio:.2f}×** | "
            f"{eager['padding']:.0%} → {compiled['padding']:.0%} | "
            f"{eager['metric_name']} {eager['metric']:.3f} / {compiled['metric']:.3f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", default="rte=1000,sst2=4000", help="task=training-examples pairs")
    parser.add_argument("--methods", default="lora", help="comma-separated methods")
    parser.add_argument("--glue-dir", default=None, help="local GLUE folder (default $GLUE_DIR, else the Hub)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="compile-bench-") as work:
        for item in args.samples.split(","):
            task, samples = item.split("=")
            for method in args.methods.split(","):
                runs = pair(task, method, int(samples), args.glue_dir, Path(work))
                rows += [{**row, "samples": int(samples)} for row in runs]
    lines = [
        "# torch.compile over bucketed lengths vs eager (fast recipe, 1 epoch, batch 32, seed 0)",
        "",
        f"Device: {device_name()}. Made by `benchmarks/compile_buckets.py`; the compiled runs' time includes"
        " compiling.",
        "",
        *table(rows),
    ]
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
