"""The report's "In brief": one line per course question, each decided as in the section it points to."""

from __future__ import annotations

import pandas as pd

from helpers import analysis
from helpers.report.peft import _bitfit_verdict, _lr_relations
from helpers.report.rank import _rank_runs
from helpers.tasks import get_task


def _summary_section(frame: pd.DataFrame, defaults: pd.DataFrame, profile, overlap: dict) -> list[str]:
    """The course questions answered in a line each (test = GLUE dev, mean over seeds), with the section that
    shows the runs; a question these records cannot answer yet is left out (its section says why)."""
    lines = [
        _bitfit_vs_lora(frame, profile),
        _bitfit_works(frame, defaults, profile),
        _learning_rates(frame, profile),
        _rank(frame, profile),
        _pooling(frame, profile),
        _validation_test(defaults, overlap),
    ]
    lines = [line for line in lines if line]
    if not lines:
        return []
    return [
        "## In brief\n",
        "The course questions, answered from the records below (test = GLUE dev, mean over seeds; a verdict is "
        "Welch's t-test at p < 0.05 over at least 3 seeds a side, as everywhere in this report):\n",
        "\n".join(lines) + "\n",
    ]


def _short(comparison: analysis.Comparison) -> str:
    """A comparison in a few words: the means and the verdict."""
    means = f"{comparison.a} {comparison.a_mean:.3f} vs {comparison.b} {comparison.b_mean:.3f}"
    p_value = comparison.test[0]
    verdict = {
        "degenerate": "neither beats the majority class",
        "undecided": f"undecided ({min(comparison.n_a, comparison.n_b)} seed(s))",
        "tie": f"not distinguishable (p = {p_value:.2g})",
    }.get(comparison.verdict)
    if verdict is None:
        winner = comparison.a if comparison.verdict == "a" else comparison.b
        strength = ", weak evidence" if p_value >= analysis.STRONG_P else ""
        verdict = f"{winner} ahead (p = {p_value:.2g}{strength})"
        loser, low = (
            (comparison.b, comparison.b_mean) if comparison.verdict == "a" else (comparison.a, comparison.a_mean)
        )
        if analysis.at_or_below(low, comparison.floor):
            verdict += f", {loser} at the majority class"
    return f"{means}: {verdict}"


def _bitfit_vs_lora(frame, profile) -> str:
    """BitFit against LoRA per task, at the longest budget where both trained."""
    latest = {}
    for task, epochs, comparison in analysis.comparisons_per_budget(
        frame, profile, "lora", "bitfit", ("LoRA", "BitFit")
    ):
        if task not in latest or epochs > latest[task][0]:
            latest[task] = (epochs, comparison)
    parts = [
        f"{get_task(task).display_name} ({epochs:g} epochs) {_short(comparison)}"
        for task, (epochs, comparison) in latest.items()
    ]
    return f"- **BitFit vs LoRA** (§4): {'; '.join(parts)}." if parts else ""


def _bitfit_works(frame, defaults, profile) -> str:
    """The verdict on 'biases recover most of full fine-tuning and beat the head alone', per task, at the
    longest budget where BitFit, the head and full fine-tuning all trained."""
    parts, budgets = [], analysis.runs_per_budget(frame, profile)
    for task in dict.fromkeys(defaults["task"]):
        for epochs, runs in reversed(budgets):
            runs = runs[runs["task"] == task]
            verdict = _bitfit_verdict(runs)
            if verdict:
                means = runs.groupby("variant", observed=True)["test"].mean()
                parts.append(
                    f"{get_task(task).display_name} ({epochs:g} epochs) {verdict.split(':')[0]}: classifier alone "
                    f"{means['head']:.3f}, BitFit {means['bitfit']:.3f}, full fine-tuning {means['full']:.3f}"
                )
                break
    if not parts:
        return ""
    return (
        "- **Does BitFit's explanation hold** (biases alone recover most of full fine-tuning's gain over training "
        f"the classifier alone; §3): {'; '.join(parts)}."
    )


def _learning_rates(frame, profile) -> str:
    """The selected rate per task and method, and how many BitFit/LoRA pairs put it above full fine-tuning's."""
    lrs = analysis.lr_sweep_runs(frame, profile)
    if lrs.empty:
        return ""
    best = analysis.best_lr(lrs)
    rates = "; ".join(
        f"{get_task(task).display_name} " + ", ".join(f"{row['variant']} {row['lr']:g}" for _, row in rows.iterrows())
        for task, rows in best.groupby("task", sort=False)
    )
    pairs = [relation for method, relation in _lr_relations(best)[1] if method in analysis.COURSE_PEFT]
    larger, decided = pairs.count("larger"), len(pairs) - pairs.count("undecided")
    return (
        f"- **Learning rates** (best mean validation score; §3): {rates}. BitFit's or LoRA's best rate lies above "
        f"full fine-tuning's in {larger} of {len(pairs)} (task, method) pairs, below in {pairs.count('smaller')}; "
        f"{len(pairs) - decided} undecided."
    )


def _rank(frame, profile) -> str:
    """The parameter count from the lowest to the highest rank (counted = closed form?) and the score there."""
    ranks = _rank_runs(frame, profile)
    if ranks["rank"].nunique() < 2:
        return ""
    params = analysis.rank_parameters(ranks)
    low, high = params.iloc[0], params.iloc[-1]
    scores = []
    for task in dict.fromkeys(ranks["task"]):
        runs = ranks[ranks["task"] == task]
        names = (f"r={int(high['rank'])}", f"r={int(low['rank'])}")
        comparison = analysis.compare(runs, "rank", high["rank"], low["rank"], names=names)
        if comparison:
            scores.append(f"{get_task(task).display_name} {_short(comparison)}")
    return (
        f"- **Rank** (α = 16; §4): r={int(low['rank'])} → r={int(high['rank'])} trains {low['counted']:,} → "
        f"{high['counted']:,} parameters ("
        + ("the closed form matches the count at every rank" if params["agree"].all() else "closed form ≠ count")
        + "); "
        + "; ".join(scores)
        + ". With α fixed the scale α/r moves with r: §4 separates the two."
    )


def _pooling(frame, profile) -> str:
    """Mean pooling against the model's own [CLS] pooling, per task and method trained with both."""
    found = analysis.pooling_comparisons(analysis.pooling_runs(frame, profile))
    parts = [f"{get_task(task).display_name} {variant}: {_short(comparison)}" for task, variant, comparison in found]
    return (
        f"- **Pooling** (the head reads the tokens' mean or the first token; §6): {'; '.join(parts)}." if parts else ""
    )


def _validation_test(defaults, overlap: dict) -> str:
    """SST-2's validation − test gap and the text its validation slice shares with training."""
    runs = defaults[defaults["task"] == "sst2"]
    if runs.empty or runs["best_validation"].isna().all():
        return ""
    gap = runs["best_validation"].mean() - runs["test"].mean()
    shared = overlap.get("sst2", {}).get("splits", {})
    text = f"- **SST-2's validation–test gap** (§2): {gap:+.3f} on average over methods and seeds"
    if shared.get("validation") and shared.get("test"):
        text += (
            f"; {shared['validation']['inside_training']:.1%} of the validation slice's examples (phrases from "
            f"GLUE train) lie verbatim inside a training example, against {shared['test']['inside_training']:.1%} "
            "of the dev sentences"
        )
    return text + "."
