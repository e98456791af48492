"""§5 to §7: every method's score, parameters, time and memory; pooling, batch size and warmup;
throughput."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from helpers import analysis
from helpers.paths import BENCH_PATH, PROJECT_ROOT
from helpers.report.markdown import _figure, _table
from helpers.report.peft import _not_in_records
from helpers.tasks import get_task


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
        ("methods", "Test metric per method: mean over seeds, its 95% interval, and each seed."),
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


def _read_wall_seconds(results_dir: Path) -> dict:
    """Wall time per training notebook, saved by `python -m helpers notebooks` next to the records
    (the analysis notebook, which writes this report, is left out: its time is known only after)."""
    path = results_dir / "meta" / "notebook_seconds.json"
    seconds = json.loads(path.read_text()) if path.is_file() else {}
    return {name: value for name, value in seconds.items() if "analysis" not in name}


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
