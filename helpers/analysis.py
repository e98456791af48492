"""Run records -> tables: one row per run, then means ± std over seeds, selections and comparisons.

Everything the report and the figures state is computed here from the records, including the
verdicts of comparisons ("LoRA beats BitFit on SST-2"), so text and tables cannot disagree.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from helpers.methods import MethodConfig
from helpers.records import load_records
from helpers.tasks import get_task
from helpers.training import DEFAULT_LR, TrainConfig

_METHOD_DEFAULTS = MethodConfig()
_TRAIN_DEFAULTS = TrainConfig()
METHOD_ORDER = ["head", "bitfit", "bitfit (sparse)", "lora", "dora", "ia3", "prefix", "prompt", "ptuning", "full", "qlora"]


def runs_frame(records: list[dict]) -> pd.DataFrame:
    """One row per run record, with the settings and results the analysis needs as columns."""
    rows = []
    for record in records:
        config, method = record["config"], record["config"]["method"]
        task = get_task(config["task"])
        test = record["test"]["metrics"]
        breakdown = record["memory"].get("breakdown", {})
        architecture = record.get("model_info", {})
        row = {
            "run_id": record["run_id"],
            "task": task.name,
            "task_name": task.display_name,
            "method": method["method"],
            "variant": _variant(method),
            "rank": method.get("rank"),
            "alpha": method.get("alpha"),
            "targets": ",".join(method["target_modules"]) if method.get("target_modules") else ("query,value" if "target_modules" in method else None),
            "lora_dropout": method.get("lora_dropout"),
            "num_virtual_tokens": method.get("num_virtual_tokens"),
            "prefix_projection": method.get("prefix_projection"),
            "encoder_hidden_size": method.get("encoder_hidden_size"),
            "pooling": method.get("pooling", "model"),
            "lr": config["lr"],
            "batch_size": config["batch_size"],
            "epochs": config["epochs"],
            "warmup_ratio": config["warmup_ratio"],
            "warmup_steps": config.get("warmup_steps"),
            "length_bucket_batches": config.get("length_bucket_batches"),
            "weight_decay": config["weight_decay"],
            "grad_accum": config["grad_accum"],
            "max_length": config["max_length"],
            "max_train_samples": config["max_train_samples"],
            "max_validation_samples": config["max_validation_samples"],
            "recipe": config["recipe"],
            "seed": config["seed"],
            "model": config["model"],
            **{f"model_{key}": value for key, value in architecture.items()},
            "precision": config.get("precision_used"),
            "train_size": record["data"]["sizes"]["train"],
            "validation_size": record["data"]["sizes"]["validation"],
            "test_size": record["data"]["sizes"][task.main_test_split],
            "select_on": record["data"]["select_on"],
            "trainable": record["params"]["trainable"],
            "total": record["params"]["total"],
            "percent": record["params"]["percent"],
            "lora_closed_form": record["params"].get("lora_closed_form"),
            "main_metric": task.main_metric,
            "test": test[task.main_metric],
            "best_validation": record["best"].get("value"),
            "best_epoch": record["best"].get("epoch"),
            "train_seconds": record["timing"]["train_seconds"],
            "samples_per_second": record["timing"]["train_samples_per_second"],
            "tokens_per_second": record["timing"]["train_tokens_per_second"],
            "peak_bytes": record["memory"]["peak_bytes"],
            "memory_kind": record["memory"]["kind"],
            **{key: value for key, value in breakdown.items() if key.endswith("_bytes")},
            "memory_batch": " × ".join(map(str, breakdown.get("batch_shape", []))),
            **{f"test_{name}": value for name, value in test.items()},
            **{f"{split}_{name}": value for split, metrics in record["test"]["splits"].items() for name, value in metrics.items()},
            "device": record["versions"].get("device"),
        }
        # In-context learning runs (method `icl`) train nothing: no learning rate.
        row["default_lr"] = row["lr"] is not None and row["method"] in DEFAULT_LR and math.isclose(row["lr"], DEFAULT_LR[row["method"]], rel_tol=1e-9)
        # What always predicting the training set's most frequent label scores on the test split (NaN in old records).
        majority = record.get("majority_class", {})
        row["majority"] = majority.get(task.main_test_split, {}).get(task.main_metric, math.nan)
        row["validation_majority"] = majority.get("validation", {}).get(task.main_metric, math.nan)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame["variant"] = pd.Categorical(frame["variant"], categories=[m for m in METHOD_ORDER if m in set(frame["variant"])] + sorted(set(frame["variant"]) - set(METHOD_ORDER)), ordered=True)
    return frame


def _variant(method: dict) -> str:
    if method["method"] == "bitfit" and method.get("bitfit_variant") == "sparse":
        return "bitfit (sparse)"
    return method["method"]


def load_frame(results_dir: str | os.PathLike) -> tuple[pd.DataFrame, list[dict], list[str]]:
    """(runs frame, records, problems) for every valid record in `results_dir`."""
    records, problems = load_records(results_dir)
    return runs_frame(records), records, problems


def at_defaults(frame: pd.DataFrame, profile=None, *, vary: str | None = None, model: str | None = None) -> pd.DataFrame:
    """Runs at the default settings of their method and of the profile, except the one setting `vary`.

    Everything but the seed must match, so that groups of runs differ only by seed: the model (the
    most common one unless given), the profile's data and training settings, and each method's knobs.
    """
    if frame.empty:
        return frame
    keep = frame["model"] == (model or frame["model"].mode().iloc[0])
    keep &= frame["recipe"] == "fast"
    keep &= np.isclose(frame["weight_decay"], _TRAIN_DEFAULTS.weight_decay) & (frame["grad_accum"] == 1)
    if profile is not None:
        keep &= np.isclose(frame["epochs"], profile.epochs) & (frame["max_length"] == profile.max_length)
        for column in ("max_train_samples", "max_validation_samples"):
            wanted = getattr(profile, column)
            keep &= frame[column].isna() if wanted is None else frame[column] == wanted
        if vary != "batch_size":
            keep &= frame["batch_size"] == profile.batch_size
    if vary != "lr":
        keep &= frame["default_lr"]
    if vary != "warmup_ratio":
        keep &= np.isclose(frame["warmup_ratio"], _TRAIN_DEFAULTS.warmup_ratio)
    for column in ("warmup_steps", "length_bucket_batches"):  # settings that are unset by default
        if vary != column and column in frame:
            keep &= frame[column].isna()
    if vary != "pooling":
        keep &= frame["pooling"] == "model"
    is_lora = frame["method"].isin(["lora", "dora", "qlora"])
    keep &= ~is_lora | (np.isclose(frame["alpha"].astype(float), _METHOD_DEFAULTS.alpha) & np.isclose(frame["lora_dropout"].astype(float), _METHOD_DEFAULTS.lora_dropout))
    if vary != "rank":
        keep &= ~is_lora | (frame["rank"] == _METHOD_DEFAULTS.rank)
    if vary != "targets":
        keep &= ~is_lora | (frame["targets"] == "query,value")
    prompts = frame["method"].isin(["prefix", "prompt", "ptuning"])
    keep &= ~prompts | (frame["num_virtual_tokens"] == _METHOD_DEFAULTS.num_virtual_tokens)
    keep &= (frame["method"] != "prefix") | (frame["prefix_projection"] == _METHOD_DEFAULTS.prefix_projection)
    keep &= (frame["method"] != "ptuning") | (frame["encoder_hidden_size"] == _METHOD_DEFAULTS.encoder_hidden_size)
    return frame[keep]


def over_seeds(frame: pd.DataFrame, by: list[str], value: str = "test") -> pd.DataFrame:
    """Mean, std (n-1) and count of `value` over seeds for each group (groups must differ only by seed)."""
    repeated = frame.groupby([*by, "seed"], observed=True).size()
    if (repeated > 1).any():
        raise ValueError(f"Runs with different settings share a group {by} and seed: {repeated[repeated > 1].index.tolist()[:3]}. "
                         "Select them with analysis.at_defaults (or add the differing setting to `by`).")
    grouped = frame.groupby(by, observed=True)[value]
    table = grouped.agg(mean="mean", std="std", n="count").reset_index()
    table["std"] = table["std"].fillna(0.0)
    return table


@dataclass
class Comparison:
    """The verdict on 'does A beat B', decided from the per-seed values."""

    a: str
    b: str
    a_mean: float
    a_std: float
    b_mean: float
    b_std: float
    n_a: int
    n_b: int
    floor: float = math.nan  # the majority-class score: a mean at or below it means the runs learned nothing usable

    @property
    def difference(self) -> float:
        return self.a_mean - self.b_mean

    @property
    def margin(self) -> float:
        """Noise level: the larger of the two standard deviations (or 1 point with a single seed)."""
        spread = max(self.a_std, self.b_std)
        return spread if min(self.n_a, self.n_b) > 1 else max(spread, 0.01)

    @property
    def verdict(self) -> str:
        """'a', 'b', 'tie', or 'degenerate' when neither side beats always predicting the majority class."""
        if at_or_below(self.a_mean, self.floor) and at_or_below(self.b_mean, self.floor):
            return "degenerate"
        if abs(self.difference) <= self.margin:
            return "tie"
        return "a" if self.difference > 0 else "b"

    def sentence(self, metric: str, where: str) -> str:
        if self.verdict == "degenerate":
            return (f"On {where}, neither {self.a} ({self.a_mean:.3f}) nor {self.b} ({self.b_mean:.3f}) beats always predicting the "
                    f"majority class ({self.floor:.3f} {metric}): no comparison can be drawn from these runs.")
        if min(self.n_a, self.n_b) > 1:
            values = f"{self.a} {self.a_mean:.3f} ± {self.a_std:.3f} vs {self.b} {self.b_mean:.3f} ± {self.b_std:.3f}, {metric}, {self.n_a}/{self.n_b} seeds"
        else:
            values = f"{self.a} {self.a_mean:.3f} vs {self.b} {self.b_mean:.3f}, {metric}, one seed: differences under 0.01 count as ties"
        if self.verdict == "tie":
            return f"On {where}, {self.a} and {self.b} are within noise of each other ({values})."
        winner, loser = (self.a, self.b) if self.verdict == "a" else (self.b, self.a)
        sentence = f"On {where}, {winner} beats {loser} by {abs(self.difference):.3f} ({values})."
        if at_or_below(min(self.a_mean, self.b_mean), self.floor):
            sentence += f" {loser} does not beat always predicting the majority class ({self.floor:.3f})."
        return sentence


def at_or_below(value: float, floor: float) -> bool:
    """True when a score is no better than the majority-class floor (False when the floor is unknown)."""
    return not math.isnan(floor) and not value > floor + 1e-9  # a NaN score (a diverged run) is no better than the floor


def compare(frame: pd.DataFrame, column: str, a, b, value: str = "test", names: tuple[str, str] | None = None) -> Comparison | None:
    """Compare the runs where frame[column] == a against those where it equals b (named `names` in text)."""
    first, second = frame.loc[frame[column] == a, value], frame.loc[frame[column] == b, value]
    if first.empty or second.empty:
        return None
    names = names or (str(a), str(b))
    floor_column = {"test": "majority", "best_validation": "validation_majority"}.get(value)
    floor = float(frame[floor_column].mean()) if floor_column in frame else math.nan
    return Comparison(
        a=names[0], b=names[1],
        a_mean=float(first.mean()), a_std=float(first.std()) if len(first) > 1 else 0.0,
        b_mean=float(second.mean()), b_std=float(second.std()) if len(second) > 1 else 0.0,
        n_a=len(first), n_b=len(second), floor=floor,
    )


def pass_fail(task: str, split_metrics: dict[str, dict[str, float]]) -> str:
    """'pass' if every course baseline of every test split is met (by the given mean metrics), else the misses."""
    spec = get_task(task)
    misses = []
    for split, bars in spec.baselines.items():
        for metric, bar in bars.items():
            value = split_metrics.get(split, {}).get(metric)
            if value is None or not value >= bar:
                where = f"{split} " if len(spec.baselines) > 1 else ""
                misses.append(f"{where}{metric} {value if value is not None else float('nan'):.3f} < {bar}")
    return "pass" if not misses else "fail (" + "; ".join(misses) + ")"


def best_setting(frame: pd.DataFrame, column: str, by=("task", "method"), selection: str = "best_validation") -> pd.DataFrame:
    """Per group: the value of `column` with the best mean validation score (never the test), `tied`: every
    value within noise of it (the same rule as Comparison: the larger std of the two, at least 0.01 with
    one seed), and `degenerate`: no value beats always predicting the majority class."""
    by = list(by)
    table = over_seeds(frame, [*by, column], selection)
    floor_column = "validation_majority" if selection == "best_validation" else "majority"
    floors = frame.groupby(by, observed=True)[floor_column].mean() if floor_column in frame else None
    rows = []
    for group_key, group in table.groupby(by, observed=True):
        best = group.loc[group["mean"].idxmax()]
        margins = np.maximum(group["std"], best["std"])
        margins = np.where((group["n"] > 1) & (best["n"] > 1), margins, np.maximum(margins, 0.01))
        tied = sorted(group.loc[best["mean"] - group["mean"] <= margins, column])
        key = group_key[0] if len(by) == 1 and isinstance(group_key, tuple) else group_key
        floor = floors.get(key, math.nan) if floors is not None else math.nan
        rows.append({**best.to_dict(), "tied": tied, "degenerate": at_or_below(best["mean"], floor)})
    return pd.DataFrame(rows).rename(columns={"mean": "validation_mean", "std": "validation_std"}).reset_index(drop=True)


def best_lr(frame: pd.DataFrame, selection: str = "best_validation") -> pd.DataFrame:
    """Per task and method: the best learning rate, the rates tied with it, and whether the sweep learned anything."""
    return best_setting(frame, "lr", ("task", "method"), selection)


def lr_relation(peft: dict, full: dict) -> str:
    """'larger', 'smaller' or 'undecided': are all rates tied for best for a PEFT method above (below)
    all rates tied for best for full fine-tuning? Rows are best_lr rows; degenerate sweeps decide nothing."""
    if peft["degenerate"] or full["degenerate"]:
        return "undecided"
    if min(peft["tied"]) > max(full["tied"]):
        return "larger"
    if max(peft["tied"]) < min(full["tied"]):
        return "smaller"
    return "undecided"
