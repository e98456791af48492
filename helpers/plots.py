"""Figures, drawn from run records / the runs frame only. Each function returns the figure and, given
a folder, saves it as PNG there (readable labels, units, legends)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator, NullFormatter

from helpers.analysis import all_tied, best_lr, fastest_runs, over_seeds
from helpers.methods import method_label
from helpers.tasks import get_task

METRIC_LABEL = {
    "accuracy": "accuracy",
    "matthews_correlation": "Matthews corr.",
    "f1": "F1",
    "pearson": "Pearson r",
    "spearmanr": "Spearman ρ",
}
# Figures are read at the width of a notebook cell: at most this many inches wide (at 120 dpi).
MAX_WIDTH = 11.0
# Lines that may lie on top of each other (same values at the same rates) stay distinguishable.
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">"]
LINESTYLES = ["-", "--", "-.", ":"]


def _subplots(*args, **kwargs):
    """plt.subplots with the project's style (set here, not on import)."""
    sns.set_theme(style="whitegrid", context="notebook")
    return plt.subplots(*args, **kwargs)


def _save(figure, folder: str | os.PathLike | None, name: str):
    figure.tight_layout()
    if folder is not None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        figure.savefig(Path(folder) / f"{name}.png", dpi=120, bbox_inches="tight")
    return figure


def _metric_label(task: str, split: str = "test") -> str:
    spec = get_task(task)
    return f"{spec.display_name} {split} {METRIC_LABEL.get(spec.main_metric, spec.main_metric)}"


def percent_label(percent: float) -> str:
    """Share of parameters trained, readable: 100%, 4.5%, 0.27%, 0.0031% (never 1e+02%)."""
    if percent >= 99.95:
        return "100%"
    if percent >= 10:
        return f"{percent:.0f}%"
    if percent >= 0.0001:  # two significant digits as a plain decimal: 0.0034%, not 3.4e-03%
        return f"{percent:.{max(1, 1 - math.floor(math.log10(percent)))}f}%"
    return f"{percent:.1e}%"


def _integer_ticks(ax, values) -> None:
    """Log-scaled axis labelled at the given whole numbers (ranks 1, 8, 64; not 1.0, 8.0 or 10^0)."""
    values = sorted({int(v) for v in values if pd.notna(v)})
    ax.set_xticks(values, [str(v) for v in values])
    ax.xaxis.set_minor_formatter(NullFormatter())


def token_length_histogram(lengths: dict[str, list[int]], max_length: int, folder=None, name="token_lengths"):
    """Distribution of tokenized lengths per task, with the truncation length marked."""
    figure, axes = _subplots(1, len(lengths), figsize=(min(MAX_WIDTH, 5.5 * len(lengths)), 3.8), squeeze=False)
    for ax, (task, values) in zip(axes[0], lengths.items()):
        values = np.asarray(values)
        ax.hist(values, bins=40, color="tab:blue", alpha=0.8)
        ax.axvline(max_length, color="tab:red", linestyle="--", label=f"max_length = {max_length}")
        ax.set(
            title=f"{get_task(task).display_name}: {len(values):,} examples, median {np.median(values):.0f} tokens",
            xlabel="tokens per example (with [CLS]/[SEP])",
            ylabel="examples",
        )
        ax.legend()
    return _save(figure, folder, name)


def training_curves(records: list[dict], folder=None, name="training_curves", title=""):
    """Per task: training loss (line) and validation loss (dashed, markers) vs step (left), and the validation
    metric at each evaluation vs epoch (right, whole-epoch ticks), one colour per run label. Runs that scored
    the test split at every evaluation (eval_test) add its loss and metric, dotted."""
    tasks = sorted({r["config"]["task"] for r in records})
    figure, axes = _subplots(len(tasks), 2, figsize=(MAX_WIDTH, 3.6 * len(tasks)), squeeze=False)
    palette = dict(zip(sorted({_label(r) for r in records}), sns.color_palette("tab10", 10)))
    for row, task in enumerate(tasks):
        loss_ax, val_ax = axes[row]
        spec = get_task(task)
        for record in [r for r in records if r["config"]["task"] == task]:
            label = _label(record)
            history = pd.DataFrame(record["history"])
            if not history.empty:
                loss_ax.plot(
                    history["step"], history["loss"], color=palette[label], alpha=0.7, label=f"{label} (train)"
                )
            for split, style in (("validation", "--"), *((name, ":") for name in spec.test_splits)):
                evals = pd.DataFrame(
                    [
                        {
                            "step": e["step"],
                            "epoch": e["epoch"],
                            "value": e["metrics"][spec.main_metric],
                            "loss": e.get("loss"),
                        }
                        for e in record["evals"]
                        if e.get("split", "validation") == split
                    ]
                )
                if evals.empty:
                    continue
                curve = label if split == "validation" else f"{label} ({split})"
                val_ax.plot(
                    evals["epoch"],
                    evals["value"],
                    marker="o" if split == "validation" else "s",
                    linestyle="-" if split == "validation" else ":",
                    color=palette[label],
                    alpha=0.8,
                    label=curve,
                )
                if evals["loss"].notna().any():
                    loss_ax.plot(
                        evals["step"],
                        evals["loss"],
                        linestyle=style,
                        marker="o",
                        color=palette[label],
                        label=f"{label} ({split})",
                    )
        loss_ax.set(
            title=f"{spec.display_name}: loss{title}",
            xlabel="optimizer step",
            ylabel="cross-entropy loss" if not spec.is_regression else "MSE loss",
        )
        val_ax.set(
            title=f"{spec.display_name}: {METRIC_LABEL.get(spec.main_metric, spec.main_metric)} per epoch",
            xlabel="epoch",
            ylabel=METRIC_LABEL.get(spec.main_metric, spec.main_metric),
        )
        val_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        for ax in (loss_ax, val_ax):
            handles, labels = ax.get_legend_handles_labels()
            unique = dict(zip(labels, handles))
            ax.legend(unique.values(), unique.keys(), fontsize=8)
    return _save(figure, folder, name)


def _label(record: dict) -> str:
    method = record["config"]["method"]
    label = method_label(method)  # the method's own label rule: "lora r=8", "bitfit (sparse)", "prompt P=20"
    if method.get("pooling") == "mean":
        label += ", mean pool"
    return label


def method_bars(frame: pd.DataFrame, folder=None, name="bitfit_vs_lora", title="BitFit vs LoRA"):
    """Test metric per method and task: the mean over seeds (dot) with its 95% t-interval, each seed (small
    dots), annotated with % trainable parameters. Dots, not bars from 0: the methods differ by a few points."""
    tasks = list(dict.fromkeys(frame["task"]))
    variants = frame["variant"].nunique()
    # Few methods: tasks side by side; many: one row per task, so the figure stays a cell wide with readable text.
    rows, columns = (1, len(tasks)) if variants * len(tasks) <= 8 else (len(tasks), 1)
    width = min(MAX_WIDTH, max(5.0, 1.1 * variants + 2) * columns)
    figure, axes = _subplots(rows, columns, figsize=(width, 4.2 * rows), squeeze=False)
    # One colour per method across the panels, a method trained longer ("bitfit, 5 epochs") in its method's.
    base = {str(v): str(v).split(",")[0] for v in frame["variant"]}
    colours = dict(zip(sorted(set(base.values())), sns.color_palette("tab10", 10)))
    for ax, task in zip(axes.flat, tasks):
        subset = frame[frame["task"] == task]
        table = over_seeds(subset, ["variant"]).merge(
            subset.groupby("variant", observed=True)["percent"].first().reset_index(), on="variant"
        )
        table = table.sort_values("variant")
        low, high = table["ci95_low"].fillna(table["mean"]), table["ci95_high"].fillna(table["mean"])
        positions = np.arange(len(table))
        for x, (_, row), lo, hi in zip(positions, table.iterrows(), low, high):
            colour = colours[base[str(row["variant"])]]
            seeds = subset.loc[subset["variant"] == row["variant"], "test"]
            ax.scatter(np.full(len(seeds), x + 0.12), seeds, s=12, color=colour, alpha=0.5)
            ax.errorbar(
                [x], [row["mean"]], yerr=[[row["mean"] - lo], [hi - row["mean"]]], fmt="o", color=colour, capsize=5
            )
            ax.annotate(
                f"{percent_label(row['percent'])}\nn={row['n']}",
                (x, hi),
                textcoords="offset points",
                xytext=(0, 6),
                ha="center",
                fontsize=8,
            )
        ax.set_xticks(positions, table["variant"].astype(str), rotation=25, ha="right")
        ax.set_xlim(-0.6, len(table) - 0.4)
        majority = subset["majority"].mean() if "majority" in subset else float("nan")
        spots = [*low, *high, *subset["test"].dropna()]
        if not np.isnan(majority):
            ax.axhline(majority, color="grey", linestyle="--", linewidth=1, label=f"majority class ({majority:.3f})")
            ax.legend(loc="lower right", fontsize=8)
            if majority >= min(spots) - 0.1:  # far below every method (SST-2): the legend gives it, the axis zooms
                spots.append(majority)
        span = max(max(spots) - min(spots), 0.05)
        ax.set(
            ylim=(min(spots) - 0.15 * span, max(spots) + 0.3 * span),  # room for the labels above
            ylabel=_metric_label(task),
            title=f"{get_task(task).display_name}: {title}",
        )
    figure.suptitle(
        "Dot: mean over seeds, bar: its 95% interval, small dots: each seed; above: % of parameters trained, n = seeds",
        fontsize=9,
    )
    return _save(figure, folder, name)


def rank_sweep(frame: pd.DataFrame, folder=None, name="rank_sweep"):
    """LoRA rank r: trainable parameters (log axis; counted and closed form) and test metric with error bars."""
    tasks = list(dict.fromkeys(frame["task"]))
    figure, axes = _subplots(1, len(tasks) + 1, figsize=(min(MAX_WIDTH, 4.2 * (len(tasks) + 1)), 3.8), squeeze=False)
    params = frame.groupby("rank")[["trainable", "lora_closed_form"]].first().reset_index()
    ax = axes[0][0]
    ax.plot(params["rank"], params["trainable"], marker="o", label="counted (requires_grad)")
    ax.plot(
        params["rank"],
        params["lora_closed_form"],
        marker="x",
        linestyle="--",
        label="closed form r·(d_in+d_out) + head",
    )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="LoRA rank r",
        ylabel="trainable parameters",
        title="Trainable parameters vs rank",
    )
    _integer_ticks(ax, params["rank"])
    ax.legend(fontsize=8)
    for ax, task in zip(axes[0][1:], tasks):
        table = over_seeds(frame[frame["task"] == task], ["rank"]).sort_values("rank")
        ax.errorbar(table["rank"], table["mean"], yerr=table["std"], marker="o", capsize=4)
        ax.set(
            xscale="log",
            xlabel="LoRA rank r (alpha = 16)",
            ylabel=_metric_label(task),
            title=f"{get_task(task).display_name}: metric vs rank (n={table['n'].max()} seeds)",
        )
        _integer_ticks(ax, table["rank"])
    return _save(figure, folder, name)


def lr_sensitivity(frame: pd.DataFrame, folder=None, name="lr_sensitivity", value: str = "best_validation"):
    """Validation metric vs learning rate (log axis), one line per method and task."""
    tasks = list(dict.fromkeys(frame["task"]))
    columns = min(len(tasks), 2)  # two panels a row, so four tasks stay readable
    rows = -(-len(tasks) // columns)
    figure, axes = _subplots(rows, columns, figsize=(min(MAX_WIDTH, 5.5 * columns), 4 * rows), squeeze=False)
    for ax in axes.flat[len(tasks) :]:
        ax.set_visible(False)
    # One colour, marker and dash per method across every panel, so a method reads the same in each task.
    methods = sorted({str(v) for v in frame["variant"]})
    colours = dict(zip(methods, sns.color_palette("tab10", 10)))
    for ax, task in zip(axes.flat, tasks):
        table = over_seeds(frame[frame["task"] == task], ["variant", "lr"], value)
        chosen = best_lr(frame[frame["task"] == task], value).set_index("variant")["lr"]  # the tables' choice
        for position, (method, group) in enumerate(table.groupby("variant", observed=True)):
            index = methods.index(str(method))
            group = group.sort_values("lr")
            # Methods often tie (e.g. all at the majority class): own marker and dash, hollow markers, slightly
            # shifted along the log axis, so a line lying on another stays visible.
            shift = 1.06 ** (index - (len(methods) - 1) / 2)
            ax.errorbar(
                group["lr"] * shift,
                group["mean"],
                yerr=group["std"],
                marker=MARKERS[index % len(MARKERS)],
                linestyle=LINESTYLES[index % len(LINESTYLES)],
                markerfacecolor="none",
                color=colours[str(method)],
                capsize=3,
                label=str(method),
                alpha=0.9,
            )
            best = group.loc[np.isclose(group["lr"], chosen[method])].iloc[0]
            ax.scatter([best["lr"] * shift], [best["mean"]], s=160, facecolors="none", edgecolors="black")
            if all_tied(group["mean"]):  # a grid that learned nothing: its circle is the default rate, not a best
                ax.annotate(
                    "all rates tied",
                    (best["lr"] * shift, best["mean"]),
                    xytext=(6, -12 - 10 * position),  # stacked, so two tied grids' labels do not overlap
                    textcoords="offset points",
                    fontsize=7,
                )
        floor = (
            frame.loc[frame["task"] == task, "validation_majority"].mean()
            if value == "best_validation" and "validation_majority" in frame
            else None
        )
        if floor is not None and not np.isnan(floor):
            ax.axhline(floor, color="grey", linestyle=":", linewidth=1, label="majority class")
        spec = get_task(task)
        ax.set(
            xscale="log",
            xlabel="peak learning rate",
            ylabel=f"best validation {METRIC_LABEL.get(spec.main_metric, spec.main_metric)}",
            title=f"{spec.display_name}: learning-rate sensitivity (circle = selected)",
        )
        ax.legend(fontsize=8)
    return _save(figure, folder, name)


def setting_effect(
    frame: pd.DataFrame, column: str, xlabel: str, folder=None, name="setting_effect", value: str = "best_validation"
):
    """Best validation metric (what selects the setting; value="test" for the test metric) vs one training
    setting (batch size, warmup ratio), per task, one line per method."""
    tasks = list(dict.fromkeys(frame["task"]))
    split = "validation" if value == "best_validation" else "test"
    figure, axes = _subplots(1, len(tasks), figsize=(min(MAX_WIDTH, 5 * len(tasks)), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        runs = frame[frame["task"] == task]
        for variant in dict.fromkeys(runs["variant"]):
            table = over_seeds(runs[runs["variant"] == variant], [column], value).sort_values(column)
            x = table[column].astype(str)
            ax.errorbar(x, table["mean"], yerr=table["std"], marker="o", capsize=4, label=str(variant))
        ax.set(
            xlabel=xlabel, ylabel=_metric_label(task, split), title=f"{get_task(task).display_name}: effect of {xlabel}"
        )
        ax.legend(fontsize="small")
    return _save(figure, folder, name)


def cost_per_method(frame: pd.DataFrame, folder=None, name="time_memory"):
    """Training time per 1,000 examples per task (each method's fastest run, as analysis.cost_table) and
    the memory of one training step (stacked by kind) per method."""
    table = (
        frame.groupby("variant", observed=True)
        .agg(
            parameters=("parameters_bytes", "mean"),
            gradients=("gradients_bytes", "mean"),
            optimizer=("optimizer_bytes", "mean"),
            activations=("activations_bytes", "mean"),
        )
        .reset_index()
        .sort_values("variant")
    )
    fastest = fastest_runs(frame)
    # Horizontal bars: method names on the y axis never overlap, however many methods.
    figure, (time_ax, memory_ax) = _subplots(1, 2, figsize=(MAX_WIDTH, 0.35 * len(table) + 1.8), sharey=True)
    labels = table["variant"].astype(str)
    tasks = list(dict.fromkeys(fastest["task"]))
    height = 0.8 / max(1, len(tasks))
    for offset, task in enumerate(tasks):
        speed = table["variant"].map(fastest[fastest["task"] == task].set_index("variant")["samples_per_second"])
        positions = np.arange(len(table)) - 0.4 + height * (offset + 0.5)
        time_ax.barh(positions, 1000 / speed.to_numpy(dtype=float), height=height, label=get_task(task).display_name)
    time_ax.set_yticks(np.arange(len(table)), labels)
    devices = sorted(set(fastest["device"]))
    where = devices[0] if len(devices) == 1 else "several machines: see the cost table" if devices else "no timings"
    time_ax.set(xlabel="seconds per 1,000 training examples", title=f"Training time ({where})")
    if len(tasks) > 1:
        time_ax.legend(fontsize=8, loc="upper right")
    time_ax.invert_yaxis()  # first method on top
    left = np.zeros(len(table))
    for part, color in [
        ("parameters", "tab:gray"),
        ("gradients", "tab:orange"),
        ("optimizer", "tab:green"),
        ("activations", "tab:purple"),
    ]:
        values = table[part].to_numpy() / 2**20
        memory_ax.barh(np.arange(len(table)), values, left=left, label=part, color=color)
        left += values
    memory_ax.set(xlabel="MiB", title=f"Memory of one training step (batch {frame['memory_batch'].iloc[0]})")
    memory_ax.legend(fontsize=8, loc="upper right")
    return _save(figure, folder, name)


def metric_vs_parameters(frame: pd.DataFrame, folder=None, name="metric_vs_parameters"):
    """Test metric against % trainable parameters (log axis), one point per method: the PEFT trade-off."""
    tasks = list(dict.fromkeys(frame["task"]))
    figure, axes = _subplots(1, len(tasks), figsize=(min(MAX_WIDTH, 5.5 * len(tasks)), 4.2), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        subset = frame[frame["task"] == task]
        table = over_seeds(subset, ["variant"]).merge(
            subset.groupby("variant", observed=True)["percent"].first().reset_index(), on="variant"
        )
        for _, row in table.iterrows():
            ax.errorbar(row["percent"], row["mean"], yerr=row["std"], marker="o", capsize=3)
            ax.annotate(
                str(row["variant"]),
                (row["percent"], row["mean"]),
                textcoords="offset points",
                xytext=(5, 5),
                fontsize=9,
            )
        ax.set(
            xscale="log",
            xlabel="trainable parameters (% of model, log)",
            ylabel=_metric_label(task),
            title=f"{get_task(task).display_name}: score vs trainable parameters",
        )
    return _save(figure, folder, name)


def run_label(record: dict) -> str:
    """A run's short label in figures and tables: method, rank and targets, variant, pooling."""
    return _label(record)


def overfit_curves(records: list[dict], folder=None, name="overfit"):
    """The overfitting check: training-split and validation accuracy per epoch, one line per method, one
    panel per task."""
    tasks = list(dict.fromkeys(r["config"]["task"] for r in records))
    figure, axes = _subplots(1, len(tasks), figsize=(5.5 * len(tasks), 3.8), squeeze=False)
    for axis, task in zip(axes[0], tasks):
        metric = get_task(task).main_metric
        for index, record in enumerate(r for r in records if r["config"]["task"] == task):
            color = sns.color_palette()[index % 10]
            for split, style in (("train", "-"), ("validation", ":")):
                points = [(e["epoch"], e["metrics"].get(metric)) for e in record["evals"] if e["split"] == split]
                if points:
                    epochs, values = zip(*points)
                    axis.plot(
                        epochs,
                        values,
                        style,
                        color=color,
                        label=_label(record) if split == "train" else None,
                    )
        for split, style in (("train", "-"), ("validation", ":")):  # the line styles' key, in grey
            axis.plot([], [], style, color="grey", label=split)
        axis.set(
            title=f"{get_task(task).display_name}: {record['data']['sizes']['train']} training examples",
            xlabel="epoch",
            ylabel=f"{METRIC_LABEL.get(metric, metric)} (solid: train, dotted: validation)",
            ylim=(0, 1.02),
        )
        axis.legend(fontsize="small", loc="lower right")
    return _save(figure, folder, name)


def model_comparison(table: pd.DataFrame, folder=None, name: str = "model_comparison", title: str = ""):
    """Four panels of `helpers.compare.model_comparison`'s table (score ± std, trainable parameters,
    training samples/s, peak memory), one horizontal bar per row, named once on the left (with the
    hardware where the runs were made on more than one)."""
    from helpers.compare import COLUMNS, short_model_name

    ons = table["on"] if "on" in table else [""] * len(table)
    several = len(set(ons)) > 1
    labels = [
        f"{short_model_name(model)} · {variant}" + (f" · {on}" if several else "")
        for model, variant, on in zip(table["model"], table["variant"], ons)
    ]
    figure, axes = _subplots(1, 4, figsize=(16, 1.2 + 0.32 * max(len(table), 2)), sharey=True)
    metric = table["metric"].iloc[0] if len(table) else ""
    panels = [
        ("score", f"test {METRIC_LABEL.get(metric, metric)}", False),
        ("trainable", "trainable parameters (log)", True),
        (COLUMNS["samples_per_second"], "training samples / s", False),
        (COLUMNS["peak_bytes"], "peak memory (MiB)", False),
    ]
    rows = range(len(table))
    for axis, (column, xlabel, log) in zip(axes, panels):
        values = table[column].astype(float) / (2**20 if column == COLUMNS["peak_bytes"] else 1)
        errors = table["score_std"].fillna(0) if column == "score" else None
        axis.barh(rows, values.fillna(0), xerr=errors, color=[f"C{i % 10}" for i in rows])
        axis.set_xlabel(xlabel)
        if log and (values > 0).any():
            axis.set_xscale("log")
            axis.xaxis.set_minor_formatter(NullFormatter())  # 2×10⁵, 3×10⁵... overlap
        if column == "score" and "majority" in table and table["majority"].notna().any():
            axis.axvline(table["majority"].max(), color="gray", linestyle="--", linewidth=1, label="majority class")
            axis.legend(loc="lower right", fontsize=8)
    axes[0].set_yticks(list(rows), labels, fontsize=9)
    axes[0].invert_yaxis()  # the table's first row on top
    figure.suptitle(title or "Models side by side")
    return _save(figure, folder, name)
