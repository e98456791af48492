"""`report.md`, generated from run records only (by `python -m helpers report` and notebook 07).

Every number comes from a run record (the throughput section from the bench's JSON); every
comparison sentence is decided by helpers.analysis from the per-seed values, so the text cannot
contradict the tables. One module per part of the report, in its order: `targets` (targets at a
glance), `summary` (in brief), `design` (§1), `results` (§2), `peft` (§3), `rank` (§4), `costs` (§5–7), `llm` (§8);
`markdown` holds the table and figure pieces they share.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import analysis, plots
from helpers.profiles import get_profile
from helpers.report.costs import _all_methods_section, _other_settings_section, _throughput_section
from helpers.report.design import _design_and_data_section, what_trains
from helpers.report.llm import _llm_section
from helpers.report.markdown import inline_images
from helpers.report.peft import _peft_section
from helpers.report.rank import _bitfit_vs_lora_section, _rank_runs
from helpers.report.results import _results_section, _with_test_curves
from helpers.report.summary import _summary_section
from helpers.report.targets import _targets_section

__all__ = ["build_figures", "inline_images", "what_trains", "write_report"]


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
    from helpers.data import load_split_overlap  # datasets loads only here, not on importing the report

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
        *_summary_section(frame, defaults, profile, load_split_overlap(results_dir)),
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
