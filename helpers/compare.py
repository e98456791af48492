"""Two (or more) base models side by side on the same task: score, trainable parameters, speed, memory.

Reads the runs frame (`helpers.analysis.runs_frame`) only, so it works on any records: MiniLM and
the small LLM fine-tuned with the same method, and the LLM's in-context runs (method `icl`, zero
trainable parameters, no training speed).
"""

from __future__ import annotations

import os

import pandas as pd

COLUMNS = {
    "test": "score",
    "trainable": "trainable",
    "samples_per_second": "train samples/s",
    "peak_bytes": "peak memory (bytes)",
}


def model_comparison(frame: pd.DataFrame, task: str, methods: list[str] | None = None) -> pd.DataFrame:
    """One row per (model, method, variant) on `task`: mean and std of the test score over seeds,
    runs, trainable parameters, training samples/s and peak memory (means over seeds)."""
    from helpers.tasks import get_task

    task = get_task(task)
    runs = frame[frame["task"] == task.name]
    if methods is not None:
        runs = runs[runs["method"].isin(methods)]
    if runs.empty:
        return pd.DataFrame(
            columns=["model", "method", "variant", "runs", "score", "score_std", *list(COLUMNS.values())[1:]]
        )
    runs = runs.assign(variant=runs["variant"].astype(str))
    if "method" in runs and (runs["method"] == "icl").any():
        # ICL runs differ by their shots and scoring, recorded in the run id (`<task>-icl-k4-loglik-...`).
        icl = runs["method"] == "icl"
        runs.loc[icl, "variant"] = (
            runs.loc[icl, "run_id"].str.extract(r"-icl-(k\d+-[a-z]+)-", expand=False).radd("icl ")
        )
    grouped = runs.groupby(["model", "method", "variant"], observed=True, sort=False)
    table = grouped.agg(
        runs=("test", "size"),
        score=("test", "mean"),
        score_std=("test", "std"),
        trainable=("trainable", "mean"),
        samples_per_second=("samples_per_second", "mean"),
        peak_bytes=("peak_bytes", "mean"),
    ).reset_index()
    table["metric"] = task.main_metric
    return table.rename(
        columns={"samples_per_second": COLUMNS["samples_per_second"], "peak_bytes": COLUMNS["peak_bytes"]}
    )


def plot_model_comparison(
    table: pd.DataFrame, folder: str | os.PathLike | None = None, name: str = "model_comparison", title: str = ""
):
    """Four bar panels (score ± std, trainable parameters, samples/s, memory), one bar per model and method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{model}\n{variant}" for model, variant in zip(table["model"], table["variant"])]
    figure, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    panels = [
        ("score", f"test {table['metric'].iloc[0] if len(table) else ''}", False),
        ("trainable", "trainable parameters", True),
        (COLUMNS["samples_per_second"], "training samples / s", False),
        (COLUMNS["peak_bytes"], "peak memory (MiB)", False),
    ]
    for axis, (column, ylabel, log) in zip(axes, panels):
        values = table[column].astype(float) / (2**20 if column == COLUMNS["peak_bytes"] else 1)
        errors = table["score_std"].fillna(0) if column == "score" else None
        axis.bar(range(len(table)), values.fillna(0), yerr=errors, color=[f"C{i}" for i in range(len(table))])
        axis.set_xticks(range(len(table)), labels, rotation=30, ha="right", fontsize=8)
        axis.set_ylabel(ylabel)
        if log and (values > 0).any():
            axis.set_yscale("log")
    figure.suptitle(title or "Models side by side")
    figure.tight_layout()
    if folder is not None:
        os.makedirs(folder, exist_ok=True)
        figure.savefig(os.path.join(folder, f"{name}.png"), dpi=120)
    return figure
