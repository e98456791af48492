"""§4: BitFit against LoRA per task, then LoRA's rank and its alpha/r scale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from helpers import analysis
from helpers.report.markdown import _figure, _table
from helpers.report.peft import _not_in_records, _trained_by
from helpers.tasks import get_task


def _rank_runs(frame: pd.DataFrame, profile) -> pd.DataFrame:
    """LoRA's rank-sweep runs (α fixed); for a profile read from the study, on the study's sweep tasks only
    (CoLA's and RTE's r=8 runs come from their rate search, not from a sweep)."""
    ranks = analysis.lora_grid_runs(frame, profile, "rank")
    if profile.from_study:
        from helpers.study import TASKS

        ranks = ranks[ranks["task"].isin(TASKS)]
    return ranks


def _bitfit_vs_lora_section(frame, defaults, profile, figures, report_dir: Path) -> list[str]:
    """§4: BitFit against LoRA per task, then LoRA's rank and its alpha/r scale."""
    out = ["## 4. BitFit vs LoRA, and LoRA's rank\n"]
    if "bitfit_vs_lora" in figures:
        out.append(
            _figure(
                figures["bitfit_vs_lora"],
                report_dir,
                "BitFit vs LoRA r=8: test metric (mean over seeds, its 95% interval, each seed), with % of parameters "
                "trained.",
            )
        )
    for task, epochs, comparison in analysis.comparisons_per_budget(
        frame, profile, "lora", "bitfit", ("LoRA", "BitFit")
    ):
        where = "" if epochs == profile.epochs else " (§2)"
        out.append(f"- At {epochs:g} epochs{where}: " + analysis.task_sentence(comparison, task))
    out += ["", _rank_discussion(frame, profile, figures, report_dir), alpha_discussion(frame, profile)]
    return out


def _rank_discussion(frame, profile, figures, report_dir) -> str:
    ranks = _rank_runs(frame, profile)
    if ranks["rank"].nunique() < 2:
        return _not_in_records("rank sweep", "04", "2", profile)
    row = ranks.iloc[0]
    d, layers = int(row["model_hidden_size"]), int(row["model_layers"])
    lines = [
        "### How the rank r changes LoRA\n",
        "LoRA adds B (d_out × r) and A (r × d_in) to each adapted layer, so it trains r·(d_in + d_out) parameters per "
        "layer: "
        f"with query and value ({d} → {d}) in {layers} layers that is {layers} · 2 · r · {2 * d} = "
        f"{layers * 4 * d:,}·r, plus the head. "
        "The closed form below is computed from the architecture; the count is the parameters with `requires_grad` in "
        "the wrapped model:\n",
    ]
    params = analysis.rank_parameters(ranks)
    lines.append(_table(params) + "\n")
    beyond = params.loc[params["percent"] > analysis.PEFT_BUDGET_PERCENT, "rank"]
    if not beyond.empty:
        lines.append(
            f"At r = {', '.join(str(int(r)) for r in beyond)} LoRA trains more than {analysis.PEFT_BUDGET_PERCENT:g}% "
            "of the model's parameters, beyond the bound the targets set for parameter-efficient methods.\n"
        )
    if "rank_sweep" in figures:
        lines.append(
            _figure(
                figures["rank_sweep"],
                report_dir,
                "LoRA rank sweep: parameters (log) and test metric (mean ± std over seeds); trained on "
                + ", ".join(
                    f"{get_task(task).display_name} {int(size):,} examples"
                    for task, size in ranks.groupby("task", sort=False)["train_size"].first().items()
                )
                + " (the grids' subset where a task has more), so scores sit below §2's whole-set runs.",
            )
        )
    scores = analysis.rank_scores(ranks)
    scaled = analysis.lora_grid_runs(frame, profile, "rank", alpha="2r")
    for task in dict.fromkeys(ranks["task"]):
        table = scores[scores["task"] == task]
        if len(table) < 2:
            lines.append(
                f"- {get_task(task).display_name}: only r={int(table['rank'].iloc[0])} in these records "
                f"(the rank sweep trains the rest: {_trained_by('04', '2', profile)})."
            )
            continue
        best = table.loc[table["mean"].idxmax()]
        low, high = table.iloc[0], table.iloc[-1]
        comparison = analysis.compare(
            ranks[ranks["task"] == task],
            "rank",
            high["rank"],
            low["rank"],
            names=(f"r={int(high['rank'])}", f"r={int(low['rank'])}"),
        )
        lines.append(
            f"- {get_task(task).display_name}: best mean at r={int(best['rank'])} ({best['mean']:.3f}); "
            f"r={int(low['rank'])} → {low['mean']:.3f}, r={int(high['rank'])} → {high['mean']:.3f} with "
            f"{int(high['rank'] / low['rank'])}× the adapter parameters. "
            + (comparison.sentence(get_task(task).main_metric, get_task(task).display_name) if comparison else "")
            + (
                ""
                if scaled.loc[scaled["task"] == task, "rank"].nunique() > 1
                else f" At α = 16 the scale α/r moves with the rank ({16 / low['rank']:g} at r={int(low['rank'])}, "
                f"{16 / high['rank']:g} at r={int(high['rank'])}) and this task has no α = 2r series, so the "
                "difference cannot be put down to the rank alone."
            )
        )
    return "\n".join(lines) + "\n"


def alpha_discussion(frame, profile) -> str:
    """Rank against the alpha/r scale: LoRA scales its update by alpha/r, so with alpha fixed a larger
    rank also means a smaller scale. Runs with alpha = 2r keep the scale at 2 and separate the two."""
    fixed = _rank_runs(frame, profile)
    scaled = analysis.lora_grid_runs(frame, profile, "rank", alpha="2r")
    if not (scaled.groupby("task")["rank"].nunique() > 1).any():
        return (
            "With α fixed at 16, the scale α/r falls from 16 at r=1 to 0.25 at r=64, so a rank sweep at fixed α also "
            "sweeps "
            "the update's scale; no α = 2r runs in these records separate the two.\n"
        )
    lines = [
        "**Rank or scale?** With α fixed at 16, the scale α/r falls from 16 at r=1 to 0.25 at r=64, so a rank sweep at "
        "fixed "
        "α also sweeps the update's scale. With α = 2r the scale stays 2 at every rank:\n"
    ]
    # The tasks with an α = 2r series (its r=8 is α = 16's too, so a series needs a second rank).
    tasks = [task for task, runs in scaled.groupby("task", sort=False) if runs["rank"].nunique() > 1]
    tables = []
    for scheme, runs in (("α = 16", fixed), ("α = 2r", scaled)):
        for task in tasks:
            table = analysis.over_seeds(runs[runs["task"] == task], ["rank"])
            table.insert(0, "α", scheme)
            table.insert(0, "task", get_task(task).display_name)
            tables.append(table)
    table = pd.concat(tables)
    table["test"] = [analysis.mean_std_text(m, s, n) for m, s, n in zip(table["mean"], table["std"], table["n"])]
    wide = table.pivot_table(index=["task", "α"], columns="rank", values="test", aggfunc="first").fillna("not run")
    wide.columns = [f"r={int(rank)}" for rank in wide.columns]
    lines.append(_table(wide.reset_index()) + "\n")
    lines.append(_majority_cells(pd.concat([fixed.assign(α="α = 16"), scaled.assign(α="α = 2r")]), tasks))
    for task in tasks:
        name, metric = get_task(task).display_name, get_task(task).main_metric
        ranks = sorted({int(rank) for rank in scaled.loc[scaled["task"] == task, "rank"]})
        blocks, decided = [], []
        for scheme, runs in (("α = 16", fixed), ("α = 2r", scaled)):
            comparison = analysis.compare(
                runs[runs["task"] == task], "rank", ranks[-1], ranks[0], names=(f"r={ranks[-1]}", f"r={ranks[0]}")
            )
            if comparison:
                lines.append(f"- {scheme}: " + comparison.sentence(metric, name))
                decided += [f"{scheme}, r={ranks[-1]} against r={ranks[0]}"] * (comparison.verdict in ("a", "b"))
        # The same rank at the two scales: what the scale alone does.
        rows = []
        for rank in ranks:
            pair = pd.concat(
                [
                    fixed[(fixed["task"] == task) & (fixed["rank"] == rank)].assign(scale=16.0 / rank),
                    scaled[(scaled["task"] == task) & (scaled["rank"] == rank)].assign(scale=2.0),
                ]
            )
            if pair["scale"].nunique() == 2:
                comparison = analysis.compare(pair, "scale", 16.0 / rank, 2.0)
                rows.append(_scale_pair_row(rank, comparison))
                decided += [f"the two scales at r={rank}"] * (comparison.verdict in ("a", "b"))
                blocks.append(pair)
        if rows:
            lines.append(
                f"\nThe same rank at the two scales ({name}, {metric}; difference = α = 16 minus α = 2r, decided by "
                "Welch's t-test):\n\n" + _table(pd.DataFrame(rows)) + "\n"
            )
        pooled, p_value = _scale_pooled(blocks, name)
        lines.append(pooled)
        decided += ["the same-rank differences pooled"] * (p_value is not None and p_value < analysis.ALPHA)
        lines.append(
            f"- Read together ({name}): "
            + (
                "decided (p < 0.05) are " + "; ".join(decided) + " (above); every other comparison is within noise."
                if decided
                else "no comparison is decided, so these runs show no effect of the rank, or of the scale α/r, beyond "
                "seed noise; the table's trends are hints for more seeds."
            )
        )
    lines.append(
        "Both series train at the learning rate selected for r=8 (α = 16): a rank or scale far from it may want "
        "another rate, a second confound these runs do not separate.\n"
    )
    return "\n".join(line for line in lines if line) + "\n"


def _scale_pair_row(rank: int, comparison: analysis.Comparison) -> dict:
    """One row of the same-rank table: the rank at α = 16 (scale 16/r) against α = 2r (scale 2)."""
    p_value, low, high = comparison.test
    verdict = {"a": "α = 16 ahead", "b": "α = 2r ahead", "tie": "within noise"}.get(
        comparison.verdict, comparison.verdict
    )
    return {
        "r": rank,
        "scale at α = 16": f"{16 / rank:g}",
        "α = 16": analysis.mean_std_text(comparison.a_mean, comparison.a_std, comparison.n_a),
        "α = 2r (scale 2)": analysis.mean_std_text(comparison.b_mean, comparison.b_std, comparison.n_b),
        "difference": f"{comparison.difference:+.3f}",
        "95% interval": f"{low:+.3f} to {high:+.3f}" if comparison.decided else "",
        "p": f"{p_value:.3f}" if comparison.decided else "",
        "verdict": verdict,
    }


def _majority_cells(runs: pd.DataFrame, tasks) -> str:
    """A line naming the table's cells whose mean is no better than the majority class (nothing learned)."""
    cells = []
    for (task, scheme, rank), group in runs[runs["task"].isin(tasks)].groupby(["task", "α", "rank"], sort=False):
        if analysis.at_or_below(group["test"].mean(), group["majority"].mean()):
            cells.append(f"{get_task(task).display_name} {scheme} r={int(rank)} ({group['test'].mean():.3f})")
    if not cells:
        return ""
    return "No better than the majority class on average, so nothing was learned there: " + ", ".join(cells) + ".\n"


def _scale_pooled(blocks: list[pd.DataFrame], task_name: str) -> tuple[str, float | None]:
    """The same-rank pairs taken together, each rank one unit (so rank drops out): the per-rank difference
    of mean test scores, larger scale α/r minus smaller, and a one-sample t-test of those differences
    (the line, and its p-value; None with fewer than three ranks)."""
    blocks = [pair for pair in blocks if pair.groupby("scale")["test"].size().min() >= analysis.MIN_SEEDS]
    if len(blocks) < 3:
        return "", None
    differences = []
    for pair in blocks:
        top = pair["scale"] == pair["scale"].max()
        differences.append(pair.loc[top, "test"].mean() - pair.loc[~top, "test"].mean())
    p_value = stats.ttest_1samp(differences, 0.0).pvalue
    low, high = analysis.t_interval(differences)
    ranks = ", ".join(str(int(pair["rank"].iloc[0])) for pair in blocks)
    return (
        f"- Same rank, pooled ({task_name}; r = {ranks}, {analysis.MIN_SEEDS}+ seeds a side): the larger scale is "
        f"ahead at {sum(d > 0 for d in differences)} of {len(blocks)} ranks, by {np.mean(differences):+.3f} on "
        f"average (95% interval {low:+.3f} to {high:+.3f}; one-sample t-test over the ranks p = {p_value:.2g})."
    ), float(p_value)
