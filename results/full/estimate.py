"""Estimate the `full` profile's wall time on this machine from the `quick` profile's run records,
and check the estimate against the full-profile runs that were actually made (records beside this file).

Per (task, method): median seconds per training example, per evaluated example, and per-run
overhead in the quick records, scaled to each full-profile run's data sizes and epochs.
Run from the project root:  python results/full/estimate.py
"""

import json
import statistics
from pathlib import Path

from helpers.experiments import EXPERIMENTS, experiment_configs
from helpers.profiles import get_profile

ROOT = Path(__file__).resolve().parents[2]
FULL_SIZES = {"sst2": (8000, 1000, 872), "mrpc": (3301, 367, 408)}  # train, validation, test in the full profile


def method_key(method: dict) -> tuple:
    targets = method.get("target_modules")
    return (
        method["method"],
        method.get("bitfit_variant") if method["method"] == "bitfit" else None,
        tuple(targets) if isinstance(targets, list) else targets,
    )


rates: dict[tuple, list[tuple[float, float, float]]] = {}
for path in sorted((ROOT / "results" / "quick").glob("*.json")):
    record = json.loads(path.read_text())
    timing, sizes, epochs = record["timing"], record["data"]["sizes"], record["config"]["epochs"]
    rates.setdefault((record["config"]["task"], *method_key(record["config"]["method"])), []).append(
        (
            timing["train_seconds"] / timing["samples_seen"],
            timing["eval_seconds"] / (epochs * sizes["validation"] + sizes["test"]),
            timing["wall_seconds"] - timing["train_seconds"] - timing["eval_seconds"],
        )
    )

full = get_profile("full")
configs = {config.run_id: config for name in EXPERIMENTS for config in experiment_configs(name, full)}
measured = {
    path.stem: json.loads(path.read_text())["timing"]["wall_seconds"]
    for path in (ROOT / "results" / "full").glob("*.json")
}
per_task: dict[str, float] = {}
for run_id, config in configs.items():
    key = (config.task, *method_key(config.method.to_dict()))
    samples = rates.get(key) or [x for k, v in rates.items() if k[:2] == key[:2] for x in v]  # same method, other knobs
    per_train, per_eval, overhead = (statistics.median(x[i] for x in samples) for i in range(3))
    train, validation, test = FULL_SIZES[config.task]
    seconds = train * config.epochs * per_train + (config.epochs * validation + test) * per_eval + overhead
    per_task[config.task] = per_task.get(config.task, 0.0) + seconds
    if run_id in measured:
        print(f"{run_id}: estimated {seconds:.0f} s, measured {measured[run_id]:.0f} s")
print(
    f"{len(configs)} runs; estimated {sum(per_task.values()) / 3600:.1f} h in all ("
    + ", ".join(f"{task} {s / 3600:.1f} h" for task, s in per_task.items())
    + ")"
)
