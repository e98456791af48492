"""§3: why BitFit works (gap closed against tuned full fine-tuning and the head alone), and the
learning rates each method wants."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from helpers import analysis
from helpers.report.markdown import _figure, _table
from helpers.tasks import get_task


def _peft_section(frame, defaults, profile, figures, report_dir: Path) -> list[str]:
    """§3: why BitFit works, and the learning rates each method wants."""
    return [
        "## 3. PEFT discussion\n",
        _bitfit_discussion(
            defaults, analysis.longer_training_runs(frame, profile), profile, _edge_rates(frame, profile)
        ),
        _learning_rate_discussion(frame, profile, figures, report_dir),
    ]


def _grid_note(profile) -> str:
    """Where the profile's grids train on fewer examples than its main comparison, say so."""
    cap = profile.grid_max_train_samples
    if cap is None or cap == profile.max_train_samples:
        return ""
    return (
        f". The grids (learning rate, LoRA rank, batch size and warmup) train on at most {cap:,} examples "
        "(seeded, stratified: SST-2 is cut, smaller training sets stay whole), so their scores sit below the whole-set "
        "runs of §2"
        + (
            "; the learning-rate grids ran seed 0 at every rate, then seeds 1 and 2 at each grid's best rate and its "
            "two neighbours (the tables give each rate's seeds)"
            if profile.from_study
            else ""
        )
    )


def _edge_rates(frame: pd.DataFrame, profile) -> set[tuple[str, str]]:
    """(task, variant) whose selected learning rate lies on its grid's edge (a step beyond was not tried)."""
    lrs = analysis.lr_sweep_runs(frame, profile)
    if lrs.empty:
        return set()
    best = analysis.best_lr(lrs)
    edges = best[best["edge"] & ~best["degenerate"]]
    return {(task, str(variant)) for task, variant in zip(edges["task"], edges["variant"])}


def _bitfit_discussion(defaults: pd.DataFrame, longer: pd.DataFrame, profile, edges: set | None = None) -> str:
    """§3's BitFit part; `edges`: (task, variant) whose rate sits on its grid's edge, which the verdict names."""
    lines = [
        "### BitFit: what it is and why it works\n",
        "BitFit trains only the bias vectors (and the classifier) and freezes every weight matrix. The explanation its "
        "authors offer, which our numbers below can support or not: a bias adds the same vector at every position, so "
        "tuning it "
        "shifts each layer's activations (which GELU units fire, where LayerNorm centres them) without changing how "
        "tokens "
        "are mixed. If the pretrained weights already hold the features a task needs, re-weighting them through the "
        "biases "
        "should recover much of full fine-tuning at a tiny fraction of the parameters — and should clearly beat "
        "training "
        "the classifier alone.\n",
    ]
    for task in dict.fromkeys(defaults["task"]):
        subset = defaults[defaults["task"] == task]
        spec = get_task(task)
        bitfit, full = subset[subset["variant"] == "bitfit"], subset[subset["variant"] == "full"]
        if bitfit.empty:
            continue
        text = (
            f"- {spec.display_name}: BitFit trains {int(bitfit['trainable'].iloc[0]):,} parameters "
            f"({bitfit['percent'].iloc[0]:.3g}%) and reaches {bitfit['test'].mean():.3f}"
        )
        if not full.empty:
            comparison = analysis.compare(subset, "variant", "bitfit", "full", names=("BitFit", "full fine-tuning"))
            gap = full["test"].mean() - bitfit["test"].mean()
            leader = "full fine-tuning" if gap > 0 else "BitFit"
            outcome = "the same score" if gap == 0 else f"{abs(gap):.3f} in {leader}'s favour"
            if comparison and comparison.decided:
                p_value, low, high = comparison.test
                noise = ", within noise" if comparison.verdict == "tie" else ""
                outcome += (
                    f" ({spec.main_metric}{noise}; Welch's t-test p = {p_value:.2g}; 95% interval of BitFit − full "
                    f"fine-tuning {low:+.3f} to {high:+.3f})"
                )
            else:
                outcome += f" ({spec.main_metric})"
            text += (
                f"; full fine-tuning ({int(full['trainable'].iloc[0]):,} parameters, "
                f"{full['trainable'].iloc[0] / bitfit['trainable'].iloc[0]:.0f}× as many) "
                f"reaches {full['test'].mean():.3f}: {outcome}"
            )
        sparse = subset[subset["variant"] == "bitfit (sparse)"]
        if not sparse.empty:
            text += (
                f"; the sparse variant (query + first-MLP biases, {int(sparse['trainable'].iloc[0]):,} parameters) "
                f"reaches {sparse['test'].mean():.3f}"
            )
        lines.append(text + ("." if not full.empty else f" ({spec.main_metric})."))
        comparison = analysis.compare(subset, "variant", "bitfit", "head", names=("BitFit", "the classifier alone"))
        if comparison:
            lines.append("  - Biases or just the head? " + comparison.sentence(spec.main_metric, spec.display_name))
        verdict = _bitfit_verdict(subset)
        if verdict:
            if (task, "head") in (edges or set()) and "closes" in verdict:
                verdict += (
                    " The classifier alone sits at its grid's edge rate (§3's table), so it may be under-tuned and "
                    "the gap BitFit closes overstated."
                )
            lines.append("  - Verdict on the explanation: " + verdict)
        lines += _bitfit_trained_longer(longer[longer["task"] == task] if not longer.empty else longer, profile)
    return "\n".join(lines) + "\n"


def _bitfit_trained_longer(longer: pd.DataFrame, profile) -> list[str]:
    """The same verdict at each longer epoch budget where BitFit, the head and full fine-tuning all trained
    (§2's runs): a method that needed more passes is judged there too, not only at the profile's epochs."""
    lines = []
    for epochs in sorted(set(longer["epochs"]) - {profile.epochs}) if not longer.empty else []:
        subset = longer[longer["epochs"] == epochs]
        if not {"bitfit", "head", "full"} <= set(subset["variant"].astype(str)):
            continue
        spec = get_task(subset["task"].iloc[0])
        comparison = analysis.compare(subset, "variant", "bitfit", "head", names=("BitFit", "the classifier alone"))
        lines.append(
            f"  - Trained for {epochs:g} epochs instead (every method at the same rate, §2): "
            + comparison.sentence(spec.main_metric, spec.display_name)
            + " Verdict at this budget: "
            + _bitfit_verdict(subset)
        )
    return lines


def _bitfit_verdict(subset: pd.DataFrame) -> str:
    """Does this task's data support 'biases recover most of full fine-tuning and beat the head alone'?"""
    means = subset.groupby("variant", observed=True)["test"].mean()
    if not {"bitfit", "head", "full"} <= set(means.index.astype(str)):
        return ""
    bitfit, head, full = means["bitfit"], means["head"], means["full"]
    floor = subset["majority"].mean() if "majority" in subset else float("nan")
    if analysis.at_or_below(bitfit, floor):
        return (
            f"not tested at this budget: BitFit ({bitfit:.3f}) does not beat always predicting the majority class "
            f"({floor:.3f}), so it learned nothing whose gap to full fine-tuning could be read. That is a verdict on "
            "the training budget, not on the explanation; a budget where BitFit learns is the test."
        )
    full_vs_head = analysis.compare(subset, "variant", "full", "head")
    if full_vs_head.verdict == "degenerate":
        return (
            f"undecided: neither full fine-tuning ({full:.3f}) nor the classifier alone ({head:.3f}) beats the "
            "majority class "
            f"({floor:.3f}) here, while BitFit reaches {bitfit:.3f}; the gap the explanation is about cannot be "
            "measured."
        )
    if full_vs_head.verdict == "undecided":
        return (
            f"undecided: full fine-tuning ({full:.3f}) and the classifier alone ({head:.3f}) need at least "
            f"{analysis.MIN_SEEDS} "
            "seeds each before the gap between them counts."
        )
    if full_vs_head.verdict != "a":
        return (
            f"undecided: full fine-tuning ({full:.3f}) does not clearly beat the classifier alone ({head:.3f}) in "
            "these runs, "
            "so there is no gap for the biases to close."
        )
    recovered = (bitfit - head) / (full - head)
    bitfit_vs_head = analysis.compare(subset, "variant", "bitfit", "head")
    supported = recovered >= 0.5 and bitfit_vs_head.verdict == "a"
    share = f"{subset.loc[subset['variant'] == 'bitfit', 'percent'].iloc[0]:.2g}% of the parameters"
    if recovered >= 1:  # at or past full fine-tuning: "closes 114% of the gap" would overstate a tie
        versus = analysis.compare(subset, "variant", "bitfit", "full")
        p_value = versus.test[0]
        standing = "passes" if versus.verdict == "a" else "is not distinguishable from"
        return (
            f"{'supported' if supported else 'not supported'}: BitFit ({bitfit:.3f}) {standing} full fine-tuning "
            f"({full:.3f}; Welch's t-test p = {p_value:.2g}) and "
            + ("beats" if bitfit_vs_head.verdict == "a" else "does not clearly beat")
            + f" the classifier alone ({head:.3f}), training {share}."
        )
    groups = [subset.loc[subset["variant"] == variant, "test"] for variant in ("bitfit", "head", "full")]
    low, high = analysis.gap_closed_interval(*groups)
    seeds = min(len(group) for group in groups)
    return (
        f"{'supported' if supported else 'not supported'}: BitFit closes {recovered:.0%} of the gap between the "
        f"classifier alone ({head:.3f}) and full fine-tuning ({full:.3f}; a rough 95% bootstrap interval over the "
        f"{seeds} seeds a method: {low:.0%} to {high:.0%}) while training {share}"
        + ("" if bitfit_vs_head.verdict == "a" else ", and it does not clearly beat the classifier alone")
        + "."
    )


def _not_in_records(what: str, notebook: str, tier: str | None, profile) -> str:
    """The line a section shows when its runs are not in the records: who trains them."""
    return f"No {what} in these records yet ({_trained_by(notebook, tier, profile)}).\n"


def _trained_by(notebook: str, tier: str | None, profile) -> str:
    where = f"notebook {notebook} runs it"
    if profile.name == "full":
        where += (
            f"; the study's tier {tier} trains it, `python -m helpers.study --tier {tier}` (results/full/PLAN.md)"
            if tier
            else "; the study does not include it"
        )
    return where


def _learning_rate_discussion(frame, profile, figures, report_dir) -> str:
    """The learning-rate grid, the best rate per task and method, and whether PEFT wants larger rates."""
    lrs = analysis.lr_sweep_runs(frame, profile)
    lines = ["### Best hyperparameters and learning rates\n"]
    if lrs.empty:
        lines.append(_not_in_records("learning-rate sweep", "05", "1a", profile))
        return "\n".join(lines)
    lines.append(_lr_grid_sentence(lrs))
    best = analysis.best_lr(lrs)
    lines.append(_table(analysis.best_lr_table(best)) + "\n")
    edges = best[best["edge"] & ~best["degenerate"]]
    if not edges.empty:
        lines.append(
            "A best rate at the end of its grid (marked *grid edge*) is only the best of the rates tried; one step "
            "beyond it was not tried and might score higher: "
            + "; ".join(
                f"{get_task(row['task']).display_name} {row['method']} at {row['lr']:g}" for _, row in edges.iterrows()
            )
            + ".\n"
        )
    if "lr_sensitivity" in figures:
        lines.append(
            _figure(
                figures["lr_sensitivity"],
                report_dir,
                "Validation metric against the learning rate per method (circle: the selected rate, the best mean, or "
                "the default rate where every rate tied; dotted: the majority class).",
            )
        )
    relation_lines, relations = _lr_relations(best)
    lines += relation_lines
    if not relations:
        return "\n".join(lines) + "\n"
    lines += _lr_conclusion(
        relations, _degrades_at_high_lr(lrs, ("full",)), _degrades_at_high_lr(lrs, analysis.COURSE_PEFT)
    )
    return "\n".join(lines) + "\n"


def _lr_grid_sentence(lrs: pd.DataFrame) -> str:
    """The rates searched per method, and the score the best one is chosen by."""
    grids = {
        task: group.groupby("variant", observed=True)["lr"]
        .apply(lambda s: ", ".join(f"{v:g}" for v in sorted(set(s))))
        .to_dict()
        for task, group in lrs.groupby("task", sort=False)
    }
    selection = (
        "validation" if set(lrs["select_on"]) == {"train_slice"} else "validation (= GLUE dev for runs selected on dev)"
    )
    return (
        "Grids searched (peak learning rate; linear decay after warmup; everything else at its default):\n\n"
        + "\n".join(
            f"- {get_task(task).display_name}: " + "; ".join(f"{m}: {g}" for m, g in grid.items())
            for task, grid in grids.items()
        )
        + f"\n\nThe best learning rate is the one with the best mean {selection} score:\n"
    )


def _lr_relations(best: pd.DataFrame) -> tuple[list[str], list[tuple[str, str]]]:
    """One line per (task, method) with a full fine-tuning sweep beside it, and the (method, relation) pairs:
    the relation ('larger', 'smaller', 'undecided') of its best rate to full fine-tuning's."""
    variants = best["variant"].astype(str)
    full = {row["task"]: row for _, row in best[variants == "full"].iterrows()}
    lines, relations = [], []
    for method in ("bitfit", "lora", "head"):
        for _, peft in best[variants == method].iterrows():
            if peft["task"] not in full:
                continue
            reference = full[peft["task"]]
            relation = analysis.lr_relation(peft, reference)
            relations.append((method, relation))
            lines.append(
                f"- {get_task(peft['task']).display_name}: best {method} learning rate {peft['lr']:g} vs full "
                "fine-tuning "
                f"{reference['lr']:g} ({peft['lr'] / reference['lr']:.3g}×): **{relation}**"
                + (f" ({_undecided_because(peft, reference)})" if relation == "undecided" else "")
                + "."
            )
    return lines, relations


def _undecided_because(peft, full) -> str:
    """Why analysis.lr_relation left a pair undecided, in words."""
    for row, name in ((peft, str(peft["variant"])), (full, "full fine-tuning")):
        if row["degenerate"]:
            return f"{name}'s sweep learned nothing: every rate scores the majority class"
        if not row.get("decided", False):
            return f"{name}'s best rate has fewer than {analysis.MIN_SEEDS} seeds"
    return "a rate tied for best lies on the other side of full fine-tuning's"


def _lr_conclusion(pairs: list[tuple[str, str]], degrading: str, peft_degrading: str) -> list[str]:
    """The count of (task, method) pairs on each side, BitFit and LoRA apart from the classifier alone (a
    baseline, not a PEFT method), and what they say about 'PEFT wants larger learning rates'."""
    relations = [relation for method, relation in pairs if method in analysis.COURSE_PEFT]
    larger, smaller = relations.count("larger"), relations.count("smaller")
    decided = len(relations) - relations.count("undecided")
    head = [relation for method, relation in pairs if method == "head"]
    lines = [
        f"\nBitFit's and LoRA's best learning rates are larger than full fine-tuning's in {larger} of {len(relations)} "
        f"(task, method) pairs, smaller in {smaller}, undecided in {len(relations) - decided} (a pair counts only when "
        "every rate within noise of the best lies on the same side)"
        + (
            f"; the classifier alone (a baseline, not a PEFT method): larger in {head.count('larger')} of {len(head)}, "
            f"smaller in {head.count('smaller')}."
            if head
            else "."
        )
    ]
    if not relations:
        return lines
    if not decided:
        lines.append("No pair is decided, so these records say nothing about which learning rates PEFT methods want.")
    elif decided * 2 < len(relations):
        lines.append(
            f"Only {decided} of {len(relations)} pairs are decided ({larger} larger, {smaller} smaller): too few to "
            "support or contradict the usual claim that PEFT methods want larger learning rates than full fine-tuning."
        )
    elif larger == decided:
        lines.append(_why_peft_wants_larger_rates(degrading, peft_degrading))
    else:
        lines.append(
            f"Of the decided pairs, {larger} put the PEFT rate higher and {smaller} lower: these records do not "
            "support the usual claim that PEFT methods want larger learning rates than full fine-tuning; with these "
            "data sizes and epochs the sweep is the better guide." + (f" ({degrading}.)" if degrading else "")
        )
    return lines


def _why_peft_wants_larger_rates(degrading: str, peft_degrading: str) -> str:
    """The explanation, given when every decided pair puts the PEFT method's best rate higher."""
    return (
        "Every decided pair puts the PEFT method's rate higher. Why (the usual explanation: these runs measure the "
        "rates and where they break down, not the mechanism): full fine-tuning moves every one of the model's "
        "weights, so a small learning rate already "
        "changes each layer, and large steps overwrite the pretrained features"
        + (f" — {degrading}" if degrading else "")
        + ". BitFit and LoRA change few parameters (bias vectors; a rank-r update B·A that starts at zero), each "
        "with a small effect on the output, so they need larger steps to move the function as far in the same "
        "number of updates; the pretrained weights stay frozen, so a large step cannot overwrite them"
        + (
            f", though past some rate the few trained parameters still diverge — {peft_degrading}"
            if peft_degrading
            else ""
        )
        + "."
    )


def _degrades_at_high_lr(lrs: pd.DataFrame, methods) -> str:
    """A data-decided clause: where does a method score worse at its grid's largest rate than at its best
    (analysis.worse_than: Welch's t-test with 3 seeds a side, else the best's prediction interval)?"""
    clauses = []
    for (task, method), group in lrs[lrs["method"].isin(list(methods))].groupby(["task", "method"], observed=True):
        values = {lr: runs["best_validation"].dropna().to_numpy() for lr, runs in group.groupby("lr")}
        means = {lr: float(v.mean()) for lr, v in values.items() if len(v)}
        best, top = max(means, key=means.get), max(means)
        if top > best and len(values[best]) >= analysis.MIN_SEEDS and analysis.worse_than(values[best], values[top]):
            clauses.append(
                f"on {get_task(task).display_name} {'full fine-tuning' if method == 'full' else method} drops from "
                f"{means[best]:.3f} at {best:g} to "
                f"{means[top]:.3f} at {top:g} ({len(values[top])} seed{'s' * (len(values[top]) > 1)}; validation)"
            )
    return "; ".join(clauses)
