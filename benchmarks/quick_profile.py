"""Benchmark of the main job: does `make run` (every notebook, quick profile) finish in <= 15 minutes on
this machine, with BitFit, LoRA and full fine-tuning each >= 3 points above the majority class on SST-2
and MRPC (test split, the task's main metric)?

It makes a fresh clone of this checkout's committed HEAD in a temporary folder (no records, no
tokenization cache: what a newcomer has after `git clone`), runs `python -m helpers notebooks
--profile quick` there with this interpreter (the virtual environment is set up beforehand and not
timed), and writes the wall time per notebook, every run's score against the majority class and
the verdict to results/bench/quick_profile.json and .md in this checkout. Exit status 1 if a target
is missed. Run it on a quiet machine: the time is the measurement.

    GLUE_DIR=../shared/glue nice -n 0 .venv/bin/python benchmarks/quick_profile.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUDGET_SECONDS = 15 * 60
MARGIN = 0.03  # above the majority class, in the main metric
MUST_LEARN = ("bitfit", "lora", "full")
COVERED = ("head", "bitfit", "lora", "full")
TASKS = ("sst2", "mrpc")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--glue-dir", default=os.environ.get("GLUE_DIR"), help="local GLUE folder (default $GLUE_DIR; else the Hub)"
    )
    parser.add_argument(
        "--out", default=str(ROOT / "results" / "bench" / "quick_profile"), help="summary path without suffix"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary clone (its runs/quick/ holds the notebooks and records)"
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="quick-profile-"))
    clone = work / "peft-glue"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    commit = subprocess.run(
        ["git", "-C", str(clone), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    env = {**os.environ, **({"GLUE_DIR": str(Path(args.glue_dir).resolve())} if args.glue_dir else {})}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "helpers", "notebooks", "--profile", "quick"], cwd=clone, env=env)
    wall = time.perf_counter() - start

    sys.path.insert(0, str(clone))
    from helpers.device import device_name
    from helpers.records import load_records
    from helpers.tasks import get_task

    run = clone / "runs" / "quick"
    records, _ = load_records(run / "results")
    notebook_seconds = (
        json.loads((run / "results" / "meta" / "notebook_seconds.json").read_text()) if done.returncode == 0 else {}
    )
    scores = []
    for record in records:
        task = get_task(record["config"]["task"])
        split = record["test"]["split"]
        value = record["test"]["metrics"][task.main_metric]
        majority = record["majority_class"][split][task.main_metric]
        scores.append(
            {
                "task": task.name,
                "method": record["config"]["method"]["method"],
                "metric": task.main_metric,
                "test": round(value, 4),
                "majority": round(majority, 4),
                "above_majority": round(value - majority, 4),
                "train_seconds": record["timing"]["train_seconds"],
                "wall_seconds": record["timing"]["wall_seconds"],
            }
        )
    found = {(s["task"], s["method"]) for s in scores}
    checks = {
        "notebooks ran without error": done.returncode == 0,
        f"wall time <= {BUDGET_SECONDS // 60} min": wall <= BUDGET_SECONDS,
        "head, bitfit, lora, full on sst2 and mrpc": all((t, m) in found for t in TASKS for m in COVERED),
        f"bitfit, lora, full >= {MARGIN:.0%} above the majority class on both tasks": all(
            s["above_majority"] >= MARGIN for s in scores if s["method"] in MUST_LEARN and s["task"] in TASKS
        )
        and bool(scores),
    }
    summary = {
        "commit": commit,
        "machine": device_name(),
        "glue_dir": bool(args.glue_dir),
        "wall_seconds": round(wall, 1),
        "notebook_seconds": notebook_seconds,
        "runs": sorted(scores, key=lambda s: (s["task"], COVERED.index(s["method"]) if s["method"] in COVERED else 9)),
        "checks": checks,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [
        f"# make run (quick profile) on {summary['machine']}, commit {commit}\n",
        f"Wall time of all notebooks: **{wall / 60:.1f} min** ("
        + ", ".join(f"{k} {v / 60:.1f}" for k, v in notebook_seconds.items())
        + ")\n",
        "| task | method | metric | test | majority class | above majority | train s |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {s['task']} | {s['method']} | {s['metric']} | {s['test']:.3f} | {s['majority']:.3f} "
        f"| {s['above_majority']:+.3f} | {s['train_seconds']:.0f} |"
        for s in summary["runs"]
    ]
    lines += ["", *[f"- {'met' if ok else '**missed**'}: {name}" for name, ok in checks.items()]]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if not args.keep:
        subprocess.run(["rm", "-rf", str(work)], check=False)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
