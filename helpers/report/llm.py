"""§8: the small LLM prompted (in-context learning) and fine-tuned with LoRA, beside MiniLM."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import analysis, compare, plots
from helpers.report.markdown import _figure, _table
from helpers.tasks import get_task


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
        out += [
            _icl_sentences(icl) + _scorings_agree(icl),
            _table(_one_row_where_equal(compare.icl_display(icl))) + "\n",
        ]
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


def _one_row_where_equal(shown: pd.DataFrame) -> pd.DataFrame:
    """The ICL table with the two scorings of one (task, shots) in one row where every score is the same
    ("generate = loglik"), so the table does not repeat itself."""
    same = ["score", "95% interval", "majority", "examples", "most predicted label"]
    rows = []
    for _, group in shown.groupby(["task", "shots"], sort=False):
        if len(group) == 2 and set(group["scoring"]) == {"generate", "loglik"} and (group[same].nunique() == 1).all():
            row = group[group["scoring"] == "generate"].iloc[0].copy()
            row["scoring"] = "generate = loglik"
            rows.append(row.to_frame().T)
        else:
            rows.append(group)
    return pd.concat(rows, ignore_index=True)


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
        + "; the table gives them one row there (`generate = loglik`), and two without demonstrations (k = 0).\n"
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
