""" "Targets at a glance": the course targets against the best BitFit or LoRA and the best full fine-tuning."""

from __future__ import annotations

import math

import pandas as pd

from helpers import analysis
from helpers.report.markdown import _table
from helpers.tasks import MINILM_PAPER, get_task

STRETCH_POINTS = 0.02  # the stretch target: within 2 points of published full fine-tuning of this model size


def _targets_section(frame, profile) -> list[str]:
    """The course targets first: the best BitFit or LoRA and the best full fine-tuning per task (selected on
    validation over the compared runs, the profile's and those trained longer), what learned nothing, and
    the tasks the plan names that have no runs yet."""
    table = analysis.targets_table(frame, profile)
    if table.empty:
        return []
    out = [
        "## Targets at a glance\n",
        "Per task, the best BitFit or LoRA group and the best full fine-tuning group among the runs this report "
        f"compares (each method at its selected rate, and the same trained for more epochs; at least "
        f"{analysis.MIN_SEEDS} seeds; the group is selected on validation, the cell gives its test mean ± std and "
        "[95% interval]); PEFT − full is the difference of the test means, decided by Welch's t-test:\n",
        _table(table) + "\n",
    ]
    runs = analysis.compared_runs(frame, profile)
    lines = [_test_sampling(runs), *_other_peft_method(runs)]
    if "PEFT − full" in table and table["PEFT − full"].astype(bool).any():
        ahead = table.loc[table["PEFT − full"].str.contains("PEFT ahead"), "task"].tolist()
        lines.append(
            "- Stretch, a PEFT method beats our tuned full fine-tuning on at least one task: "
            + (f"met on {', '.join(ahead)}." if ahead else "not shown: on no task is the PEFT side ahead (table).")
        )
    for task in dict.fromkeys(runs["task"]):
        spec = get_task(task)
        published = spec.published.get(f"full fine-tuning, {MINILM_PAPER}")  # a model this size
        best = analysis.best_groups(runs[runs["task"] == task], analysis.COURSE_PEFT)
        bar = spec.baselines.get(spec.main_test_split, {}).get(spec.main_metric)
        if published is not None and not best.empty and bar is not None and published / 100 < bar:
            # The course's bar lies above what a model this size is published to reach: say how close we get.
            mean, variant = best["mean"].iloc[0], best["variant"].iloc[0]
            standing = "above" if mean > published / 100 else "below"
            lines.append(
                f"- {spec.display_name}: the course target ({spec.main_metric} ≥ {bar}) lies above the published full "
                f"fine-tuning of a model this size ({published / 100:.3f}); the best BitFit or LoRA ({variant}, "
                f"{mean:.3f}) is {abs(mean - published / 100):.3f} {standing} that published figure and "
                f"{bar - mean:.3f} short of the target."
                if mean < bar
                else f"- {spec.display_name}: the course target ({spec.main_metric} ≥ {bar}) is met ({variant}, "
                f"{mean:.3f}), above the published full fine-tuning of a model this size ({published / 100:.3f})."
            )
        elif published is not None and not best.empty:
            stretch = published / 100 - STRETCH_POINTS
            mean = best["mean"].iloc[0]
            lines.append(
                f"- {spec.display_name}, stretch (within {STRETCH_POINTS * 100:g} points of the published full "
                f"fine-tuning of a model this size, {published / 100:.3f}, i.e. ≥ {stretch:.3f}): "
                + ("met" if mean >= stretch else f"missed by {stretch - mean:.3f}")
                + f" ({best['variant'].iloc[0]} {mean:.3f})."
            )
    lines += _against_the_majority(runs)
    if profile.from_study:
        from helpers.study import OTHER_TASKS

        missing = [get_task(t).display_name for t in OTHER_TASKS if t not in set(runs["task"])]
        if missing:
            lines.append(
                f"- {' and '.join(missing)}: no runs at a selected rate in these records yet (the study's tier 5, "
                "`python -m helpers.study --tier 5`; its rate search comes first, §3)."
            )
    return out + (["\n".join(lines) + "\n"] if lines else [])


def _against_the_majority(runs: pd.DataFrame) -> list[str]:
    """The groups (task, method, epochs, rate) that do not beat always answering the majority class: their
    mean at or below it (learned nothing), or their 95% interval over seeds reaching it (not shown to beat it)."""
    groups = analysis.over_seeds(runs, ["task", "variant", "epochs", "lr"]).merge(
        runs.groupby(["task", "variant"], observed=True)["majority"].mean().reset_index(), on=["task", "variant"]
    )
    nothing, unshown = [], []
    for _, row in groups.iterrows():
        where = f"{get_task(row['task']).display_name} {row['variant']} ({row['epochs']:g} epochs, lr {row['lr']:g})"
        if analysis.at_or_below(row["mean"], row["majority"]):
            nothing.append(f"{where} {row['mean']:.3f} vs {row['majority']:.3f}")
        elif row["n"] >= analysis.MIN_SEEDS and row["ci95_low"] <= row["majority"]:
            interval = f"[{row['ci95_low']:.3f}–{row['ci95_high']:.3f}]"
            unshown.append(f"{where} {row['mean']:.3f} {interval} vs {row['majority']:.3f}")
    lines = []
    if nothing:
        lines.append(
            "- No better than always answering the majority class (test mean over seeds vs the majority class): "
            + "; ".join(nothing)
            + ". §2 says why, and what the same methods reach trained longer."
        )
    if unshown:
        lines.append(
            "- Above the majority class on average, but not shown to beat it (the 95% interval over seeds reaches "
            "it): " + "; ".join(unshown) + "."
        )
    return lines


def _other_peft_method(runs: pd.DataFrame) -> list[str]:
    """Per task with a course baseline: the other of BitFit and LoRA (the one validation did not pick), its
    best group's test score against the baseline, so a near miss by the method not chosen is not hidden."""
    chosen = analysis.best_groups(runs, analysis.COURSE_PEFT)
    lines = []
    for task in dict.fromkeys(runs["task"]):
        spec = get_task(task)
        bar = spec.baselines.get(spec.main_test_split, {}).get(spec.main_metric)
        picked = chosen[chosen["task"] == task] if not chosen.empty else chosen
        if not bar or picked.empty:
            continue
        for method in analysis.COURSE_PEFT:
            best = analysis.best_groups(runs[runs["task"] == task], [method])
            if best.empty or best["variant"].iloc[0] == picked["variant"].iloc[0]:
                continue
            top = best.iloc[0]
            baseline = f"the baseline ({spec.main_metric} ≥ {bar})"
            standing = f"meets {baseline}" if top["mean"] >= bar else f"misses {baseline} by {bar - top['mean']:.3f}"
            lines.append(
                f"- {spec.display_name}, the PEFT method validation did not pick: {top['variant']} "
                f"({top['epochs']:g} epochs, lr {top['lr']:g}) scores "
                f"{analysis.mean_std_text(top['mean'], top['std'], int(top['n']))} "
                f"[{analysis.interval_text(top['values'])}] and {standing}."
            )
    return lines


def _test_sampling(runs: pd.DataFrame) -> str:
    """The part of the uncertainty the seed intervals leave out: the test set is a sample too (accuracy,
    binomial, 95%: 1.96 · sqrt(p (1 - p) / n) at the runs' mean accuracy)."""
    parts = []
    for task, group in runs.groupby("task", sort=False):
        if get_task(task).main_metric != "accuracy" or group["test_size"].isna().all():
            continue
        p, n = group["test"].mean(), int(group["test_size"].iloc[0])
        parts.append(f"±{1.96 * math.sqrt(p * (1 - p) / n):.3f} on {get_task(task).display_name}'s {n:,} examples")
    if not parts:
        return ""
    return (
        "- The intervals cover the spread over seeds only; the test set is a sample too, worth (binomial, 95%, at "
        "these accuracies) " + ", ".join(parts) + " on any one score."
    )
