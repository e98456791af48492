"""Two (or more) base models side by side on the same task: score, trainable parameters, speed, memory
(`helpers.plots.model_comparison` draws the table), and the in-context learning runs by prompt setting.

Reads the runs frame (`helpers.analysis.runs_frame`) only, so it works on any records: MiniLM and
the small LLM fine-tuned with the same method, and the LLM's in-context runs (method `icl`, zero
trainable parameters, no training speed).
"""

from __future__ import annotations

import re
from pathlib import Path

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
            columns=[
                "model",
                "method",
                "variant",
                "on",
                "runs",
                "score",
                "score_std",
                *list(COLUMNS.values())[1:],
                "majority",
            ]
        )
    runs = runs.assign(variant=runs["variant"].astype(str), on=hardware_labels(runs))
    if "method" in runs and (runs["method"] == "icl").any():
        # ICL runs differ by their shots and scoring, recorded in the run id (`<task>-icl-k4-loglik-...`).
        icl = runs["method"] == "icl"
        runs.loc[icl, "variant"] = (
            runs.loc[icl, "run_id"].str.extract(r"-icl-(k\d+-[a-z]+)-", expand=False).radd("icl ")
        )
    grouped = runs.groupby(["model", "method", "variant", "on"], observed=True, sort=False)
    table = grouped.agg(
        runs=("test", "size"),
        score=("test", "mean"),
        score_std=("test", "std"),
        trainable=("trainable", "mean"),
        samples_per_second=("samples_per_second", "mean"),
        peak_bytes=("peak_bytes", "mean"),
        majority=("majority", "mean"),  # always predicting the training set's most frequent label
    ).reset_index()
    table["metric"] = task.main_metric
    return table.rename(
        columns={"samples_per_second": COLUMNS["samples_per_second"], "peak_bytes": COLUMNS["peak_bytes"]}
    )


def model_display(table: pd.DataFrame) -> pd.DataFrame:
    """model_comparison's table as shown: the score as mean ± std over seeds (or draws), memory in MiB."""
    from helpers.analysis import mean_std_text

    memory, speed = COLUMNS["peak_bytes"], COLUMNS["samples_per_second"]
    scores = zip(table["score"], table["score_std"], table["runs"])
    shown = table.assign(
        score=[mean_std_text(mean, std, n) for mean, std, n in scores],
        trainable=table["trainable"].map(lambda v: f"{v:,.0f}"),
        majority=table["majority"].round(3),
        **{
            memory: (table[memory] / 2**20).round(),
            speed: table[speed].map(lambda v: "–" if v != v else f"{v:.1f}"),  # ICL trains nothing: no speed
        },
    )
    shown["model"] = shown["model"].map(short_model_name)
    return shown.drop(columns=["score_std"]).rename(columns={memory: "peak memory (MiB)", "score": "test score"})


PRECISION_NAMES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}  # torch's names, as records use


def hardware_label(device, precision) -> str:
    """Where and in what precision a run trained, as tables name it: "CPU fp32", "H200 bf16"."""
    text = str(device or "").strip()
    # helpers.device.device_name of a CPU: "AMD EPYC (2 threads)", or with its vector units "(2 threads, AVX2)"
    cpu = not text or re.search(r"\(\d+ threads(, [^)]*)?\)$", text) is not None
    where = "CPU" if cpu else text.removeprefix("NVIDIA ")
    if not isinstance(precision, str) or not precision:
        return where
    return f"{where} {PRECISION_NAMES.get(precision, precision)}"


def hardware_labels(runs: pd.DataFrame) -> pd.Series:
    """hardware_label of every run (records without a device or precision column: "CPU")."""
    devices = runs["device"] if "device" in runs else pd.Series(None, index=runs.index)
    precisions = runs["precision"] if "precision" in runs else pd.Series(None, index=runs.index)
    return pd.Series([hardware_label(d, p) for d, p in zip(devices, precisions)], index=runs.index, dtype=object)


def short_model_name(model) -> str:
    """A model as tables and sentences name it: a Hub name or local folder by its last part."""
    return Path(str(model)).name


def icl_table(records: list[dict]) -> pd.DataFrame:
    """In-context learning runs by (task, model, shots, scoring, test examples scored; a subset's runs never
    average with the whole dev set's): the test score over demonstration draws (mean, std, draws), what
    always predicting the majority class scores on the same examples, the share of the most predicted
    label (1.0: one answer for everything);
    for generation, the share of answers that named no label (they count as wrong), and the 95%
    t-interval of the mean over draws ((nan, nan) for one draw)."""
    from helpers.analysis import t_interval
    from helpers.tasks import get_task

    rows = []
    for record in records:
        config = record["config"]
        if config.get("method", {}).get("method") != "icl":
            continue
        task = get_task(config["task"])
        metrics = record["test"]["metrics"]
        split = task.main_test_split
        predicted = record["icl"]["splits"][split]["predicted"]
        rows.append(
            {
                "task": task.display_name,
                "model": config["model"],
                "shots": config["shots"],
                "scoring": config["scoring"],
                "score": metrics[task.main_metric],
                "majority": record.get("majority_class", {}).get(split, {}).get(task.main_metric, float("nan")),
                "examples": record["data"]["sizes"][split],
                "top_label_share": max(predicted.values()) / max(1, sum(predicted.values())),
                "unparseable": metrics.get("unparseable_share", float("nan")),
            }
        )
    if not rows:
        return pd.DataFrame(columns=["task", "model", "shots", "scoring", "draws", "score", "score_std"])
    frame = pd.DataFrame(rows)
    return (
        frame.groupby(["task", "model", "shots", "scoring", "examples"], sort=True)
        .agg(
            draws=("score", "size"),
            score=("score", "mean"),
            score_std=("score", "std"),
            majority=("majority", "mean"),
            top_label_share=("top_label_share", "mean"),
            unparseable=("unparseable", "mean"),
            interval=("score", t_interval),
        )
        .reset_index()
    )


def icl_display(icl: pd.DataFrame) -> pd.DataFrame:
    """icl_table as shown: the score as mean ± std over draws with its 95% interval, shares as percentages."""
    from helpers.analysis import mean_std_text

    shown = icl.assign(
        score=[mean_std_text(m, s, n) for m, s, n in zip(icl["score"], icl["score_std"], icl["draws"])],
        interval=[f"{low:.3f}–{high:.3f}" if low == low else "–" for low, high in icl["interval"]],
        majority=icl["majority"].map(lambda v: f"{v:.3f}"),
        top_label_share=icl["top_label_share"].map(lambda v: f"{v:.0%}"),
        unparseable=icl["unparseable"].map(lambda v: "–" if v != v else f"{v:.0%}"),
    )
    columns = ["task", "shots", "scoring", "draws", "score", "interval", "majority", "examples"]
    return shown[[*columns, "top_label_share", "unparseable"]].rename(
        columns={"top_label_share": "most predicted label", "interval": "95% interval"}
    )


def model_verdicts(runs: pd.DataFrame, task: str) -> list[str]:
    """For each method two models were fine-tuned with on `task`: which scores higher, decided by
    Welch's t-test over seeds (helpers.analysis.Comparison; undecided with fewer than 3 seeds a side)."""
    from helpers.analysis import compare
    from helpers.tasks import get_task

    spec = get_task(task)
    trained = runs[(runs["task"] == spec.name) & (runs["method"] != "icl")]
    trained = trained.assign(on=hardware_labels(trained))
    several = trained["on"].nunique() > 1  # name the hardware only where runs were made on more than one
    sentences = []
    for (method, on), group in trained.groupby(["method", "on"], sort=False):
        models = list(dict.fromkeys(group["model"]))  # in the records' order: the LLM first in notebook 06
        if len(models) == 2:
            where = f" ({on})" if several else ""
            names = tuple(f"{short_model_name(m)} + {method}{where}" for m in models)
            comparison = compare(group, "model", *models, names=names)
            sentences.append(comparison.sentence(spec.main_metric, spec.display_name))
    return sentences


def quantization_verdicts(runs: pd.DataFrame, task: str) -> list[str]:
    """Per model and quantised method (QLoRA): it against its full-precision twin (LoRA), each side on the
    hardware where it has the most runs, by Welch's t-test over seeds; the sentence names the hardware,
    which may differ between sides."""
    from helpers.analysis import compare
    from helpers.methods import quantized_pairs
    from helpers.tasks import get_task

    spec = get_task(task)
    sentences = []
    for pair in quantized_pairs():
        trained = runs[(runs["task"] == spec.name) & runs["method"].isin(pair)]
        trained = trained.assign(on=hardware_labels(trained))
        for model, group in trained.groupby("model", sort=False):
            sides = [group[group["method"] == method] for method in pair]
            if any(side.empty for side in sides):
                continue
            arms = []
            for method, side in zip(pair, sides):
                on = side["on"].value_counts().index[0]
                arms.append(side[side["on"] == on].assign(arm=f"{short_model_name(model)} + {method} ({on})"))
            both = pd.concat(arms)
            sentences.append(
                compare(both, "arm", *dict.fromkeys(both["arm"])).sentence(spec.main_metric, spec.display_name)
            )
    return sentences


def quantization_costs(table: pd.DataFrame) -> list[str]:
    """Per model and quantised method, from model_comparison's table: its peak memory and training speed
    against its full-precision twin's on the same hardware (where both ran there), as means over each side's runs."""
    from helpers.methods import quantized_pairs

    memory, speed = COLUMNS["peak_bytes"], COLUMNS["samples_per_second"]
    sentences = []
    for quantized, plain in quantized_pairs():
        for (model, on), rows in table.groupby(["model", "on"], sort=False):
            by_method = rows.set_index("method")
            if quantized not in by_method.index or plain not in by_method.index:
                continue
            q, p = by_method.loc[quantized], by_method.loc[plain]
            sentences.append(
                f"On the same {on}, {short_model_name(model)} with {quantized} peaks at {q[memory] / 2**20:,.0f} MiB "
                f"against {p[memory] / 2**20:,.0f} MiB with {plain} ({q[memory] / p[memory]:.2f}×) and trains "
                f"{q[speed]:.0f} against {p[speed]:.0f} samples/s ({q[speed] / p[speed]:.2f}×) "
                f"({q['runs']:.0f} and {p['runs']:.0f} runs)."
            )
    return sentences
