"""Run records -> tables: one row per run, then means ± std over seeds, selections and comparisons.

Everything the report and the figures state is computed here from the records, including the
verdicts of comparisons ("LoRA beats BitFit on SST-2"), so text and tables cannot disagree.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats

from helpers.methods import (
    DEFAULT_TARGETS,
    REGISTRY,
    MethodConfig,
    RegistryTuple,
    display_name,
    display_order,
    knob_owners,
)
from helpers.records import load_records
from helpers.tasks import get_task
from helpers.training import DEFAULT_LR, RESOLVED_KEYS, TrainConfig

_METHOD_DEFAULTS = MethodConfig()
_TRAIN_DEFAULTS = TrainConfig()
# Methods and variants in display order ("bitfit (sparse)" right after "bitfit"), from the method registry.
METHOD_ORDER = RegistryTuple(lambda: tuple(display_order()))
# The `targets` column: LoRA's target modules as text, the default (None) written as query and value
# whatever the architecture calls them.
DEFAULT_TARGETS_TEXT = ",".join(DEFAULT_TARGETS)
# Knob -> its column in the runs frame, where the names differ.
_KNOB_COLUMNS = {"target_modules": "targets"}


def runs_frame(records: list[dict]) -> pd.DataFrame:
    """One row per run record, with the settings and results the analysis needs as columns."""
    frame = pd.DataFrame([_run_row(record) for record in records])
    if not frame.empty:
        frame["variant"] = pd.Categorical(
            frame["variant"],
            categories=[m for m in METHOD_ORDER if m in set(frame["variant"])]
            + sorted(set(frame["variant"]) - set(METHOD_ORDER)),
            ordered=True,
        )
    return frame


def _run_row(record: dict) -> dict:
    """A record's row of the runs frame: its settings, data and parameters, results and cost, provenance."""
    task = get_task(record["config"]["task"])
    row = {
        **_setting_columns(record, task),
        **_data_and_parameter_columns(record, task),
        **_result_and_cost_columns(record, task),
        **_provenance_columns(record),
    }
    # In-context learning runs (method `icl`) train nothing: no learning rate.
    row["default_lr"] = (
        row["lr"] is not None
        and row["method"] in DEFAULT_LR
        and math.isclose(row["lr"], DEFAULT_LR[row["method"]], rel_tol=1e-9)
    )
    # What always predicting the training set's most frequent label scores on the test split (NaN in old records).
    majority = record.get("majority_class", {})
    row["majority"] = majority.get(task.main_test_split, {}).get(task.main_metric, math.nan)
    row["validation_majority"] = majority.get("validation", {}).get(task.main_metric, math.nan)
    return row


def _setting_columns(record: dict, task) -> dict:
    """The run's identity, its method's knobs, its training settings and its model's architecture."""
    config, method = record["config"], record["config"]["method"]
    return {
        "run_id": record["run_id"],
        "task": task.name,
        "task_name": task.display_name,
        "method": method["method"],
        "variant": display_name(method),
        # Every method's knobs (None where the run's method has no such knob).
        **{knob: method.get(knob) for knob in knob_owners() if knob not in _KNOB_COLUMNS},
        "targets": ",".join(method["target_modules"])
        if method.get("target_modules")
        else (DEFAULT_TARGETS_TEXT if "target_modules" in method else None),
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
        **{f"model_{key}": value for key, value in record.get("model_info", {}).items()},
    }


def _data_and_parameter_columns(record: dict, task) -> dict:
    """Precision, split sizes, the selection split and the parameter counts."""
    return {
        "precision": record["config"].get("precision_used"),
        "train_size": record["data"]["sizes"]["train"],
        "validation_size": record["data"]["sizes"]["validation"],
        "test_size": record["data"]["sizes"][task.main_test_split],
        "select_on": record["data"]["select_on"],
        "trainable": record["params"]["trainable"],
        "total": record["params"]["total"],
        "percent": record["params"]["percent"],
        "lora_closed_form": record["params"].get("lora_closed_form"),
    }


def _result_and_cost_columns(record: dict, task) -> dict:
    """Test and validation scores, then time and memory (the step breakdown's `*_bytes` as columns)."""
    test = record["test"]["metrics"]
    breakdown = record["memory"].get("breakdown", {})
    return {
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
        **{
            f"{split}_{name}": value
            for split, metrics in record["test"]["splits"].items()
            for name, value in metrics.items()
        },
    }


def _provenance_columns(record: dict) -> dict:
    """Device, token lengths, recipe version, data fingerprint and the settings at_defaults compares."""
    config = record["config"]
    return {
        "device": record["versions"].get("device"),
        **{f"{split}_tokens_mean": stats_["mean"] for split, stats_ in record["data"].get("token_lengths", {}).items()},
        "recipe_version": config.get("recipe_version", 1),
        "data_fingerprint": config.get("data_fingerprint")
        or record["data"].get("fingerprint")
        or record["data"].get("source"),
        "settings": {key: value for key, value in config.items() if key not in ("method", "seed", *RESOLVED_KEYS)},
    }


def row_knobs(row) -> dict:
    """A runs-frame row's method knobs by their MethodConfig names (the `targets` text is target_modules)."""
    return {knob: row.get(_KNOB_COLUMNS.get(knob, knob)) for knob in knob_owners()}


def load_frame(results_dir: str | os.PathLike) -> tuple[pd.DataFrame, list[dict], list[str]]:
    """(runs frame, records, problems) for every valid record in `results_dir`."""
    records, problems = load_records(results_dir)
    return runs_frame(records), records, problems


# Settings that at_defaults does not compare with the defaults: the run's identity (chosen by
# majority below), the seed, and what the method and profile decide (checked separately).
# Not compared with the profile's value: the run's identity, and eval_test (scoring the test split at every
# evaluation for curves changes nothing the run trains or selects).
_NOT_DEFAULTS = {
    "task",
    "model",
    "method",
    "seed",
    "lr",
    "precision",
    "recipe_version",
    "data_fingerprint",
    "eval_test",
}
_PROFILE_SETTINGS = {
    "epochs",
    "max_length",
    "max_train_samples",
    "max_validation_samples",
    "batch_size",
    "eval_batch_size",
}
_VARY_SETTING = {"targets": "target_modules"}


def at_defaults(
    frame: pd.DataFrame,
    profile=None,
    *,
    vary: str | None = None,
    model: str | None = None,
    alpha: str = "fixed",
    grid: bool = False,
    rates: dict | None = None,
) -> pd.DataFrame:
    """Runs at the default settings of their method and of the profile, except the one setting `vary`.

    Everything but the seed must match, so that groups of runs differ only by seed: every training
    setting of the config (data split, selection split, evaluation, batching, ...) equals its default
    or the profile's value; the model is the most common one unless given; and per task, only the
    newest recipe version and the most common data and precision are kept. LoRA's alpha is the
    default (`alpha="fixed"`) or twice the rank (`alpha="2r"`, a constant scale alpha/r = 2).
    `grid`: the profile's grid runs (their training subset); `rates`: {(task, variant): lr} to use
    instead of each method's default rate (a profile with tuned rates, see selected_lr).
    """
    if frame.empty:
        return frame
    keep = frame["model"] == (model or frame["model"].mode().iloc[0])
    reference = TrainConfig(**(profile.data_settings(grid=grid) if profile is not None else {})).to_dict()
    skipped = _NOT_DEFAULTS | {_VARY_SETTING.get(vary, vary)} | (set() if profile is not None else _PROFILE_SETTINGS)
    for name, wanted in reference.items():
        if name not in skipped:
            keep &= frame["settings"].map(
                lambda settings, name=name, wanted=wanted: _same(settings.get(name, wanted), wanted)
            )
    if vary != "lr" and rates is None:
        keep &= frame["default_lr"]
    elif vary != "lr":
        wanted_lr = [rates.get((task, str(variant))) for task, variant in zip(frame["task"], frame["variant"])]
        keep &= np.array(
            [w is not None and math.isclose(lr, w, rel_tol=1e-9) for lr, w in zip(frame["lr"], wanted_lr)], dtype=bool
        )
    if vary != "pooling":
        keep &= frame["pooling"] == "model"
    keep &= _knobs_at_defaults(frame, skip={_VARY_SETTING.get(vary, vary), "alpha"})
    has_alpha = frame["method"].isin(knob_owners()["alpha"])
    wanted_alpha = 2.0 * frame["rank"].astype(float) if alpha == "2r" else _METHOD_DEFAULTS.alpha
    keep &= ~has_alpha | np.isclose(frame["alpha"].astype(float), wanted_alpha)
    return _one_identity_per_task(frame[keep])


def _knobs_at_defaults(frame: pd.DataFrame, skip: set) -> pd.Series:
    """Rows whose method's knobs (from the registry) are at their defaults, except the knobs in `skip`.
    A variant knob (bitfit's) is free: its values are variants of their own, kept apart by `variant`."""
    keep = pd.Series(True, index=frame.index)
    variant_knobs = {spec.variant_knob for spec in REGISTRY.values()}
    for knob, methods in knob_owners().items():
        if knob in skip or knob in variant_knobs:
            continue
        column = _KNOB_COLUMNS.get(knob, knob)
        default = DEFAULT_TARGETS_TEXT if knob == "target_modules" else getattr(_METHOD_DEFAULTS, knob)
        at_default = frame[column].map(lambda value, default=default: _same(value, default))
        keep &= ~frame["method"].isin(methods) | at_default
    return keep


def _same(value, wanted) -> bool:
    if isinstance(value, (int, float)) and isinstance(wanted, (int, float)) and not isinstance(value, bool):
        return math.isclose(value, wanted, rel_tol=1e-9)
    return value == wanted


def _one_identity_per_task(frame: pd.DataFrame) -> pd.DataFrame:
    """Per task: the newest recipe version, then the most common data and precision among its runs."""
    kept = []
    for _, group in frame.groupby("task", sort=False):
        group = group[group["recipe_version"] == group["recipe_version"].max()]
        identity = group[["data_fingerprint", "precision"]].astype(str).agg("|".join, axis=1)
        kept.extend(group.index[identity == identity.mode().iloc[0]])
    return frame[frame.index.isin(kept)]


def over_seeds(frame: pd.DataFrame, by: list[str], value: str = "test") -> pd.DataFrame:
    """Mean, std (n-1) and count of `value` over seeds for each group (groups must differ only by seed)."""
    repeated = frame.groupby([*by, "seed"], observed=True).size()
    if (repeated > 1).any():
        raise ValueError(
            f"Runs with different settings share a group {by} and seed: {repeated[repeated > 1].index.tolist()[:3]}. "
            "Select them with analysis.at_defaults (or add the differing setting to `by`)."
        )
    grouped = frame.groupby(by, observed=True)[value]
    table = grouped.agg(mean="mean", std="std", n="count").reset_index()
    table["std"] = table["std"].fillna(0.0)
    intervals = [t_interval(values) for _, values in grouped]
    table["ci95_low"], table["ci95_high"] = [low for low, _ in intervals], [high for _, high in intervals]
    return table


MIN_SEEDS = 3  # seeds each side needs before a comparison is decided
ALPHA = 0.05  # significance level of Welch's t-test (two-sided)
STRONG_P = 0.01  # a decided difference with p above this is called weak evidence in the text


def t_interval(values, confidence: float = 0.95) -> tuple[float, float]:
    """Student-t interval for the mean over seeds; (nan, nan) with fewer than two values."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return math.nan, math.nan
    half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return float(values.mean() - half), float(values.mean() + half)


def welch(a, b) -> tuple[float, float, float]:
    """Welch's t-test of mean(a) - mean(b): (p-value, 95% interval low, high) of the difference.

    Two sets of seeds with no spread at all (identical runs) have p = 0 if their means differ, 1 if not.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    difference = a.mean() - b.mean()
    var_a, var_b = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    if var_a + var_b < 1e-18:  # no spread (up to rounding): scipy's test is undefined
        return (0.0 if difference != 0 else 1.0), difference, difference
    with warnings.catch_warnings():  # nearly identical seeds (e.g. all at the majority class): scipy warns of
        warnings.simplefilter("ignore", RuntimeWarning)  # precision loss, and its p-value is still the right one
        p_value = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    dof = (var_a + var_b) ** 2 / (var_a**2 / (len(a) - 1) + var_b**2 / (len(b) - 1))
    half = stats.t.ppf(0.975, dof) * math.sqrt(var_a + var_b)
    return p_value, float(difference - half), float(difference + half)


def gap_closed_interval(method, floor, ceiling, draws: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of (mean(method) − mean(floor)) / (mean(ceiling) − mean(floor)),
    resampling each group's seeds with replacement (with 3 seeds a group, a rough interval)."""
    rng = np.random.default_rng(seed)
    means = [
        rng.choice(np.asarray(values, dtype=float), size=(draws, len(values))).mean(axis=1)
        for values in (method, floor, ceiling)
    ]
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = (means[0] - means[1]) / (means[2] - means[1])
    low, high = np.nanpercentile(shares, [2.5, 97.5])
    return float(low), float(high)


def worse_than(best, values) -> bool:
    """Are `values` (one grid value's seeds) significantly below `best` (the best value's, at least
    MIN_SEEDS)? With MIN_SEEDS seeds a side, Welch's t-test (two-sided, ALPHA). With fewer (a grid
    point that only seed 0 ran), their mean is tested against the best's spread: worse when it lies
    below the 95% prediction interval for the mean of that many new seeds of the best value,
    mean ± t(n-1) · std · sqrt(1/n + 1/k). No spread in `best`: any lower mean is worse, as in `welch`."""
    best, values = np.asarray(best, dtype=float), np.asarray(values, dtype=float)
    if len(values) >= MIN_SEEDS:
        p_value, _, _ = welch(best, values)
        return p_value < ALPHA and values.mean() < best.mean()
    half = stats.t.ppf(1 - ALPHA / 2, len(best) - 1) * best.std(ddof=1) * math.sqrt(1 / len(best) + 1 / len(values))
    return bool(values.mean() < best.mean() - half)


@dataclass
class Comparison:
    """The verdict on 'does A beat B', decided from the per-seed values by Welch's t-test.

    A side needs at least MIN_SEEDS seeds; with fewer the verdict is 'undecided'. With enough, A
    beats B when the two-sided p-value is under ALPHA; otherwise they are within noise ('tie').
    """

    a: str
    b: str
    a_values: tuple[float, ...]
    b_values: tuple[float, ...]
    floor: float = math.nan  # the majority-class score: a mean at or below it means the runs learned nothing usable

    a_mean = property(lambda self: float(np.mean(self.a_values)))
    b_mean = property(lambda self: float(np.mean(self.b_values)))
    a_std = property(lambda self: float(np.std(self.a_values, ddof=1)) if len(self.a_values) > 1 else 0.0)
    b_std = property(lambda self: float(np.std(self.b_values, ddof=1)) if len(self.b_values) > 1 else 0.0)
    n_a = property(lambda self: len(self.a_values))
    n_b = property(lambda self: len(self.b_values))

    @property
    def difference(self) -> float:
        return self.a_mean - self.b_mean

    @property
    def decided(self) -> bool:
        return min(self.n_a, self.n_b) >= MIN_SEEDS

    @property
    def test(self) -> tuple[float, float, float]:
        """(p-value, 95% interval of the difference): NaNs when undecided."""
        return welch(self.a_values, self.b_values) if self.decided else (math.nan, math.nan, math.nan)

    @property
    def verdict(self) -> str:
        """'a', 'b', 'tie', 'undecided' (too few seeds), or 'degenerate' when neither side beats the majority class."""
        if at_or_below(self.a_mean, self.floor) and at_or_below(self.b_mean, self.floor):
            return "degenerate"
        if not self.decided:
            return "undecided"
        if not self.test[0] < ALPHA:
            return "tie"
        return "a" if self.difference > 0 else "b"

    def sentence(self, metric: str, where: str) -> str:
        if self.verdict == "degenerate":
            return (
                f"On {where}, neither {self.a} ({self.a_mean:.3f}) nor {self.b} ({self.b_mean:.3f}) beats always "
                "predicting the "
                f"majority class ({self.floor:.3f} {metric}): no comparison can be drawn from these runs."
            )
        values = (
            f"{self.a} {self.a_mean:.3f} ± {self.a_std:.3f} vs {self.b} {self.b_mean:.3f} ± {self.b_std:.3f}, "
            f"{metric}, {self.n_a}/{self.n_b} seeds"
        )
        if self.verdict == "undecided":
            return (
                f"On {where}, {self.a} and {self.b} cannot be compared yet ({values}): a verdict needs at least "
                f"{MIN_SEEDS} "
                f"seeds a side; undecided ({min(self.n_a, self.n_b)} "
                f"seed{'s' if min(self.n_a, self.n_b) != 1 else ''})."
            )
        p_value, low, high = self.test
        winner, loser = (self.b, self.a) if self.verdict == "b" else (self.a, self.b)
        if self.verdict == "b":  # the interval of winner − loser, so that a win reads as a positive interval
            low, high = -high, -low
        test = (
            f"Welch's t-test p = {p_value:.3f}; 95% interval of the difference {winner} − {loser} "
            f"{low:+.3f} to {high:+.3f}"
        )
        if self.verdict == "tie":
            return f"On {where}, {self.a} and {self.b} are within noise of each other ({values}; {test})."
        sentence = f"On {where}, {winner} beats {loser} by {abs(self.difference):.3f} ({values}; {test})."
        if p_value >= STRONG_P:
            sentence += f" Weak evidence ({STRONG_P:g} ≤ p < {ALPHA:g}, one of many uncorrected comparisons)."
        if at_or_below(min(self.a_mean, self.b_mean), self.floor):
            sentence += f" {loser} does not beat always predicting the majority class ({self.floor:.3f})."
        return sentence


def at_or_below(value: float, floor: float) -> bool:
    """True when a score is no better than the majority-class floor (False when the floor is unknown)."""
    return (
        not math.isnan(floor) and not value > floor + 1e-9
    )  # a NaN score (a diverged run) is no better than the floor


def compare(
    frame: pd.DataFrame, column: str, a, b, value: str = "test", names: tuple[str, str] | None = None
) -> Comparison | None:
    """Compare the runs where frame[column] == a against those where it equals b (named `names` in text)."""
    first, second = frame.loc[frame[column] == a, value], frame.loc[frame[column] == b, value]
    if first.empty or second.empty:
        return None
    names = names or (str(a), str(b))
    floor_column = {"test": "majority", "best_validation": "validation_majority"}.get(value)
    floor = float(frame[floor_column].mean()) if floor_column in frame else math.nan
    return Comparison(
        a=names[0], b=names[1], a_values=tuple(map(float, first)), b_values=tuple(map(float, second)), floor=floor
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


def best_setting(
    frame: pd.DataFrame, column: str, by=("task", "method"), selection: str = "best_validation"
) -> pd.DataFrame:
    """Per group: among the values with the most seeds, the one with the best mean validation score
    (never the test); `tied`: every value not significantly worse than it (`worse_than`); `decided`:
    whether the best value has MIN_SEEDS seeds (otherwise `tied` lists every value within 0.01 of
    the best, a hint, not a verdict); `degenerate`: no value beats the majority class; `edge`: the
    best is the smallest or largest value tried (one beyond it might be better)."""
    by = list(by)
    table = over_seeds(frame, [*by, column], selection)
    floor_column = "validation_majority" if selection == "best_validation" else "majority"
    floors = frame.groupby(by, observed=True)[floor_column].mean() if floor_column in frame else None
    rows = []
    for group_key, group in table.groupby(by, observed=True):
        most = group[group["n"] == group["n"].max()]  # a lucky single seed does not outrank three
        best = most.loc[most["mean"].idxmax()]
        if column == "lr" and "method" in by:
            default = default_if_all_tied(dict(zip(most["lr"], most["mean"])), group["method"].iloc[0])
            best = most.loc[np.isclose(most["lr"], default)].iloc[0] if default is not None else best
        key = group_key[0] if len(by) == 1 and isinstance(group_key, tuple) else group_key
        members = frame[
            (frame[by] == pd.Series(dict(zip(by, group_key if isinstance(group_key, tuple) else (group_key,))))).all(
                axis=1
            )
        ]
        per_value = {
            value: members.loc[members[column] == value, selection].dropna().to_numpy() for value in group[column]
        }
        decided = bool(best["n"] >= MIN_SEEDS)
        if decided:
            tied = sorted(
                value
                for value, values in per_value.items()
                if value == best[column] or not worse_than(per_value[best[column]], values)
            )
        else:
            tied = sorted(group.loc[best["mean"] - group["mean"] <= 0.01, column])
        floor = floors.get(key, math.nan) if floors is not None else math.nan
        # The best value at an end of the values tried: a value beyond it was not tried and might be better.
        edge = len(group) > 1 and best[column] in (group[column].min(), group[column].max())
        rows.append(
            {
                **best.to_dict(),
                "tied": tied,
                "decided": decided,
                "degenerate": at_or_below(best["mean"], floor),
                "edge": bool(edge),
                "values": list(per_value[best[column]]),
                "seeds_per_value": {value: len(values) for value, values in per_value.items()},
            }
        )
    return (
        pd.DataFrame(rows).rename(columns={"mean": "validation_mean", "std": "validation_std"}).reset_index(drop=True)
    )


def all_tied(scores) -> bool:
    """Did every rate of a grid score the same (nothing learned more than the majority class)?"""
    values = list(scores)
    return len(values) > 0 and max(values) - min(values) <= 1e-9


def default_if_all_tied(means: dict[float, float], method: str) -> float | None:
    """The rule every rate selection shares (best_setting, selected_lr, helpers.study): where every rate
    scored the same mean (nothing learned at any rate), the method's default rate if it was tried; else None
    (the best mean decides)."""
    default = DEFAULT_LR.get(method)
    tried = default is not None and any(math.isclose(rate, default, rel_tol=1e-9) for rate in means)
    return default if tried and all_tied(means.values()) else None


def best_lr(frame: pd.DataFrame, selection: str = "best_validation") -> pd.DataFrame:
    """Per task and method variant (BitFit and sparse BitFit apart): the best learning rate, the rates tied
    with it, and whether the sweep learned anything."""
    return best_setting(frame, "lr", ("task", "method", "variant"), selection)


def selected_lr(grid: pd.DataFrame, selection: str = "best_validation") -> dict[tuple[str, str], float]:
    """Per (task, variant): the learning rate a study uses after its grid: among the rates with the
    most seeds, the best mean validation score; where every such rate scored the same, the method's default
    rate if it is one of them (default_if_all_tied). The study trains its final runs at this rate
    (helpers.study.selected_rates for tiers 1-3, its short searches for tiers 4-5: the same rules)."""
    chosen = {}
    for (task, variant), group in grid.groupby(["task", "variant"], observed=True):
        table = over_seeds(group, ["lr"], selection)
        table = table[table["n"] == table["n"].max()]
        default = default_if_all_tied(dict(zip(table["lr"], table["mean"])), group["method"].iloc[0])
        chosen[(task, str(variant))] = (
            default if default is not None else float(table.loc[table["mean"].idxmax(), "lr"])
        )
    return chosen


def lr_relation(peft: dict, full: dict) -> str:
    """'larger', 'smaller' or 'undecided': are all rates tied for best for a PEFT method above (below)
    all rates tied for best for full fine-tuning? Rows are best_lr rows; degenerate sweeps, and sweeps
    with fewer than MIN_SEEDS seeds per rate, decide nothing."""
    if peft["degenerate"] or full["degenerate"] or not (peft.get("decided", False) and full.get("decided", False)):
        return "undecided"
    if min(peft["tied"]) > max(full["tied"]):
        return "larger"
    if max(peft["tied"]) < min(full["tied"]):
        return "smaller"
    return "undecided"


# Tables shown by both the report and the notebooks: one function each, so the two cannot drift apart.


def profile_runs(
    frame: pd.DataFrame, profile, *, vary: str | None = None, grid: bool = False, alpha: str = "fixed"
) -> pd.DataFrame:
    """The runs at the profile's settings except `vary`, each method at the profile's learning rate:
    the rate the profile sets for it on the task (Profile.rates), else its default rate; for a profile
    with tuned rates, the one its grid selected (selected_lr)."""
    rates = None
    if profile.tuned_lr:
        rates = selected_lr(at_defaults(frame, profile, vary="lr", grid=True))
    elif profile.rates:
        rates = {
            (task, str(variant)): profile.rate(task, method) or DEFAULT_LR[method]
            for task, variant, method in zip(frame["task"], frame["variant"], frame["method"])
            if method in DEFAULT_LR
        }
    return at_defaults(frame, profile, vary=vary, grid=grid, alpha=alpha, rates=rates)


def lr_sweep_runs(frame: pd.DataFrame, profile) -> pd.DataFrame:
    """Learning-rate sweep runs: defaults except the learning rate, for methods tried at several rates."""
    lrs = at_defaults(frame, profile, vary="lr", grid=True)
    return lrs[lrs.groupby(["task", "variant"], observed=True)["lr"].transform("nunique") > 1]


def runs_per_budget(frame: pd.DataFrame, profile) -> list[tuple[float, pd.DataFrame]]:
    """(epochs, runs): the runs at the profile's settings, then those of each longer epoch budget
    (longer_training_runs), shortest first."""
    budgets = [(float(profile.epochs), profile_runs(frame, profile))]
    longer = longer_training_runs(frame, profile)
    if not longer.empty:
        budgets += [(float(epochs), runs) for epochs, runs in longer.groupby("epochs") if epochs != profile.epochs]
    return budgets


def comparisons_per_budget(
    frame: pd.DataFrame, profile, a: str, b: str, names: tuple[str, str]
) -> list[tuple[str, float, Comparison]]:
    """(task, epochs, variant a vs variant b) for each task at the profile's settings and at each longer epoch
    budget where both trained (runs_per_budget), in that order: a verdict per training budget."""
    found = []
    for epochs, runs in runs_per_budget(frame, profile):
        for task in dict.fromkeys(runs["task"]):
            comparison = compare(runs[runs["task"] == task], "variant", a, b, names=names)
            if comparison:
                found.append((task, epochs, comparison))
    return found


def longer_training_table(frame: pd.DataFrame, profile, method: str) -> pd.DataFrame:
    """One method's longer_training_runs over seeds (test metric) per task, rate and epochs; empty if none."""
    runs = longer_training_runs(frame, profile)
    runs = runs[runs["method"] == method] if not runs.empty else runs
    return over_seeds(runs, ["task", "variant", "lr", "epochs"]) if not runs.empty else runs


def longer_training_runs(frame: pd.DataFrame, profile) -> pd.DataFrame:
    """Runs at the profile's settings but trained for more epochs (at any learning rate), with the runs
    at the profile's epochs of the same task, method and rate on as many training examples to read
    them against (whole-set runs, else the grid's when its cap holds the whole set; never both, so a
    run is not counted twice). Empty when no run trained longer."""
    if frame.empty:
        return frame
    longer = [
        at_defaults(frame, replace(profile, epochs=epochs), vary="lr")
        for epochs in sorted(set(frame["epochs"]))
        if epochs > profile.epochs
    ]
    longer = pd.concat(longer) if longer else frame.iloc[:0]
    if longer.empty:
        return longer
    kept = [longer]
    for (task, variant, lr, size), _ in longer.groupby(["task", "variant", "lr", "train_size"], observed=True):
        for grid in (False, True):
            runs = at_defaults(frame, profile, vary="lr", grid=grid)
            runs = runs[
                (runs["task"] == task)
                & (runs["variant"] == variant)
                & np.isclose(runs["lr"], lr)
                & (runs["train_size"] == size)
            ]
            if not runs.empty:
                kept.append(runs)
                break
    return pd.concat(kept).reset_index(drop=True)


COURSE_PEFT = ("bitfit", "lora")  # the course baselines are to be met with one of these (issue 12)
PEFT_BUDGET_PERCENT = 1.0  # the study's bound for "parameter-efficient": at most 1% of the parameters trained


def compared_runs(frame: pd.DataFrame, profile) -> pd.DataFrame:
    """Every run the study compares methods with: at the profile's settings and selected rates
    (profile_runs), and the same methods trained for more epochs (longer_training_runs)."""
    runs = pd.concat([profile_runs(frame, profile), longer_training_runs(frame, profile)])
    return runs.drop_duplicates("run_id").reset_index(drop=True) if not runs.empty else runs


def best_groups(runs: pd.DataFrame, methods) -> pd.DataFrame:
    """Per task, the (method, epochs, rate) group of `methods` with the best mean validation score
    among those with at least MIN_SEEDS seeds (selected on validation, never the test), with its mean,
    std and per-seed values of the test metric."""
    runs = runs[runs["method"].isin(list(methods))]
    keys = ["task", "variant", "epochs", "lr"]
    table = over_seeds(runs, keys, "best_validation") if not runs.empty else pd.DataFrame()
    table = table[table["n"] >= MIN_SEEDS] if not table.empty else table
    if table.empty:
        return table
    best = table.loc[table.groupby("task", observed=True)["mean"].idxmax(), keys].reset_index(drop=True)
    tests = over_seeds(runs, keys).merge(best, on=keys)
    values = [
        tuple(
            map(
                float,
                runs.loc[(runs[keys[:3]] == row[keys[:3]]).all(axis=1) & np.isclose(runs["lr"], row["lr"]), "test"],
            )
        )
        for _, row in tests.iterrows()
    ]
    return tests.assign(values=values)


def targets_table(frame: pd.DataFrame, profile) -> pd.DataFrame:
    """Per task: the course baseline (main test metric), the best BitFit or LoRA group and the best
    full fine-tuning group of compared_runs (mean ± std, 95% interval, which epochs and rate), whether
    the PEFT mean meets the baseline, and PEFT against full fine-tuning by Welch's t-test."""
    runs = compared_runs(frame, profile)
    peft, full = best_groups(runs, COURSE_PEFT), best_groups(runs, ("full",))
    rows = []
    for task in dict.fromkeys(runs["task"]):
        spec = get_task(task)
        bar = spec.baselines.get(spec.main_test_split, {}).get(spec.main_metric)
        row = {"task": spec.display_name, "course baseline": f"{spec.main_metric} ≥ {bar}" if bar else ""}
        sides = {}
        for name, best in (("BitFit or LoRA", peft), ("full fine-tuning", full)):
            found = best[best["task"] == task] if not best.empty else best
            if found.empty:
                row[f"best {name}"] = f"no group of {MIN_SEEDS} seeds"
                continue
            top = found.iloc[0]
            sides[name] = top
            row[f"best {name}"] = (
                f"{top['variant']} ({top['epochs']:g} epochs, lr {top['lr']:g}): "
                f"{mean_std_text(top['mean'], top['std'], int(top['n']))} [{interval_text(top['values'])}]"
            )
        if "BitFit or LoRA" in sides and bar:
            top = sides["BitFit or LoRA"]
            low, high = t_interval(top["values"])
            row["baseline met?"] = (
                "yes"
                if top["mean"] >= bar
                else f"no, by {bar - top['mean']:.3f}" + (" (interval reaches it)" if high >= bar else "")
            )
        if len(sides) == 2:
            comparison = Comparison(
                "BitFit or LoRA",
                "full fine-tuning",
                sides["BitFit or LoRA"]["values"],
                sides["full fine-tuning"]["values"],
            )
            p_value, _, _ = comparison.test
            verdict = {"a": "PEFT ahead", "b": "full ahead", "tie": "within noise"}.get(
                comparison.verdict, comparison.verdict
            )
            row["PEFT − full"] = f"{comparison.difference:+.3f} ({verdict}, p = {p_value:.2g})"
            budgets = [sides[name]["epochs"] for name in ("BitFit or LoRA", "full fine-tuning")]
            if budgets[0] != budgets[1]:  # the best of each side may come from a different number of epochs
                row["PEFT − full"] += f"; at {budgets[0]:g} vs {budgets[1]:g} epochs"
        rows.append(row)
    return pd.DataFrame(rows).fillna("")


def lora_grid_runs(frame: pd.DataFrame, profile, vary: str, alpha: str = "fixed") -> pd.DataFrame:
    """LoRA's grid runs over one setting (`rank`, `batch_size`, `warmup_ratio`): the profile's grid
    settings except `vary`; `alpha` as in at_defaults ("fixed", or "2r" for a constant scale)."""
    return profile_runs(frame[frame["method"] == "lora"], profile, vary=vary, grid=True, alpha=alpha)


def _varied(runs: pd.DataFrame, vary: str) -> pd.DataFrame:
    """The runs of the (task, variant) groups where `vary` takes more than one value: a task with runs at
    the profile's value alone (CoLA's, from its rate search) is not a grid over it."""
    if runs.empty:
        return runs
    return runs[runs.groupby(["task", "variant"], observed=True)[vary].transform("nunique") > 1]


SETTING_GRID_METHODS = ("bitfit", "lora")  # the methods whose batch size and warmup the grids vary (study tier 3)


def setting_grid_runs(frame: pd.DataFrame, profile, vary: str) -> pd.DataFrame:
    """BitFit's and LoRA's grid runs over `batch_size` or `warmup_ratio`: the profile's grid settings
    except `vary`, each method at the profile's rate."""
    return _varied(profile_runs(frame[frame["method"].isin(SETTING_GRID_METHODS)], profile, vary=vary, grid=True), vary)


def mean_std_text(mean: float, std: float, n: int) -> str:
    """'mean ± std' to three decimals, or the mean alone for a single seed."""
    return f"{mean:.3f} ± {std:.3f}" if n > 1 else f"{mean:.3f}"


def interval_text(values) -> str:
    """The 95% t-interval of the mean over seeds as 'low–high', or '' with fewer than two seeds."""
    low, high = t_interval(values)
    return "" if math.isnan(low) else f"{low:.3f}–{high:.3f}"


def seed_summary(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """over_seeds of the test metric with its columns named for display (test mean, test std, seeds)."""
    return over_seeds(frame, by).rename(columns={"mean": "test mean", "std": "test std", "n": "seeds"})


def run_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """How many run records there are per task (rows) and method variant (columns)."""
    return frame.groupby(["task", "variant"], observed=True).size().unstack(fill_value=0)


def results_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Test results per task and method: mean ± std over seeds of every test split and metric,
    trainable %, and pass/fail of the means against the course baselines."""
    rows = []
    for (task, variant), group in frame.groupby(["task", "variant"], observed=True):
        spec = get_task(task)
        cells, means = {}, {}
        for split in spec.test_splits:
            prefix = "" if len(spec.test_splits) == 1 else f"{split} "
            for metric in spec.metrics:
                values = group[f"{split}_{metric}"]
                means.setdefault(split, {})[metric] = values.mean()
                text = mean_std_text(values.mean(), values.std() if len(values) > 1 else 0.0, len(values))
                cells[(split, metric)] = (f"{prefix}{metric}", text)
        main = cells.pop((spec.main_test_split, spec.main_metric))
        majority = group["majority"].mean() if "majority" in group else float("nan")
        rows.append(
            {
                "task": spec.display_name,
                "method": str(variant),
                "seeds": len(group),
                "trainable": f"{int(group['trainable'].iloc[0]):,} ({group['percent'].iloc[0]:.3g}%)",
                "metric": main[0],
                "test": main[1],  # one column for every task's main metric, so tasks scored differently share it
                "95% interval": interval_text(group["test"]),
                "other test metrics": "; ".join(f"{name} {text}" for name, text in cells.values()),
                "majority class": ""
                if pd.isna(majority)
                else f"{majority:.3f}"
                + (" (not beaten: learned nothing)" if at_or_below(group["test"].mean(), majority) else ""),
                "course baseline": "; ".join(
                    f"{metric} ≥ {bar}" + (f" ({split})" if len(spec.baselines) > 1 else "")
                    for split, bars in spec.baselines.items()
                    for metric, bar in bars.items()
                ),
                "pass/fail (mean)": pass_fail(task, means),
            }
        )
    return pd.DataFrame(rows).fillna("")


def cost_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per method: trainable parameters, training speed (the fastest seed's, per task where there are
    several: a task's examples have their own lengths, and a busy machine only ever slows a run down, so
    the fastest run is the closest to the machine's speed) and the memory of one training step (MiB):
    activations saved for backward and the step's total (parameters + gradients + AdamW state +
    activations, `total_bytes`); on CUDA also the allocator's peak over the whole run (`peak_bytes`)."""
    table = (
        runs.groupby("variant", observed=True)
        .agg(
            trainable=("trainable", "first"),
            activations_MiB=("activations_bytes", "mean"),
            step_MiB=("total_bytes", "mean"),
            run_peak_MiB=("peak_bytes", "mean"),
            precision=("precision", "first"),
        )
        .reset_index()
    )
    fastest = fastest_runs(runs)
    speeds = fastest.pivot_table(index="variant", columns="task", values="samples_per_second", observed=True).round(1)
    tasks = list(dict.fromkeys(runs["task"]))
    for position, task in enumerate(tasks, start=2):
        name = "samples_per_second" + (f" ({get_task(task).display_name})" if len(tasks) > 1 else "")
        speed = speeds[task] if task in speeds else pd.Series(dtype=float)
        table.insert(position, name, table["variant"].map(speed).to_numpy())
    if fastest["device"].nunique() > 1:  # speeds from different machines do not compare: name each one's
        devices = fastest.groupby("variant", observed=True)["device"].agg(lambda d: " / ".join(sorted(set(d))))
        table["speed measured on"] = table["variant"].map(devices).to_numpy()
    table["trainable"] = table["trainable"].map(lambda v: f"{int(v):,}")
    for column in ("activations_MiB", "step_MiB", "run_peak_MiB"):
        table[column] = (table[column] / 2**20).round(1)
    if not measured_on_cuda(runs):  # a CPU has no allocator peak: peak_bytes there is the step's total again
        table = table.drop(columns="run_peak_MiB")
    return table


def fastest_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Per method and task, the run that trained fastest (see cost_table)."""
    timed = runs.dropna(subset=["samples_per_second"])
    fastest = timed.loc[timed.groupby(["variant", "task"], observed=True)["samples_per_second"].idxmax()]
    device = fastest["device"] if "device" in fastest else pd.Series(None, index=fastest.index, dtype=object)
    return fastest.assign(device=device.fillna("unknown device"))


def measured_on_cuda(runs: pd.DataFrame) -> bool:
    """Whether the runs' memory was read from the CUDA allocator (else from the CPU step breakdown)."""
    return runs["memory_kind"].iloc[0] == "cuda_max_allocated"


def rank_parameters(ranks: pd.DataFrame) -> pd.DataFrame:
    """Per LoRA rank: the trainable parameters counted in the wrapped model, the closed form computed
    from the architecture at training time, the percent trained, and whether count and form agree."""
    params = (
        ranks.groupby("rank")
        .agg(counted=("trainable", "first"), closed_form=("lora_closed_form", "first"), percent=("percent", "first"))
        .reset_index()
    )
    params[["counted", "closed_form"]] = params[["counted", "closed_form"]].astype(int)
    params["agree"] = params["counted"] == params["closed_form"]
    return params


def rank_scores(ranks: pd.DataFrame) -> pd.DataFrame:
    """Per task and LoRA rank: the test metric over seeds, tasks in order of appearance, ranks ascending."""
    tasks = list(dict.fromkeys(ranks["task"]))
    if not tasks:
        return pd.DataFrame(columns=["task", "rank", "mean", "std", "n", "ci95_low", "ci95_high"])
    tables = [
        over_seeds(ranks[ranks["task"] == task], ["rank"]).sort_values("rank").assign(task=task) for task in tasks
    ]
    table = pd.concat(tables, ignore_index=True)
    return table[["task", *[c for c in table.columns if c != "task"]]]


def best_lr_table(best: pd.DataFrame) -> pd.DataFrame:
    """best_lr's rows for display: the best rate per task and method, its validation mean, the rates
    within noise of it, and whether the sweep learned anything (against the validation slice's majority
    class; §2's tables read the test set's)."""
    shown = best.copy()
    shown["task"] = shown["task"].map(lambda t: get_task(t).display_name)
    shown["method"] = shown["variant"].astype(str)
    shown = shown.rename(columns={"validation_mean": "best validation (mean)", "validation_std": "std", "n": "seeds"})
    shown["95% interval"] = [interval_text(values) for values in best["values"]]
    shown["within noise of the best"] = [
        ", ".join(_rate_with_seeds(r, row["seeds_per_value"]) if row["decided"] else f"{r:g}" for r in row["tied"])
        + ("" if row["decided"] else f" (undecided: {int(row['seeds'])} seed(s))")
        for _, row in shown.iterrows()
    ]
    shown["best validation (mean)"] = [f"{v:.3f}" for v in shown["best validation (mean)"]]
    shown["std"] = [f"{v:.3f}" if n > 1 else "–" for v, n in zip(shown["std"], shown["seeds"])]
    shown["95% interval"] = [text or "–" for text in shown["95% interval"]]
    shown["learned? (validation)"] = shown["degenerate"].map(
        lambda d: "no: its majority class" if d else "yes: above its majority class"
    )
    edge = shown["edge"] & ~shown["degenerate"]
    shown["lr"] = [f"{lr:g}" + (" (grid edge)" if at_edge else "") for lr, at_edge in zip(shown["lr"], edge)]
    columns = [
        "task",
        "method",
        "lr",
        "best validation (mean)",
        "std",
        "seeds",
        "95% interval",
        "within noise of the best",
        "learned? (validation)",
    ]
    return shown[columns]


def _rate_with_seeds(rate: float, seeds: dict) -> str:
    """A rate as best_lr_table lists it; one with fewer than MIN_SEEDS seeds says so: it is not ruled out,
    which is weaker than tied (worse_than tests it against the best's spread)."""
    n = seeds.get(rate, MIN_SEEDS)
    return f"{rate:g}" + (f" ({n} seed{'s' * (n > 1)}: not ruled out)" if n < MIN_SEEDS else "")


def pooling_runs(frame: pd.DataFrame, profile) -> pd.DataFrame:
    """Runs at the profile's settings except the pooling, for (task, method) pairs tried with several poolings."""
    pooled = profile_runs(frame, profile, vary="pooling")
    return compared_poolings(pooled)


def compared_poolings(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of the (task, method) pairs that were trained with more than one pooling."""
    return runs[runs.groupby(["task", "variant"], observed=True)["pooling"].transform("nunique") > 1]


def pooling_comparisons(runs: pd.DataFrame) -> list[tuple[str, str, Comparison]]:
    """(task, variant, mean pooling vs [CLS] pooling) for every pair compared on both poolings."""
    comparisons = []
    for (task, variant), group in compared_poolings(runs).groupby(["task", "variant"], observed=True):
        comparison = compare(group, "pooling", "mean", "model", names=("mean pooling", "[CLS] pooling"))
        if comparison:
            comparisons.append((task, str(variant), comparison))
    return comparisons


def task_sentence(comparison: Comparison, task: str) -> str:
    """The comparison's sentence in the task's main metric and display name."""
    return comparison.sentence(get_task(task).main_metric, get_task(task).display_name)
