"""`report.md`, generated from run records only (by `python -m helpers report` and notebook 06).

Every number comes from a run record (the throughput section from the bench's JSON); every
comparison sentence is decided by helpers.analysis from the per-seed values, so the text cannot
contradict the tables.
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from helpers import analysis, compare, plots
from helpers.fields import default_of
from helpers.methods import method_spec
from helpers.paths import BENCH_PATH, PROJECT_ROOT
from helpers.profiles import get_profile
from helpers.tasks import get_task
from helpers.training import TrainConfig


def _table(frame: pd.DataFrame) -> str:
    """A markdown table without extra dependencies (pandas' to_markdown needs `tabulate`)."""
    columns = list(frame.columns)
    lines = ["| " + " | ".join(map(str, columns)) + " |", "|" + "---|" * len(columns)]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(_cell(row[c]) for c in columns) + " |")
    return "\n".join(lines)


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _figure(path: Path, report_dir: Path, caption: str) -> str:
    return f"![{caption}]({os.path.relpath(path, report_dir)})\n\n*{caption}*\n"


def _budget_labelled(runs: pd.DataFrame, profile) -> pd.DataFrame:
    """The runs with each variant trained longer than the profile's epochs shown as its own bar
    ("bitfit, 5 epochs"), placed after the variant it extends."""
    if runs.empty:
        return runs
    longer = ~np.isclose(runs["epochs"].astype(float), profile.epochs)
    labels = [
        f"{variant}, {epochs:g} epochs" if extra else str(variant)
        for variant, epochs, extra in zip(runs["variant"], runs["epochs"], longer)
    ]
    base = (
        list(runs["variant"].cat.categories)
        if hasattr(runs["variant"], "cat")
        else sorted(set(map(str, runs["variant"])))
    )
    order = [label for variant in base for label in sorted(set(labels)) if label.split(",")[0] == str(variant)]
    return runs.assign(variant=pd.Categorical(labels, categories=order, ordered=True))


def _rank_runs(frame: pd.DataFrame, profile) -> pd.DataFrame:
    """LoRA's rank-sweep runs (α fixed); for a profile read from the study, on the study's sweep tasks only
    (CoLA's and RTE's r=8 runs come from their rate search, not from a sweep)."""
    ranks = analysis.lora_grid_runs(frame, profile, "rank")
    if profile.from_study:
        from helpers.study import TASKS

        ranks = ranks[ranks["task"].isin(TASKS)]
    return ranks


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


def build_figures(frame: pd.DataFrame, records: list[dict], figures_dir: Path, profile) -> dict[str, Path]:
    """Every report figure that the records support; returns {name: path}."""
    figures = {}
    main = analysis.profile_runs(frame, profile)
    main = main[main["variant"].isin(["bitfit", "lora"])]
    compared = _budget_labelled(analysis.compared_runs(frame, profile), profile)
    if not main.empty:
        plots.method_bars(
            compared[compared["method"].isin(["bitfit", "lora"])], figures_dir, "bitfit_vs_lora", "BitFit vs LoRA (r=8)"
        )
        figures["bitfit_vs_lora"] = figures_dir / "bitfit_vs_lora.png"
        first_seed = int(main["seed"].min())
        chosen = [r for r in records if r["run_id"] in set(main["run_id"]) and r["config"]["seed"] == first_seed]
        plots.training_curves(chosen, figures_dir, "training_curves", f" (seed {first_seed})")
        figures["training_curves"] = figures_dir / "training_curves.png"
        figures["first_seed"] = first_seed
    curves = _with_test_curves(records)
    if curves:
        first = min(r["config"]["seed"] for r in curves)
        plots.training_curves(
            [r for r in curves if r["config"]["seed"] == first], figures_dir, "test_curves", f" (seed {first})"
        )
        figures["test_curves"] = figures_dir / "test_curves.png"
    ranks = _rank_runs(frame, profile)
    if ranks["rank"].nunique() > 1:
        plots.rank_sweep(ranks, figures_dir)
        figures["rank_sweep"] = figures_dir / "rank_sweep.png"
    lrs = analysis.lr_sweep_runs(frame, profile)
    if not lrs.empty:
        plots.lr_sensitivity(lrs, figures_dir)
        figures["lr_sensitivity"] = figures_dir / "lr_sensitivity.png"
    methods = analysis.profile_runs(frame, profile)
    if methods["variant"].nunique() > 2:
        plots.method_bars(compared, figures_dir, "methods", "all methods")
        plots.cost_per_method(methods, figures_dir)
        plots.metric_vs_parameters(methods, figures_dir)
        figures.update({n: figures_dir / f"{n}.png" for n in ("methods", "time_memory", "metric_vs_parameters")})
    for column, label in [("batch_size", "batch size"), ("warmup_ratio", "warmup ratio")]:
        subset = analysis.setting_grid_runs(frame, profile, column)
        if subset[column].nunique() > 1:
            plots.setting_effect(subset, column, label, figures_dir, f"effect_{column}")
            figures[f"effect_{column}"] = figures_dir / f"effect_{column}.png"
    return figures


def write_report(
    results_dir,
    figures_dir,
    report_path,
    profile: str,
    bench_path=None,
    wall_seconds: dict | None = None,
    llm_dir=None,
) -> str:
    """Build the figures and write report.md from the records in `results_dir` (and §8 from the LLM
    records in `llm_dir`, when given); returns the text."""
    results_dir, figures_dir, report_path = Path(results_dir), Path(figures_dir), Path(report_path)
    profile = get_profile(profile)
    frame, records, problems = analysis.load_frame(results_dir)
    if frame.empty:
        raise ValueError(f"No run records in {results_dir}: run the notebooks (or `python -m helpers sweep`) first.")
    figures = build_figures(frame, records, figures_dir, profile)
    defaults = analysis.profile_runs(frame, profile)
    if defaults.empty:
        raise ValueError(
            f"No records in {results_dir} match profile {profile.name!r}'s settings; pass the profile the runs used."
        )
    report_dir = report_path.parent
    out = [
        *_introduction(frame, problems, results_dir, report_dir, profile),
        *_targets_section(frame, profile),
        *_design_and_data_section(defaults, figures_dir, report_dir, profile),
        *_results_section(frame, defaults, records, figures, (figures_dir, report_dir), profile, results_dir),
        *_peft_section(frame, defaults, profile, figures, report_dir),
        *_bitfit_vs_lora_section(frame, defaults, profile, figures, report_dir),
        *_all_methods_section(defaults, figures, report_dir, profile),
        *_other_settings_section(frame, profile, figures, report_dir),
        *_throughput_section(results_dir, bench_path, wall_seconds),
        *(_llm_section(Path(llm_dir), figures_dir, report_dir) if llm_dir is not None else []),
    ]
    text = "\n".join(out) + "\n"
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(text)
    return text


def _introduction(frame, problems, results_dir: Path, report_dir: Path, profile) -> list[str]:
    """The title, where the numbers come from and how comparisons are decided."""
    out = [
        "# PEFT on GLUE: report\n",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `helpers.report` from **{len(frame)} run "
        "records** in "
        f"`{os.path.relpath(results_dir, report_dir)}/` (profile `{profile.name}`; device: "
        f"{', '.join(sorted(set(frame['device'])))}). "
        "Every number below is read from those records. Comparisons are decided from the per-seed values by Welch's "
        "t-test "
        f"(two-sided, p < {analysis.ALPHA}), with the 95% interval of the difference; a side with fewer than "
        f"{analysis.MIN_SEEDS} "
        "seeds leaves the comparison undecided, however large the difference. Tables give mean ± std over seeds and a "
        "95% "
        "t-interval of the mean. Each comparison is tested on its own, with no correction for the many this report "
        "makes: read a p-value just under the threshold as weak evidence.\n",
    ]
    if problems:
        out.append(f"> {len(problems)} file(s) in the results folder were not valid records and were skipped.\n")
    return out


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
        published = next((v for k, v in spec.published.items() if k.startswith("full fine-tuning")), None)
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
    learned_nothing = analysis.over_seeds(runs, ["task", "variant", "epochs", "lr"]).merge(
        runs.groupby(["task", "variant"], observed=True)["majority"].mean().reset_index(), on=["task", "variant"]
    )
    for _, row in learned_nothing.iterrows():
        if analysis.at_or_below(row["mean"], row["majority"]):
            where = f"{get_task(row['task']).display_name} {row['variant']} at {row['epochs']:g} epochs"
            lines.append(
                f"- {where} (lr {row['lr']:g}) scores no better than the majority class ({row['majority']:.3f}, "
                "mean over seeds): see §2 for why, and for the same method trained longer."
            )
    if profile.from_study:
        from helpers.study import OTHER_TASKS

        missing = [get_task(t).display_name for t in OTHER_TASKS if t not in set(runs["task"])]
        if missing:
            lines.append(
                f"- {' and '.join(missing)}: no runs at a selected rate in these records yet (the study's tier 5, "
                "`python -m helpers.study --tier 5`; its rate search comes first, §3)."
            )
    return out + (["\n".join(lines) + "\n"] if lines else [])


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


def _design_and_data_section(defaults, figures_dir: Path, report_dir: Path, profile) -> list[str]:
    """§1: the model, what each method trains, the data and the training settings."""
    out = ["## 1. Model design and data\n", _model_design(defaults), _data_section(defaults, profile)]
    if (figures_dir / "token_lengths.png").is_file():  # drawn by notebook 01 from the data, not from records
        out.append(
            _figure(
                figures_dir / "token_lengths.png",
                report_dir,
                "Token lengths per task (notebook 01); the dashed line is the truncation length.",
            )
        )
    return out


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
    """Per (task, variant): the changed settings (more epochs; tier 3's batch sizes and warmups) whose runs,
    3+ seeds, beat the majority class on test: what a method stuck at the profile's settings needed."""
    longer = analysis.longer_training_runs(frame, profile)
    changes = [(longer[longer["epochs"] > profile.epochs], "epochs", "{:g} epochs")] if not longer.empty else []
    for knob, text in (("batch_size", "batch {:g}"), ("warmup_ratio", "warmup {:g}")):
        runs = analysis.setting_grid_runs(frame, profile, knob)
        usual = getattr(profile, knob, None) or default_of(TrainConfig, knob)
        changes.append((runs[~np.isclose(runs[knob].astype(float), usual)], knob, text))
    lifts: dict[tuple[str, str], list[str]] = {}
    for runs, knob, text in changes:
        for (task, variant, value), group in runs.groupby(["task", "variant", knob], observed=True):
            scores = group["test"]
            if len(scores) >= analysis.MIN_SEEDS and not analysis.at_or_below(scores.mean(), group["majority"].mean()):
                lifts.setdefault((task, str(variant)), []).append(
                    f"{text.format(value)}: {analysis.mean_std_text(scores.mean(), scores.std(), len(scores))}"
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
        lifted = (lifts or {}).get((task, str(variant)))
        if lifted:
            lines[-1] += (
                " More updates lift it off the majority class (test, mean ± std over seeds, same rate otherwise): "
                + "; ".join(lifted)
                + ". Its rate and budget were too small for this task, not its parameters."
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


def _peft_section(frame, defaults, profile, figures, report_dir: Path) -> list[str]:
    """§3: why BitFit works, and the learning rates each method wants."""
    return [
        "## 3. PEFT discussion\n",
        _bitfit_discussion(
            defaults, analysis.longer_training_runs(frame, profile), profile, _edge_rates(frame, profile)
        ),
        _learning_rate_discussion(frame, profile, figures, report_dir),
    ]


def _bitfit_vs_lora_section(frame, defaults, profile, figures, report_dir: Path) -> list[str]:
    """§4: BitFit against LoRA per task, then LoRA's rank and its alpha/r scale."""
    out = ["## 4. BitFit vs LoRA, and LoRA's rank\n"]
    if "bitfit_vs_lora" in figures:
        out.append(
            _figure(
                figures["bitfit_vs_lora"],
                report_dir,
                "BitFit vs LoRA r=8: test metric (mean ± std over seeds), annotated with % of parameters trained.",
            )
        )
    for task in dict.fromkeys(defaults["task"]):
        comparison = analysis.compare(
            defaults[defaults["task"] == task], "variant", "lora", "bitfit", names=("LoRA", "BitFit")
        )
        if comparison:
            out.append(f"- At {profile.epochs:g} epochs: " + analysis.task_sentence(comparison, task))
    longer = analysis.longer_training_runs(frame, profile)
    for (task, epochs), runs in longer.groupby(["task", "epochs"], observed=True) if not longer.empty else []:
        comparison = analysis.compare(runs, "variant", "lora", "bitfit", names=("LoRA", "BitFit"))
        if epochs != profile.epochs and comparison:
            out.append(f"- At {epochs:g} epochs (§2): " + analysis.task_sentence(comparison, task))
    out += ["", _rank_discussion(frame, profile, figures, report_dir), _alpha_discussion(frame, profile)]
    return out


def _all_methods_section(defaults, figures, report_dir: Path, profile) -> list[str]:
    """§5: every method's score, share of parameters, time and memory."""
    out = ["## 5. Every method with runs: score, parameters, time and memory\n"]
    if profile.from_study:
        from helpers.study import other_methods

        missing = [name for name in other_methods() if name not in set(defaults["variant"].astype(str))]
        if missing:
            out.append(
                f"Not in these records yet: {', '.join(missing)} (the study's tier 4, "
                "`python -m helpers.study --tier 4`).\n"
            )
    batch = defaults["memory_batch"].iloc[0]
    for name, caption in [
        ("methods", "Test metric per method (mean ± std over seeds)."),
        ("metric_vs_parameters", "Score against the share of parameters trained."),
        (
            "time_memory",
            f"Training time per 1,000 examples, and memory of one training step on a batch of {batch} tokens: "
            "parameters, gradients, AdamW state, saved activations.",
        ),
    ]:
        if name in figures:
            out.append(_figure(figures[name], report_dir, caption))
    out.append(_cost_table(defaults))
    return out


def _other_settings_section(frame, profile, figures, report_dir: Path) -> list[str]:
    """§6: pooling, then BitFit's and LoRA's batch size and warmup ratio."""
    out = ["## 6. Pooling, batch size and warmup\n", _pooling_discussion(frame, profile)]
    for column, caption in [
        ("batch_size", "BitFit and LoRA r=8: effect of the batch size (each at its learning rate, fixed)."),
        ("warmup_ratio", "BitFit and LoRA r=8: effect of the warmup ratio."),
    ]:
        if f"effect_{column}" in figures:
            out.append(_figure(figures[f"effect_{column}"], report_dir, caption))
    settings = _best_settings(frame, profile)
    out.append(settings or _not_in_records("batch-size or warmup comparison", "05", "3", profile))
    return out


def _throughput_section(results_dir: Path, bench_path, wall_seconds: dict | None) -> list[str]:
    """§7: the bench's recipe comparison and the notebooks' wall time."""
    out = ["## 7. Throughput\n", _bench_section(bench_path)]
    wall_seconds = wall_seconds or _read_wall_seconds(results_dir)
    if wall_seconds:
        out.append(
            "Wall time of the notebooks' last run (a notebook trains only the runs with no record yet, so over "
            "committed records this is mostly loading and plotting): "
            + ", ".join(f"{k} {v / 60:.1f} min" for k, v in wall_seconds.items())
            + f"; {sum(wall_seconds.values()) / 60:.1f} min in all before the analysis notebook "
            f"(each notebook's last cell states its own).\n"
        )
    return out


def _llm_section(llm_dir: Path, figures_dir: Path, report_dir: Path) -> list[str]:
    """§8: the small LLM prompted (in-context learning) and fine-tuned with LoRA, beside MiniLM."""
    if not llm_dir.is_dir():
        return []
    frame, records, _ = analysis.load_frame(llm_dir)
    if frame.empty:
        return []  # no LLM records (yet): no section
    sizes = frame.groupby("model")["model_parameters"].max()
    out = [
        "## 8. A small LLM beside MiniLM\n",
        f"Records in `{os.path.relpath(llm_dir, report_dir)}/`: "
        + ", ".join(
            f"{compare.short_model_name(model)} ({size / 1e6:.0f}M parameters)" for model, size in sizes.items()
        )
        + ". In-context learning (ICL) trains nothing: the LLM reads an instruction, k demonstrations drawn from the "
        "training split (one draw per seed) and the example, and either the label words' log-likelihoods decide "
        "(`loglik`, always a label) or its free answer is parsed (`generate`; an answer naming no label counts as "
        "wrong). ICL scores the GLUE dev set or a seeded subset of it (`examples`; never averaged together); "
        "the majority-class score is on the same examples.\n",
    ]
    icl = compare.icl_table(records)
    if not icl.empty:
        out += [_icl_sentences(icl) + _scorings_agree(icl), _table(compare.icl_display(icl)) + "\n"]
    tuned = frame[frame["method"] != "icl"]
    if not tuned.empty:
        settings = tuned.groupby(["train_size", "epochs", "lr"]).size().index
        out.append(
            "The fine-tuned runs below train on "
            + "; ".join(f"{int(n):,} training examples for {e:g} epochs at lr {lr:g}" for n, e, lr in settings)
            + " (both models the same), so their scores sit below the whole-set MiniLM runs of §2.\n"
        )
    for task in sorted(set(tuned["task"])):
        out += _two_models(frame[frame["task"] == task], task, figures_dir, report_dir)
    return out


def _icl_sentences(icl: pd.DataFrame) -> str:
    """Per task: whether any prompt setting with 3 or more draws beats the majority class (its
    interval above it), and how lopsided the answers are."""
    sentences = []
    for task, rows in icl.groupby("task", sort=False):
        decided = rows[rows["draws"] >= analysis.MIN_SEEDS]
        above = decided[[low > majority for (low, _), majority in zip(decided["interval"], decided["majority"])]]
        best = rows.loc[rows["score"].idxmax()]
        verdict = (
            "beats always predicting the majority class (its 95% interval lies above it) with "
            + ", ".join(f"k={r.shots} {r.scoring}" for r in above.itertuples())
            if not above.empty
            else "beats always predicting the majority class in no setting with "
            f"{analysis.MIN_SEEDS}+ draws (no interval lies above it)"
        )
        sentences.append(
            f"On {task}, ICL {verdict}; its best mean is {best['score']:.3f} (k={best['shots']}, {best['scoring']}) "
            f"against {best['majority']:.3f}, and the most predicted label takes "
            f"{rows['top_label_share'].min():.0%}–{rows['top_label_share'].max():.0%} of its answers."
        )
    return " ".join(sentences) + "\n"


def _scorings_agree(icl: pd.DataFrame) -> str:
    """Where `generate` and `loglik` score the same for every setting with demonstrations, say why."""
    shown = icl[icl["shots"] > 0]
    pivot = shown.pivot_table(index=["task", "shots"], columns="scoring", values="score", aggfunc="first")
    if not {"generate", "loglik"} <= set(pivot.columns) or not np.allclose(pivot["generate"], pivot["loglik"]):
        return ""
    parsed = shown.loc[shown["scoring"] == "generate", "unparseable"].fillna(0).max() == 0
    return (
        " With demonstrations (k ≥ 1) the two scorings give the same score in every setting"
        + (
            ": the free answer always names a label (unparseable 0%), and it is the label with the higher "
            "log-likelihood"
            if parsed
            else ""
        )
        + "; the rows repeat each other, and differ only without demonstrations (k = 0).\n"
    )


def _two_models(runs: pd.DataFrame, task: str, figures_dir: Path, report_dir: Path) -> list[str]:
    """One task: the models fine-tuned with the same method (and the LLM's ICL) in one table and one
    bar plot, and the Welch verdict between the models for each method both were fine-tuned with."""
    spec = get_task(task)
    table = compare.model_comparison(runs, task)
    plots.model_comparison(
        table, figures_dir, name=f"model_comparison_{task}", title=f"{spec.display_name}: models side by side"
    )
    out = [f"### {spec.display_name}\n"]
    out += [sentence + "\n" for sentence in compare.model_verdicts(runs, task)]
    quantized = compare.quantization_verdicts(runs, task) + compare.quantization_costs(table)
    if quantized:
        sizes = runs.groupby("model")["model_parameters"].max()
        weights = ", ".join(
            f"{compare.short_model_name(model)} {size * 2 / 2**20:,.0f} MiB" for model, size in sizes.items()
        )
        out.append(
            "QLoRA keeps the base model's linear layers in 4 bits (NF4, bitsandbytes, CUDA only) and trains LoRA "
            "adapters and the head in full precision. " + " ".join(quantized) + " Why QLoRA saves little or nothing "
            f"here: the frozen weights are a small part of the peak (in bf16: {weights}), 4 bits save at most three "
            "quarters of them, and bitsandbytes dequantises each layer's weight for every matmul, a temporary "
            "full-precision copy and extra time. It pays off when the weights dominate memory, i.e. for large "
            "models.\n"
        )
    out += [
        _table(compare.model_display(table)) + "\n",
        _figure(
            figures_dir / f"model_comparison_{task}.png",
            report_dir,
            f"{spec.display_name}: test {spec.main_metric} (mean ± std over seeds or draws), trainable parameters, "
            "training samples/s and peak memory per model and method. Fine-tuned runs are scored on the whole dev "
            "set, ICL runs on their subset (see the ICL table). Memory as each record measured it: for "
            "fine-tuning on a CPU, parameters + gradients + optimizer state + activations of the largest batch; "
            "on a GPU, the most memory allocated while training (torch.cuda.max_memory_allocated); for ICL, the "
            "process's peak resident memory. Speed and memory compare only between runs on the same hardware.",
        ),
    ]
    return out


def _read_wall_seconds(results_dir: Path) -> dict:
    """Wall time per training notebook, saved by `python -m helpers notebooks` next to the records
    (the analysis notebook, which writes this report, is left out: its time is known only after)."""
    path = results_dir / "meta" / "notebook_seconds.json"
    seconds = json.loads(path.read_text()) if path.is_file() else {}
    return {name: value for name, value in seconds.items() if "analysis" not in name}


def what_trains(row) -> str:
    """What a run's method trains, in its registry row's words, with the knobs the run actually used."""
    spec = method_spec(str(row["method"]))
    return spec.what_trains(analysis.row_knobs(row)) if spec else ""


def _model_design(defaults: pd.DataFrame) -> str:
    row = defaults.iloc[0]
    lines = []
    if row.get("model_model_type"):
        lines.append(
            f"- **Base model**: `{row['model']}` ({row['model_model_type']} architecture, {int(row['model_layers'])} "
            "layers, hidden size "
            f"{int(row['model_hidden_size'])}, {int(row['model_heads'])} heads, MLP width "
            f"{int(row['model_intermediate_size'])}; "
            f"{int(row['model_parameters']):,} parameters with the classification head)."
        )
    else:
        lines.append(f"- **Base model**: `{row['model']}`.")
    pooled = "mean" in set(defaults["pooling"])
    lines.append(
        "- **Head**: the model's own sequence-classification head (for BERT: the first token's final state → the "
        "pretrained "
        "pooler, dense + tanh → dropout → a new linear classifier). The classifier always trains and is saved with the "
        "adapter; the pooler is pretrained and stays frozen except under full fine-tuning and BitFit (its bias)."
        + (" A mean-pooling variant is compared in §6." if pooled else "")
    )
    lines.append("- **What trains** (everything else is frozen):\n")
    first = {str(row["variant"]): row for _, row in defaults.groupby("variant", observed=True).head(1).iterrows()}
    design = (
        defaults.groupby("variant", observed=True)
        .agg(trainable=("trainable", "first"), percent=("percent", "first"))
        .reset_index()
    )
    design["what trains"] = design["variant"].astype(str).map(lambda v: what_trains(first[v]))
    design["trainable"] = design["trainable"].map(lambda v: f"{int(v):,}")
    design["percent"] = design["percent"].map(lambda v: f"{v:.3g}%")
    note = (
        "`percent` is of every parameter of the model as trained, so an adapter's own parameters count in the total "
        "(as peft's `print_trainable_parameters` counts them)."
    )
    return "\n".join(lines) + "\n\n" + _table(design) + "\n\n" + note + "\n"


def _data_section(defaults: pd.DataFrame, profile) -> str:
    sizes = (
        defaults.groupby("task")
        .agg(
            train=("train_size", "first"),
            validation=("validation_size", "first"),
            test=("test_size", "first"),
            select_on=("select_on", "first"),
        )
        .reset_index()
    )
    sizes["task"] = sizes["task"].map(lambda t: get_task(t).display_name)
    row = defaults.iloc[0]
    cap = (
        "none"
        if pd.isna(row["max_train_samples"])
        else f"{int(row['max_train_samples']):,} examples (seeded, stratified)"
    )
    seeds = sorted(set(defaults["seed"]))
    text = (
        f"- **Data and training**: training subsample cap {cap}; {row['epochs']:g} epoch(s), batch "
        f"{int(row['batch_size'])}, max length "
        f"{int(row['max_length'])}, linear schedule with {row['warmup_ratio']:.0%} warmup, seeds {seeds}. "
    )
    if set(sizes["select_on"]) == {"train_slice"}:
        settings = row["settings"]
        fraction, evaluated = settings.get("validation_fraction"), settings.get("max_validation_samples")
        text += (
            f"`validation` is a seeded, stratified {fraction:.0%} slice of GLUE train, held out from training"
            + (
                f" and evaluated on at most {evaluated:,} of its examples (the rest of a larger slice is unused)"
                if evaluated
                else ""
            )
            + ", used to pick the best epoch and the learning rate; `test` is the GLUE dev set, used only for "
            "reporting" + _grid_note(profile) + ":\n"
        )
    else:
        text += (
            "Some runs selected their best epoch **on the GLUE dev set** (`select_on = dev`, as papers do), which is "
            "also the "
            "reported `test` split: their test numbers are optimistic.\n"
        )
    return text + "\n" + _table(sizes) + "\n"


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
        standing = "passes" if versus.verdict == "a" else "is level with (within noise of)"
        return (
            f"{'supported' if supported else 'not supported'}: BitFit ({bitfit:.3f}) {standing} full fine-tuning "
            f"({full:.3f}; Welch's t-test p = {p_value:.2g}) and "
            + ("beats" if bitfit_vs_head.verdict == "a" else "does not clearly beat")
            + f" the classifier alone ({head:.3f}), training {share}."
        )
    low, high = analysis.gap_closed_interval(
        *(subset.loc[subset["variant"] == variant, "test"] for variant in ("bitfit", "head", "full"))
    )
    return (
        f"{'supported' if supported else 'not supported'}: BitFit closes {recovered:.0%} of the gap between the "
        f"classifier alone ({head:.3f}) and full fine-tuning ({full:.3f}; 95% bootstrap interval over seeds "
        f"{low:.0%} to {high:.0%}) while training {share}"
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


def _lr_relations(best: pd.DataFrame) -> tuple[list[str], list[str]]:
    """One line per (task, PEFT method) with a full fine-tuning sweep beside it, and the relations
    ('larger', 'smaller', 'undecided') of their best rates to full fine-tuning's."""
    variants = best["variant"].astype(str)
    full = {row["task"]: row for _, row in best[variants == "full"].iterrows()}
    lines, relations = [], []
    for method in ("bitfit", "lora", "head"):
        for _, peft in best[variants == method].iterrows():
            if peft["task"] not in full:
                continue
            reference = full[peft["task"]]
            relation = analysis.lr_relation(peft, reference)
            relations.append(relation)
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


def _lr_conclusion(relations: list[str], degrading: str, peft_degrading: str) -> list[str]:
    """The count of pairs on each side, and what they say about 'PEFT wants larger learning rates'."""
    larger, smaller = relations.count("larger"), relations.count("smaller")
    decided = len(relations) - relations.count("undecided")
    lines = [
        f"\nThe PEFT method's best learning rates are larger than full fine-tuning's in {larger} of {len(relations)} "
        "(task, method) pairs, "
        f"smaller in {smaller}, undecided in {len(relations) - decided} (a pair counts only when "
        "every rate "
        "within noise of the best lies on the same side)."
    ]
    if not decided:
        lines.append("No pair is decided, so these records say nothing about which learning rates PEFT methods want.")
    elif decided * 2 < len(relations):
        lines.append(
            f"Only {decided} of {len(relations)} pairs are decided ({larger} larger, {smaller} smaller): too few to "
            "support or "
            "contradict the usual claim that PEFT methods want larger learning rates than full fine-tuning."
        )
    elif larger == decided:
        lines.append(_why_peft_wants_larger_rates(degrading, peft_degrading))
    else:
        lines.append(
            f"Of the decided pairs, {larger} put the PEFT rate higher and {smaller} lower: these records do not "
            "support the usual claim that "
            "PEFT methods want larger learning rates than full fine-tuning; with these data sizes and epochs the sweep "
            "is the "
            "better guide." + (f" ({degrading}.)" if degrading else "")
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
                "LoRA rank sweep: parameters (log) and test metric (mean ± std over seeds).",
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


def _alpha_discussion(frame, profile) -> str:
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


def _method_gaps(runs: pd.DataFrame) -> pd.Series:
    """Mean validation − test per method variant."""
    return (runs["best_validation"] - runs["test"]).groupby(runs["variant"], observed=True).mean()


def _validation_test_gap(defaults: pd.DataFrame, grid: pd.DataFrame, overlap: dict | None = None) -> str:
    """Validation (a slice of GLUE train) against test (GLUE dev), per task and per method, with the token
    lengths and the text the slice shares with training (`overlap`, helpers.data.split_overlap's numbers
    per task) that explain SST-2's gap, and the same gap on the grids' smaller training subset."""
    rows = []
    for task, group in defaults.groupby("task", sort=False):
        gaps = _method_gaps(group)
        row = {
            "task": get_task(task).display_name,
            "validation (mean of best)": f"{group['best_validation'].mean():.3f}",
            "test (mean)": f"{group['test'].mean():.3f}",
            "validation − test": f"{group['best_validation'].mean() - group['test'].mean():+.3f}",
            "validation − test by method": ", ".join(f"{variant} {gap:+.3f}" for variant, gap in gaps.items()),
        }
        for split in ("train", "validation", "test"):
            if f"{split}_tokens_mean" in group and group[f"{split}_tokens_mean"].notna().any():
                row[f"{split} tokens/example"] = f"{group[f'{split}_tokens_mean'].mean():.1f}"
        rows.append(row)
    table = pd.DataFrame(rows)
    text = (
        "### Validation against test\n\nThe validation slice comes from GLUE train and the test set is GLUE dev; "
        "each cell is the mean over every method and seed above:\n\n" + _table(table) + "\n"
    )
    sst2 = table[table["task"] == "SST-2"]
    if not sst2.empty and "test tokens/example" in sst2:
        row = sst2.iloc[0]
        text += (
            "\nSST-2's train set holds the parse-tree **phrases** of its sentences as separate examples, while its "
            f"dev set holds whole **sentences**: {row['train tokens/example']} tokens per training example against "
            f"{row['test tokens/example']} per test example here. The validation slice is drawn from train, so it "
            "holds short phrases too"
            + _shared_text(overlap or {}, "sst2")
            + ". The slice also chose each run's epoch and each method's rate, which lifts its own score, and the gap "
            "differs between methods (by method above). Validation scores rank settings here; the test (GLUE dev) "
            "scores are the ones to compare.\n"
        )
        text += _gap_against_training_size(defaults, grid, "sst2")
    return text


def _shared_text(overlap: dict, task: str) -> str:
    """The clause giving how much validation and test text a training example already holds (notebook 01's
    numbers), or one saying the slice's phrases can come from training's sentences when none were saved."""
    splits = overlap.get(task, {}).get("splits", {})
    validation, test = splits.get("validation"), splits.get("test")
    if not (validation and test):
        return (
            ", and its phrases can come from the same sentences as training phrases (not measured here: notebook 01 "
            "measures it)"
        )
    return (
        f" ({validation['one_word']:.1%} are a single word; {validation['mean_words']:g} words on average against "
        f"{test['mean_words']:g} in test). Beyond length, it shares text with training: "
        f"**{validation['inside_training']:.1%} of the slice's examples appear verbatim inside a training example** "
        f"({validation['identical_to_training']:.1%} are identical to one), against {test['inside_training']:.1%} "
        f"of the test sentences ({validation['examples']:,} validation and {test['examples']:,} test examples "
        "checked, lower-cased, whole words; notebook 01, `meta/split_overlap.json`). The model has trained on most of "
        "the slice's text, inside longer labelled phrases, and on almost none of the test's"
    )


def _gap_against_training_size(defaults: pd.DataFrame, grid: pd.DataFrame, task: str) -> str:
    """The same methods' gap on the grids' training subset: a gap that grows with more training phrases
    points at phrases the slice shares with training (a length effect alone would not grow)."""
    whole, capped = defaults[defaults["task"] == task], grid[grid["task"] == task]
    if capped.empty or set(capped["train_size"]) == set(whole["train_size"]):
        return ""
    small, large = _method_gaps(capped), _method_gaps(whole)
    shared = [variant for variant in large.index if variant in small.index]
    if not shared:
        return ""
    sizes = f"{int(capped['train_size'].iloc[0]):,} → {int(whole['train_size'].iloc[0]):,} training examples"
    return (
        f"\nThe same gap at two training sizes ({get_task(task).display_name}, each method at its rate; {sizes}): "
        + ", ".join(f"{variant} {small[variant]:+.3f} → {large[variant]:+.3f}" for variant in shared)
        + ". A gap that grows with more training phrases is consistent with phrases the slice shares with "
        "training (sentence length does not change with the training size); it is not a test of it.\n"
    )


PUBLISHED_BESIDE = ("bitfit", "lora", "full")  # our methods shown beside the published scores


def _published_context(frame: pd.DataFrame, profile) -> str:
    """Published dev-set scores from the task table, labelled as such, beside our best group (selected on
    validation among the compared runs, those trained longer included)."""
    runs = analysis.compared_runs(frame, profile)
    ours = pd.concat([analysis.best_groups(runs, [method]) for method in PUBLISHED_BESIDE])
    rows = []
    for task in dict.fromkeys(runs["task"]):
        spec = get_task(task)
        for what, score in spec.published.items():
            rows.append(
                {
                    "task": spec.display_name,
                    "published (not ours)": what,
                    "metric": spec.main_metric,
                    "score": f"{score / 100:.3f}",
                }
            )
        if not spec.published or ours.empty:
            continue
        for _, top in ours[ours["task"] == task].iterrows():
            rows.append(
                {
                    "task": spec.display_name,
                    "published (not ours)": f"ours: {top['variant']}, {top['epochs']:g} epochs, lr {top['lr']:g} "
                    "(MiniLM-L6, this report; the method's best group on validation)",
                    "metric": spec.main_metric,
                    "score": analysis.mean_std_text(top["mean"], top["std"], top["n"]),
                }
            )
    if not rows:
        return ""
    return (
        "For context only — **published numbers, not runs of this project** (RoBERTa-base has 125M parameters, 5.5× "
        "this model):\n\n" + _table(pd.DataFrame(rows)) + "\n"
    )


def _cost_table(defaults: pd.DataFrame) -> str:
    table = analysis.cost_table(defaults)
    cuda = analysis.measured_on_cuda(defaults)
    runs = defaults.groupby("variant", observed=True).size()
    counts = f"{runs.min()}" if runs.min() == runs.max() else f"{runs.min()}–{runs.max()}"
    note = (
        f"Training speed: the fastest seed's samples/s per task, of {counts} runs per method (other jobs shared the "
        "machine with some runs, and they only slow a run down), "
        f"recipe `{defaults['recipe'].iloc[0]}`. `step_MiB` = parameters + gradients + AdamW state + activations saved "
        "for backward, "
        f"measured with autograd's saved-tensor hooks on one batch of {defaults['memory_batch'].iloc[0]} tokens "
        "(helpers/memory.py)"
    )
    note += (
        "; `run_peak_MiB` is the CUDA allocator's peak over the whole run."
        if cuda
        else "; on a CPU there is no allocator peak to read."
    )
    return _table(table) + "\n\n" + note + "\n"


def _best_settings(frame, profile) -> str:
    """Best batch size and warmup ratio for BitFit and LoRA by mean validation score, with the grid searched."""
    lines = []
    for column, label in [("batch_size", "batch size"), ("warmup_ratio", "warmup ratio")]:
        subset = analysis.setting_grid_runs(frame, profile, column)
        if subset[column].nunique() < 2:
            continue
        for _, best in analysis.best_setting(subset, column, ("task", "variant")).iterrows():
            values = subset.loc[(subset["task"] == best["task"]) & (subset["variant"] == best["variant"]), column]
            if values.nunique() < 2:
                continue
            grid = ", ".join(f"{v:g}" for v in sorted(set(values)))
            where = f"- {best['variant']} on {get_task(best['task']).display_name}, {label} (grid {grid}): "
            if best["degenerate"]:
                lines.append(where + "no setting beats always predicting the majority class; nothing to choose.")
                continue
            tied = ", ".join(f"{v:g}" for v in best["tied"])
            lines.append(
                where
                + f"best {best[column]:g} (validation {best['validation_mean']:.3f}); "
                + (
                    f"not significantly worse (Welch, p ≥ {analysis.ALPHA}): {tied}."
                    if best["decided"]
                    else f"undecided ({int(best['n'])} seed(s) per value; within 0.01 of it: {tied})."
                )
            )
    return ("Best settings by validation score:\n\n" + "\n".join(lines) + "\n") if lines else ""


def _pooling_discussion(frame, profile) -> str:
    pooled = analysis.pooling_runs(frame, profile)
    if pooled.empty:
        return _not_in_records("pooling comparison", "05", None, profile)
    lines = [
        "### Which pooling serves each method\n",
        "`model`: the model's own head reads the first token ([CLS]) through BERT's pooler; `mean`: the masked mean of "
        "all token "
        "states goes to the same head instead"
        + (
            f" ({pooled['model'].iloc[0]} was trained as a sentence encoder with mean pooling)"
            if "minilm" in str(pooled["model"].iloc[0]).lower()
            else ""
        )
        + ".\n",
    ]
    verdicts = {}
    for task, variant, comparison in analysis.pooling_comparisons(pooled):
        verdicts.setdefault(variant, []).append(comparison.verdict)
        lines.append(f"- {variant}: " + analysis.task_sentence(comparison, task))
    summary = []
    for variant, results in verdicts.items():
        decided = [
            v for v in results if v not in ("degenerate", "undecided")
        ]  # no learning, or too few seeds: no verdict
        where = (
            "every task"
            if len(decided) == len(results)
            else f"{len(decided)} of {len(results)} tasks (the others undecided)"
        )
        if not decided:
            summary.append(f"{variant}: undecided (too few seeds, or neither pooling beats the majority class)")
        elif all(v == "a" for v in decided):
            summary.append(f"{variant}: mean pooling on {where}")
        elif all(v == "b" for v in decided):
            summary.append(f"{variant}: [CLS] pooling on {where}")
        elif all(v == "tie" for v in decided):
            summary.append(f"{variant}: within noise on {where}")
        else:
            summary.append(f"{variant}: no consistent winner")
    lines.append("\nWhich serves each method, by these records: " + "; ".join(summary) + ".")
    return "\n".join(lines) + "\n"


def _bench_section(bench_path) -> str:
    bench_path = Path(bench_path) if bench_path else BENCH_PATH
    if not bench_path.is_file():
        return "No bench record (`python -m helpers bench`).\n"
    result = json.loads(bench_path.read_text())
    from helpers.bench import markdown_table

    return (
        "From `python -m helpers bench` (the usual notebook recipe vs this project's, same data, model, batch size and "
        "epochs; "
        "record "
        f"`{bench_path.relative_to(PROJECT_ROOT) if bench_path.is_relative_to(PROJECT_ROOT) else bench_path}`):\n\n"
        + markdown_table(result)
        + "\n"
    )


def inline_images(text: str, report_dir: str | os.PathLike) -> str:
    """The report's markdown with its images embedded (data URIs), for display inside a notebook."""
    import base64
    import re

    def embed(match):
        path = Path(report_dir) / match.group(2)
        if not path.is_file():
            return match.group(0)
        data = base64.b64encode(path.read_bytes()).decode()
        return f"![{match.group(1)}](data:image/png;base64,{data})"

    return re.sub(r"!\[([^\]]*)\]\(([^)]+\.png)\)", embed, text)
