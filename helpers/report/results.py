"""§2: loss and test results, the runs stuck at the label prior, training longer, test curves, the
published scores, and the overfit check."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import analysis, plots
from helpers.fields import default_of
from helpers.methods import MethodConfig
from helpers.report.design import _validation_test_gap
from helpers.report.markdown import _figure, _table
from helpers.tasks import get_task
from helpers.training import TrainConfig


def _with_test_curves(records: list[dict]) -> list[dict]:
    """The records that scored the test split at every evaluation (eval_test)."""
    return [r for r in records if r["config"].get("eval_test") and any(e["split"] != "validation" for e in r["evals"])]


def _test_curves_section(records: list[dict], figures: dict, report_dir: Path) -> str:
    """Validation and test per epoch, mean ± std over seeds, for the runs with test curves (eval_test): where
    the test score went while validation picked the epoch."""
    curves = _with_test_curves(records)
    if not curves:
        return ""
    rows = []
    for record in curves:
        spec = get_task(record["config"]["task"])
        for e in record["evals"]:
            if e["split"] in ("validation", *spec.test_splits):
                rows.append(
                    {
                        "task": spec.display_name,
                        "method": plots.run_label(record),
                        "lr": f"{record['config']['lr']:g}",
                        "split": e["split"],
                        "epoch": e["epoch"],
                        "seed": record["config"]["seed"],
                        "value": e["metrics"][spec.main_metric],
                        "best_epoch": record["best"]["epoch"],
                    }
                )
    table = pd.DataFrame(rows)
    keys = ["task", "method", "lr", "split"]
    summary = table.groupby([*keys, "epoch"], sort=False)["value"].agg(["mean", "std", "size"]).reset_index()
    summary["cell"] = [
        analysis.mean_std_text(m, s, n) for m, s, n in zip(summary["mean"], summary["std"], summary["size"])
    ]
    wide = summary.pivot_table(index=keys, columns="epoch", values="cell", aggfunc="first", sort=False)
    wide.columns = [f"epoch {epoch:g}" for epoch in wide.columns]
    wide = wide.fillna("")  # tasks trained for fewer epochs than the longest
    picked = table.groupby(["task", "method", "lr"], sort=False).apply(
        lambda runs: ", ".join(f"{epoch:g}" for epoch in runs.drop_duplicates("seed")["best_epoch"]),
        include_groups=False,
    )
    wide = wide.reset_index()
    wide["epochs picked (per seed)"] = [
        picked[(task, method, lr)] for task, method, lr in zip(wide["task"], wide["method"], wide["lr"])
    ]
    lines = [
        "### Validation and test per epoch\n",
        "Runs that also scored the test set (GLUE dev) after every epoch, to show where the test score went while "
        "validation picked the epoch (the test scores never select anything); mean ± std over seeds:\n",
        _table(wide) + "\n",
    ]
    if "test_curves" in figures:
        lines.append(
            _figure(
                figures["test_curves"],
                report_dir,
                "Training loss, validation (solid) and test (dotted) loss and metric per epoch, runs with test curves.",
            )
        )
    return "\n".join(lines) + "\n"


def _results_section(frame, defaults, records, figures, folders: tuple[Path, Path], profile, results_dir) -> list[str]:
    """§2: training curves, the test results against the course baselines, validation vs test, overfitting.
    `folders`: the figures folder and the report's."""
    from helpers.data import load_split_overlap  # datasets loads only here, not on importing the report

    figures_dir, report_dir = folders
    overlap = load_split_overlap(results_dir)
    out = ["## 2. Loss reduction, validation and test results\n"]
    if "training_curves" in figures:
        out.append(
            _figure(
                figures["training_curves"],
                report_dir,
                "Training loss per step and validation metric per epoch, BitFit and LoRA (seed "
                f"{figures['first_seed']}).",
            )
        )
    out += [
        "Test results (GLUE dev set) at each method's "
        + (
            "selected learning rate (the best mean validation score of its grid, §3) and default settings otherwise"
            if profile.tuned_lr
            else "default settings"
        )
        + ", mean ± std over seeds, against the course baselines:\n",
        _table(analysis.results_table(defaults)) + "\n",
        _stuck_at_the_prior(defaults, records, _what_lifts_it(frame, profile), overlap),
        _validation_test_gap(defaults, analysis.profile_runs(frame, profile, grid=True), overlap),
        _longer_training(frame, profile),
        _test_curves_section(records, figures, report_dir),
        _published_context(frame, profile),
        _overfit_section(records, figures_dir, report_dir),
    ]
    return out


PRIOR_LOSS_MARGIN = 0.01  # nats: a training loss this far below the label prior's has used the inputs


def _what_lifts_it(frame: pd.DataFrame, profile) -> dict[tuple[str, str], list[str]]:
    """Per (task, variant): the changed settings (more epochs; tier 3's batch sizes and warmups; another pooling)
    whose runs, 3+ seeds, beat the majority class on test: what a method stuck at the profile's settings needed."""
    longer = analysis.longer_training_runs(frame, profile)
    changes = [(longer[longer["epochs"] > profile.epochs], "epochs", "{:g} epochs")] if not longer.empty else []
    for knob, text in (("batch_size", "batch {:g}"), ("warmup_ratio", "warmup {:g}")):
        runs = analysis.setting_grid_runs(frame, profile, knob)
        usual = getattr(profile, knob, None) or default_of(TrainConfig, knob)
        changes.append((runs[~np.isclose(runs[knob].astype(float), usual)], knob, text))
    pooled = analysis.pooling_runs(frame, profile)
    if not pooled.empty:
        changes.append((pooled[pooled["pooling"] != default_of(MethodConfig, "pooling")], "pooling", "{} pooling"))
    lifts: dict[tuple[str, str], list[str]] = {}
    for runs, knob, text in changes:
        for (task, variant, value), group in runs.groupby(["task", "variant", knob], observed=True):
            scores, majority = group["test"], group["majority"].mean()
            if len(scores) >= analysis.MIN_SEEDS and not analysis.at_or_below(scores.mean(), majority):
                low, high = analysis.t_interval(scores)
                shown = "" if low > majority else f" [{low:.3f}–{high:.3f}: not shown above it]"
                lifts.setdefault((task, str(variant)), []).append(
                    f"{text.format(value)}: {analysis.mean_std_text(scores.mean(), scores.std(), len(scores))}{shown}"
                )
    return lifts


def _label_prior(group: pd.DataFrame, task: str, overlap: dict) -> list[tuple[str, float]]:
    """The validation slice's (label, share) pairs: saved with the split overlap (notebook 01, `data
    --overlap`), else for a two-class task scored by accuracy, the majority-class score and its complement
    (labels unnamed: ""); [] if unknown."""
    shares = overlap.get(task, {}).get("splits", {}).get("validation", {}).get("label_shares")
    if shares:
        return [(label, share) for label, share in shares.items() if share > 0]
    spec = get_task(task)
    prior = group["validation_majority"].mean() if "validation_majority" in group else math.nan
    if spec.num_labels == 2 and spec.main_metric == "accuracy" and 0 < prior < 1:
        return [("", prior), ("", 1 - prior)]
    return []


def _stuck_at_the_prior(
    defaults: pd.DataFrame, records: list[dict], lifts: dict | None = None, overlap: dict | None = None
) -> str:
    """Why a method scores the majority class: its training loss ends at the entropy of the label prior,
    i.e. it learned the class frequencies and nothing about the inputs. `lifts`: the changed settings
    under which the same method learns (`_what_lifts_it`); `overlap`: the saved split numbers, whose label
    shares give the prior where the metric does not (CoLA's Matthews correlation)."""
    by_id = {record["run_id"]: record for record in records}
    lines = []
    for (task, variant), group in defaults.groupby(["task", "variant"], observed=True):
        prior = _label_prior(group, task, overlap or {})
        shares = [share for _, share in prior]
        if not analysis.at_or_below(group["test"].mean(), group["majority"].mean()) or len(shares) < 2:
            continue
        tails = []
        for run_id in group["run_id"]:
            losses = [row["loss"] for row in by_id[run_id]["history"] if row.get("loss") is not None]
            tails += losses[-max(1, len(losses) // 10) :]  # the last tenth of the logged steps
        if not tails:
            continue
        entropy = -sum(share * math.log(share) for share in shares)
        tail = sum(tails) / len(tails)
        reading = (
            "below it: the inputs had begun to inform the model, but no prediction crossed to the other class within "
            "these epochs"
            if tail < entropy - PRIOR_LOSS_MARGIN
            else "the run learned the label prior and nothing about the inputs"
        )
        lines.append(
            f"- {get_task(task).display_name}, {variant}: the training loss over the last tenth of the logged steps "
            f"averages {tail:.3f} ({len(group)} seeds), against {entropy:.3f}, the cross-entropy of always answering "
            f"the class frequencies ({' / '.join(f'{label} {share:.3f}'.strip() for label, share in prior)}): "
            f"{reading}."
        )
        lifted = (lifts or {}).get((task, str(variant)), [])
        updates = [text for text in lifted if "pooling" not in text]
        pooling = [text for text in lifted if "pooling" in text]
        if updates:
            lines[-1] += (
                " Other training settings lift its mean off the majority class (test, mean ± std over seeds, same "
                "rate otherwise; a 95% interval that reaches the majority class is given): "
                + "; ".join(updates)
                + "."
                + (
                    " More epochs and smaller batches both mean more optimizer updates (a larger rate was no "
                    "substitute: §3's grid): it had too few updates at this budget, not too few parameters."
                    if any("not shown" not in text for text in updates)
                    else " None is shown above the majority class with 3 seeds: a hint, not a verdict."
                )
            )
        if pooling:
            lines[-1] += (
                " At the same budget, another pooling lifts its mean (the head reads the tokens' mean instead of the "
                "first token through BERT's pooler): "
                + "; ".join(pooling)
                + "."
                + (
                    " The head's input limited it, not the number of trained parameters."
                    if any("not shown" not in text for text in pooling)
                    else " Not shown above the majority class with 3 seeds: a hint that the head's input matters, "
                    "not a verdict."
                )
            )
    if not lines:
        return ""
    return "Methods that score the majority class, and why:\n\n" + "\n".join(lines) + "\n"


def _longer_training(frame, profile) -> str:
    """Runs trained for more epochs than the profile's, read against the same method and rate at its epochs."""
    runs = analysis.longer_training_runs(frame, profile)
    if runs.empty:
        return _not_trained_longer(frame, profile, runs)
    table = (
        runs.groupby(["task", "variant", "lr", "epochs"], observed=True)
        .agg(
            seeds=("test", "size"),
            best_epoch=("best_epoch", "mean"),
            validation=("best_validation", "mean"),
            test=("test", "mean"),
            test_std=("test", "std"),
            majority=("majority", "mean"),
        )
        .reset_index()
    )
    table["task"] = table["task"].map(lambda t: get_task(t).display_name)
    table["test"] = [analysis.mean_std_text(row["test"], row["test_std"], row["seeds"]) for _, row in table.iterrows()]
    table["lr"] = table["lr"].map(lambda lr: f"{lr:g}")
    table["best_epoch"] = table["best_epoch"].round(1)
    table = table.drop(columns="test_std").rename(
        columns={
            "best_epoch": "best epoch (mean)",
            "validation": "validation (mean of best)",
            "majority": "majority class",
        }
    )
    lines = [
        "### Training longer\n",
        f"Runs trained for more than the profile's {profile.epochs:g} epochs (the best epoch is kept by validation), "
        "beside the same method at the same rate for "
        f"{profile.epochs:g} epochs (test = GLUE dev):\n",
        _table(table.round(3)) + "\n",
    ]
    for (task, variant, lr), group in runs.groupby(["task", "variant", "lr"], observed=True):
        for epochs in sorted(set(group["epochs"]) - {profile.epochs}):
            pair = group[group["epochs"].isin([epochs, profile.epochs])]
            comparison = analysis.compare(
                pair, "epochs", epochs, profile.epochs, names=(f"{epochs:g} epochs", f"{profile.epochs:g} epochs")
            )
            if comparison:
                where = f"{get_task(task).display_name} ({variant}, lr {lr:g})"
                lines.append("- " + comparison.sentence(get_task(task).main_metric, where))
    return "\n".join(lines) + "\n" + _not_trained_longer(frame, profile, runs)


def _not_trained_longer(frame, profile, longer) -> str:
    """Per task with no run trained longer: how often the best validation epoch was the last one, i.e.
    whether the validation curve was still rising when training stopped (more epochs not measured)."""
    defaults = analysis.profile_runs(frame, profile)
    tried = set(longer.loc[longer["epochs"] > profile.epochs, "task"]) if not longer.empty else set()
    lines = []
    for task, group in defaults.groupby("task", sort=False):
        if task in tried or group["best_epoch"].isna().all():
            continue
        last = int(np.isclose(group["best_epoch"], group["epochs"]).sum())
        lines.append(
            f"On {get_task(task).display_name} no run trained longer than {profile.epochs:g} epochs; the best "
            f"validation epoch was the last one in {last} of {len(group)} runs"
            + (", so more epochs might still pay there (not measured)." if last * 2 > len(group) else ".")
        )
    return "\n".join(lines) + ("\n" if lines else "")


def _overfit_section(records: list[dict], figures_dir: Path, report_dir: Path) -> str:
    """The sanity check every fine-tuning setup should pass: can each method memorise a few examples?"""
    checks = [r for r in records if r["config"].get("eval_train")]
    if not checks:
        return ""
    plots.overfit_curves(checks, figures_dir)
    rows = []
    for record in checks:
        metric = get_task(record["config"]["task"]).main_metric
        train = [(e["epoch"], e["metrics"].get(metric)) for e in record["evals"] if e["split"] == "train"]
        reached = next((epoch for epoch, value in train if value is not None and value >= 0.99), None)
        rows.append(
            {
                "task": get_task(record["config"]["task"]).display_name,
                "method": plots.run_label(record),
                "lr": f"{record['config']['lr']:g}",
                "training examples": record["data"]["sizes"]["train"],
                "batch": record["config"]["batch_size"],
                "epochs": record["config"]["epochs"],
                "steps": record["timing"].get("steps", ""),
                f"final train {metric}": round(train[-1][1], 3) if train else None,
                "first epoch ≥ 0.99": f"{reached:g}" if reached is not None else "never",
                f"final validation {metric}": round(
                    next(e["metrics"][metric] for e in reversed(record["evals"]) if e["split"] == "validation"), 3
                ),
            }
        )
    table = pd.DataFrame(rows)
    never = table[table["first epoch ≥ 0.99"] == "never"]
    verdict = (
        "Every method memorises its training examples, as a working training loop must."
        if never.empty
        else f"Not every method memorises them: {', '.join(never['method'] + ' on ' + never['task'])} "
        "stay below 0.99 training accuracy."
    )
    if not never.empty and set(never["method"]) == {"head"}:
        width = checks[0]["model_info"].get("hidden_size")
        verdict += (
            f" The head trains only a linear classifier on frozen features; {table['training examples'].max()} points "
            f"in {width} dimensions are linearly separable (in general position), so it falls short on steps and rate "
            "(the table's), not on capacity."
        )
    settings = checks[0]["config"]
    intro = (
        "Each method trained on a few examples for many epochs at its default learning rate, scoring the training "
        "split every epoch (validation for contrast, on "
        f"{settings.get('max_validation_samples') or 'all'} examples of the validation slice):"
    )
    return (
        "### Overfitting check\n\n"
        + intro
        + "\n\n"
        + _table(table)
        + "\n\n"
        + verdict
        + "\n\n"
        + _figure(
            figures_dir / "overfit.png",
            report_dir,
            "Overfitting check: training (solid) and validation (dotted) accuracy per epoch.",
        )
    )


PUBLISHED_BESIDE = ("bitfit", "lora", "full")  # our methods shown beside the published scores


def _published_context(frame: pd.DataFrame, profile) -> str:
    """Published dev-set scores from the task table, labelled as such, one column per source, beside our
    best group per method (selected on validation among the compared runs, those trained longer included)."""
    runs = analysis.compared_runs(frame, profile)
    ours = pd.concat([analysis.best_groups(runs, [method]) for method in PUBLISHED_BESIDE])
    rows, sources = [], {}  # a published key is "method, source": the source goes to a numbered note
    for task in dict.fromkeys(runs["task"]):
        spec = get_task(task)
        if not spec.published:
            continue
        row = {"task": spec.display_name, "metric": spec.main_metric}
        for what, score in spec.published.items():
            method, source = what.split(", ", 1)
            number = sources.setdefault(source, len(sources) + 1)
            row[f"published: {method} [{number}]"] = f"{score / 100:.3f}"
        for _, top in ours[ours["task"] == task].iterrows() if not ours.empty else []:
            row[f"ours: {top['variant']}"] = (
                f"{analysis.mean_std_text(top['mean'], top['std'], top['n'])} ({top['epochs']:g} ep, lr {top['lr']:g})"
            )
        rows.append(row)
    if not rows:
        return ""
    table = pd.DataFrame(rows).fillna("")
    published = [c for c in table.columns if c.startswith("published: ")]
    table = table[["task", "metric", *sorted(published), *[c for c in table.columns if c.startswith("ours: ")]]]
    return (
        "For context only — **published dev-set numbers, not runs of this project** (columns marked *published*; "
        "RoBERTa-base has 125M parameters, 5.5× this model), beside ours (all-MiniLM-L6-v2, each method's best "
        "group on validation, test mean ± std over seeds, its epochs and rate):\n\n"
        + _table(table)
        + "\n\n"
        + "; ".join(f"[{number}] {source}" for source, number in sources.items())
        + ".\n"
    )
