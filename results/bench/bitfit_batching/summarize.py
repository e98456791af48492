"""SST-2 BitFit dev accuracy by batching variant over 8 seeds, read from the run records.

Seeds 0-2 of the baseline and of the default fast recipe are the bench's own runs
(`results/bench/runs/`); everything else is in `runs/` here. Run from the project root:
    python results/bench/bitfit_batching/summarize.py
"""

import json
import statistics
from pathlib import Path

HERE = Path(__file__).parent
FILES = sorted(HERE.parent.glob("runs/sst2-bitfit-*.json")) + sorted((HERE / "runs").glob("*.json"))


def variant(config: dict) -> str:
    if config["recipe"] == "baseline":
        return "baseline (padding to 128, random batches)"
    if not config.get("length_grouping", True):
        return "fast, random batches (`--no-length-grouping`)"
    return f"fast, length buckets of {config.get('length_bucket_batches') or 50} batches" + (
        "" if config.get("length_bucket_batches") not in (None, 50) else " (default)"
    )


rows: dict[str, dict[int, tuple[float, float]]] = {}
for path in FILES:
    record = json.loads(path.read_text())
    config = record["config"]
    if config["max_train_samples"] == 2000 and config["epochs"] == 1:
        rows.setdefault(variant(config), {})[config["seed"]] = (
            record["test"]["metrics"]["accuracy"],
            record["timing"]["padding_fraction"],
        )

print("| variant | seeds | test accuracy, mean ± std | min – max | padding | per seed (0…7) |")
print("|---|---|---|---|---|---|")
for name, by_seed in sorted(rows.items()):
    accuracy = [by_seed[seed][0] for seed in sorted(by_seed)]
    padding = statistics.mean(p for _, p in by_seed.values())
    print(
        f"| {name} | {len(accuracy)} | {statistics.mean(accuracy):.3f} ± {statistics.stdev(accuracy):.3f} | "
        f"{min(accuracy):.3f} – {max(accuracy):.3f} | {padding:.0%} | {', '.join(f'{a:.3f}' for a in accuracy)} |"
    )
