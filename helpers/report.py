"""`report.md`, generated from run records only (by `python -m helpers report` and notebook 06).

Every number comes from a record; every comparison sentence is decided by helpers.analysis from
the per-seed values, so the text cannot contradict the tables.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from helpers import analysis, plots
from helpers.profiles import get_profile
from helpers.tasks import get_task

PROJECT_ROOT = Path(__file__).resolve().parent.parent


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


def _mean_std(mean: float, std: float, n: int) -> str:
    return f"{mean:.3f} ± {std:.3f}" + ("" if n > 1 else " (1 seed)")


def results_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Test results per task and method: mean ± std over seeds, trainable %, pass/fail vs the course baseline."""
    rows = []
    for (task, variant), group in frame.groupby(["task", "variant"], observed=True):
        spec = get_task(task)
        metrics = {m: group[f"test_{m}"].mean() for m in spec.metrics}
        cells = {m: _mean_std(group[f"test_{m}"].mean(), group[f"test_{m}"].std() if len(group) > 1 else 0.0, len(group)) for m in spec.metrics}
        rows.append({
            "task": spec.display_name, "method": str(variant), "seeds": len(group),
            "trainable": f"{int(group['trainable'].iloc[0]):,} ({group['percent'].iloc[0]:.3g}%)",
            **{f"test {m}": cells[m] for m in spec.metrics},
            "course baseline": ", ".join(f"{m} ≥ {v}" for m, v in spec.baselines[spec.main_test_split].items()),
            "pass/fail (mean)": analysis.pass_fail(task, metrics),
        })
    return pd.DataFrame(rows).fillna("")


def _figure(path: Path, report_dir: Path, caption: str) -> str:
    return f"![{caption}]({os.path.relpath(path, report_dir)})\n\n*{caption}*\n"


def build_figures(frame: pd.DataFrame, records: list[dict], figures_dir: Path, batch_size: int) -> dict[str, Path]:
    """Every report figure that the records support; returns {name: path}."""
    figures = {}
    main = analysis.at_defaults(frame, batch_size)
    main = main[main["variant"].isin(["bitfit", "lora"])]
    if not main.empty:
        plots.method_bars(main, figures_dir, "bitfit_vs_lora", "BitFit vs LoRA (r=8)")
        figures["bitfit_vs_lora"] = figures_dir / "bitfit_vs_lora.png"
        chosen = [r for r in records if r["run_id"] in set(main["run_id"]) and r["config"]["seed"] == main["seed"].min()]
        plots.training_curves(chosen, figures_dir, "training_curves", " (seed 0)")
        figures["training_curves"] = figures_dir / "training_curves.png"
    ranks = analysis.at_defaults(frame[frame["method"] == "lora"], batch_size, vary="rank")
    if ranks["rank"].nunique() > 1:
        plots.rank_sweep(ranks, figures_dir)
        figures["rank_sweep"] = figures_dir / "rank_sweep.png"
    lrs = analysis.at_defaults(frame, batch_size, vary="lr")
    lrs = lrs[lrs.groupby(["task", "variant"], observed=True)["lr"].transform("nunique") > 1]
    if not lrs.empty:
        plots.lr_sensitivity(lrs, figures_dir)
        figures["lr_sensitivity"] = figures_dir / "lr_sensitivity.png"
    methods = analysis.at_defaults(frame, batch_size)
    if methods["variant"].nunique() > 2:
        plots.method_bars(methods, figures_dir, "methods", "all methods")
        plots.cost_per_method(methods, figures_dir)
        plots.metric_vs_parameters(methods, figures_dir)
        figures.update({n: figures_dir / f"{n}.png" for n in ("methods", "time_memory", "metric_vs_parameters")})
    for column, label in [("batch_size", "batch size"), ("warmup_ratio", "warmup ratio")]:
        subset = analysis.at_defaults(frame[frame["method"] == "lora"], batch_size, vary=column)
        if subset[column].nunique() > 1:
            plots.setting_effect(subset, column, label, figures_dir, f"effect_{column}")
            figures[f"effect_{column}"] = figures_dir / f"effect_{column}.png"
    return figures


def write_report(results_dir, figures_dir, report_path, profile: str, bench_path=None, wall_seconds: dict | None = None) -> str:
    """Build the figures and write report.md from the records in `results_dir`; returns the text."""
    results_dir, figures_dir, report_path = Path(results_dir), Path(figures_dir), Path(report_path)
    profile = get_profile(profile)
    frame, records, problems = analysis.load_frame(results_dir)
    if frame.empty:
        raise ValueError(f"No run records in {results_dir}: run the notebooks (or `python -m helpers sweep`) first.")
    figures = build_figures(frame, records, figures_dir, profile.batch_size)
    report_dir = report_path.parent
    out = []
    add = out.append
    devices = sorted(set(frame["device"]))
    add("# PEFT on GLUE: report\n")
    add(f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `helpers.report` from **{len(frame)} run records** in "
        f"`{os.path.relpath(results_dir, report_dir)}/` (profile `{profile.name}`; device: {', '.join(devices)}). "
        "Every number below is read from those records; comparisons are decided from the per-seed values "
        "(a difference within the larger standard deviation is called a tie).\n")
    if problems:
        add(f"> {len(problems)} file(s) in the results folder were not valid records and were skipped.\n")

    # 1. Model design and data
    add("## 1. Model design and data\n")
    base = frame.iloc[0]
    add(f"- **Base model**: `{base['model']}` (BERT architecture, 6 layers, hidden size 384, 12 heads; "
        f"{int(frame[frame['method'] == 'full']['total'].iloc[0]) if (frame['method'] == 'full').any() else int(frame['total'].min()):,} parameters with the classification head).")
    add("- **Head**: the model's own sequence-classification head: the [CLS] token's final state → BERT pooler (dense 384→384 + tanh) → dropout 0.1 → "
        "linear 384→labels. A mean-pooling variant (masked mean of all token states in place of [CLS]) is compared in §6.")
    add("- **What trains** (everything else is frozen; the head always trains and is saved with the adapter):\n")
    defaults = analysis.at_defaults(frame, profile.batch_size)
    design = defaults.groupby("variant", observed=True).agg(trainable=("trainable", "first"), percent=("percent", "first")).reset_index()
    what = {
        "full": "every weight", "head": "classifier only", "bitfit": "every bias vector (+ head)",
        "bitfit (sparse)": "query and first-MLP biases only (+ head)", "lora": "low-rank B·A on query/value (r=8, α=16) (+ head)",
        "dora": "LoRA + per-column magnitude (+ head)", "ia3": "rescaling vectors on keys, values, MLP (+ head)",
        "prefix": "20 key/value prefix vectors per layer (+ head)", "prompt": "20 virtual input embeddings (+ head)",
        "ptuning": "20 virtual tokens from a 2-layer MLP encoder (+ head)",
    }
    design["what trains"] = design["variant"].map(lambda v: what.get(str(v), ""))
    design["trainable"] = design["trainable"].map(lambda v: f"{int(v):,}")
    design["percent"] = design["percent"].map(lambda v: f"{v:.3g}%")
    add(_table(design) + "\n")
    sizes = frame.groupby("task").agg(train=("train_size", "first"), validation=("validation_size", "first"), test=("test_size", "first"), select_on=("select_on", "first")).reset_index()
    sizes["task"] = sizes["task"].map(lambda t: get_task(t).display_name)
    add(f"- **Data** (profile `{profile.name}`: training subsample cap {profile.max_train_samples}, {profile.epochs:g} epoch(s), batch {profile.batch_size}, "
        f"max length {profile.max_length}, seeds {list(profile.seeds)}). `validation` is a stratified slice of GLUE train (model selection); "
        "`test` is the GLUE dev set (reporting only):\n")
    add(_table(sizes) + "\n")

    # 2. Loss and results
    add("## 2. Loss reduction, validation and test results\n")
    if "training_curves" in figures:
        add(_figure(figures["training_curves"], report_dir, "Training loss per step and validation metric per epoch, BitFit and LoRA (seed 0)."))
    add("Test results (GLUE dev set) at each method's default settings, mean ± std over seeds, against the course baselines:\n")
    add(_table(results_table(defaults)) + "\n")

    # 3. PEFT discussion
    add("## 3. PEFT discussion\n")
    add(_bitfit_discussion(defaults))
    add(_learning_rate_discussion(frame, profile, figures, report_dir))

    # 4. BitFit vs LoRA, and rank
    add("## 4. BitFit vs LoRA, and LoRA's rank\n")
    if "bitfit_vs_lora" in figures:
        add(_figure(figures["bitfit_vs_lora"], report_dir, "BitFit vs LoRA r=8: test metric (mean ± std over seeds), annotated with % of parameters trained."))
    for task in dict.fromkeys(defaults["task"]):
        comparison = analysis.compare(defaults[defaults["task"] == task], "variant", "lora", "bitfit")
        if comparison:
            add("- " + comparison.sentence(get_task(task).main_metric, get_task(task).display_name))
    add("")
    add(_rank_discussion(frame, profile, figures, report_dir))

    # 5. All methods, cost
    add("## 5. All methods: score, parameters, time and memory\n")
    for name, caption in [("methods", "Test metric per method (mean ± std over seeds)."),
                          ("metric_vs_parameters", "Score against the share of parameters trained."),
                          ("time_memory", f"Training time per 1,000 examples and memory of one training step (batch {defaults['memory_batch'].iloc[0]} tokens): parameters, gradients, AdamW state, saved activations.")]:
        if name in figures:
            add(_figure(figures[name], report_dir, caption))
    add(_cost_table(defaults))

    # 6. Other settings
    add("## 6. Pooling, batch size and warmup\n")
    add(_pooling_discussion(frame, profile))
    for column, caption in [("batch_size", "LoRA r=8: effect of the batch size (learning rate fixed)."), ("warmup_ratio", "LoRA r=8: effect of the warmup ratio.")]:
        if f"effect_{column}" in figures:
            add(_figure(figures[f"effect_{column}"], report_dir, caption))

    # 7. Throughput
    add("## 7. Throughput\n")
    add(_bench_section(bench_path))
    if wall_seconds:
        add("Wall time of this run of the notebooks: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in wall_seconds.items()) + ".\n")
    text = "\n".join(out) + "\n"
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(text)
    return text


def _bitfit_discussion(defaults: pd.DataFrame) -> str:
    lines = ["### BitFit: what it is and why it works\n",
             "BitFit trains only the bias vectors (and the task head) and freezes every weight matrix. A bias adds the same "
             "vector at every position, so tuning it shifts each layer's activations — which units fire after the GELU, where "
             "LayerNorm centres them — without changing how tokens are mixed. The pretrained weights already hold the "
             "features; the task needs mostly a re-weighting of them, and biases are the cheapest handle on that.\n"]
    for task in dict.fromkeys(defaults["task"]):
        subset = defaults[defaults["task"] == task]
        spec = get_task(task)
        bitfit, full = subset[subset["variant"] == "bitfit"], subset[subset["variant"] == "full"]
        if bitfit.empty:
            continue
        text = f"- {spec.display_name}: BitFit trains {int(bitfit['trainable'].iloc[0]):,} parameters ({bitfit['percent'].iloc[0]:.3g}%) and reaches {bitfit['test'].mean():.3f}"
        if not full.empty:
            comparison = analysis.compare(subset, "variant", "bitfit", "full")
            gap = full["test"].mean() - bitfit["test"].mean()
            leader = "full fine-tuning" if gap > 0 else "BitFit"
            noise = " (within noise)" if comparison and comparison.verdict == "tie" else ""
            text += (f"; full fine-tuning ({int(full['trainable'].iloc[0]):,} parameters, {full['trainable'].iloc[0] / bitfit['trainable'].iloc[0]:.0f}× as many) "
                     f"reaches {full['test'].mean():.3f}: {abs(gap):.3f} in {leader}'s favour{noise}")
        sparse = subset[subset["variant"] == "bitfit (sparse)"]
        if not sparse.empty:
            text += f"; the sparse variant (query + first-MLP biases, {int(sparse['trainable'].iloc[0]):,} parameters) reaches {sparse['test'].mean():.3f}"
        lines.append(text + ".")
    head = defaults[defaults["variant"] == "head"]
    if not head.empty:
        for task in dict.fromkeys(head["task"]):
            comparison = analysis.compare(defaults[defaults["task"] == task], "variant", "bitfit", "head")
            if comparison:
                lines.append(f"- Is it the biases or just the head? " + comparison.sentence(get_task(task).main_metric, get_task(task).display_name))
    return "\n".join(lines) + "\n"


def _learning_rate_discussion(frame, profile, figures, report_dir) -> str:
    lrs = analysis.at_defaults(frame, profile.batch_size, vary="lr")
    lrs = lrs[lrs.groupby(["task", "variant"], observed=True)["lr"].transform("nunique") > 1]
    lines = ["### Best hyperparameters and learning rates\n"]
    if lrs.empty:
        lines.append("No learning-rate sweep in these records (notebook 05 runs it).\n")
        return "\n".join(lines)
    grid = lrs.groupby("method")["lr"].apply(lambda s: ", ".join(f"{v:g}" for v in sorted(set(s)))).to_dict()
    lines.append("Grid searched (peak learning rate, linear decay, 6% warmup): " + "; ".join(f"{m}: {g}" for m, g in grid.items()) + ". "
                 "The best learning rate is chosen on the **validation** split (never the test set):\n")
    best = analysis.best_lr(lrs)
    best["task"] = best["task"].map(lambda t: get_task(t).display_name)
    best = best.rename(columns={"validation_mean": "best validation (mean)", "validation_std": "std", "n": "seeds"})
    lines.append(_table(best[["task", "method", "lr", "best validation (mean)", "std", "seeds"]]) + "\n")
    if "lr_sensitivity" in figures:
        lines.append(_figure(figures["lr_sensitivity"], report_dir, "Validation metric against the learning rate per method."))
    full = best[best["method"] == "full"].set_index("task")["lr"]
    larger = pairs = 0
    for method in ("bitfit", "lora", "head"):
        peft = best[best["method"] == method].set_index("task")["lr"]
        for task in peft.index.intersection(full.index):
            ratio = peft[task] / full[task]
            pairs += 1
            larger += ratio > 1
            relation = "larger" if ratio > 1 else "smaller" if ratio < 1 else "equal"
            lines.append(f"- {task}: best {method} learning rate {peft[task]:g} vs full fine-tuning {full[task]:g}: {ratio:.3g}× ({relation}).")
    if pairs:
        lines.append(f"\nIn these records the best PEFT learning rate is larger than full fine-tuning's in {larger} of {pairs} (task, method) pairs. "
                     "Why PEFT methods want larger steps: full fine-tuning moves all 22.7M weights, so a small learning rate already "
                     "changes every layer, and large steps destroy the pretrained features (the sweep shows full fine-tuning degrading "
                     "at its largest rates). BitFit and LoRA change few parameters — bias vectors; a rank-r update B·A that starts at "
                     "zero — each with a small effect on the output, so they need larger steps to move the function as far in the same "
                     "number of updates, and since the pretrained weights stay frozen, large steps cannot wreck them.\n")
    return "\n".join(lines)


def _rank_discussion(frame, profile, figures, report_dir) -> str:
    ranks = analysis.at_defaults(frame[frame["method"] == "lora"], profile.batch_size, vary="rank")
    if ranks["rank"].nunique() < 2:
        return "No rank sweep in these records (notebook 04 runs it).\n"
    lines = ["### How the rank r changes LoRA\n",
             "LoRA adds B (d_out × r) and A (r × d_in) to each adapted layer, so it trains r·(d_in + d_out) parameters per layer: "
             "with query and value (384 → 384) in 6 layers that is 6 · 2 · r · 768 = 9,216·r, plus the head. Counted (parameters with "
             "`requires_grad`) against that closed form:\n"]
    params = ranks.groupby("rank").agg(counted=("trainable", "first"), closed_form=("lora_closed_form", "first"), percent=("percent", "first")).reset_index()
    params[["counted", "closed_form"]] = params[["counted", "closed_form"]].astype(int)
    params["agree"] = params["counted"] == params["closed_form"]
    lines.append(_table(params) + "\n")
    if "rank_sweep" in figures:
        lines.append(_figure(figures["rank_sweep"], report_dir, "LoRA rank sweep: parameters (log) and test metric (mean ± std over seeds)."))
    for task in dict.fromkeys(ranks["task"]):
        table = analysis.over_seeds(ranks[ranks["task"] == task], ["rank"]).sort_values("rank")
        best = table.loc[table["mean"].idxmax()]
        low, high = table.iloc[0], table.iloc[-1]
        comparison = analysis.compare(ranks[ranks["task"] == task], "rank", high["rank"], low["rank"], names=(f"r={int(high['rank'])}", f"r={int(low['rank'])}"))
        verdict = comparison.sentence(get_task(task).main_metric, get_task(task).display_name) if comparison else ""
        lines.append(f"- {get_task(task).display_name}: best mean at r={int(best['rank'])} ({best['mean']:.3f} ± {best['std']:.3f}); "
                     f"r={int(low['rank'])} → {low['mean']:.3f}, r={int(high['rank'])} → {high['mean']:.3f} with {int(high['rank'] / low['rank'])}× the adapter parameters. "
                     f"Comparing the largest and smallest rank: {verdict}")
    return "\n".join(lines) + "\n"


def _cost_table(defaults: pd.DataFrame) -> str:
    table = defaults.groupby("variant", observed=True).agg(
        trainable=("trainable", "first"), samples_per_second=("samples_per_second", "mean"),
        activations_MiB=("activations_bytes", "mean"), step_memory_MiB=("peak_bytes", "mean"), precision=("precision", "first"),
    ).reset_index()
    table["trainable"] = table["trainable"].map(lambda v: f"{int(v):,}")
    table["activations_MiB"] = (table["activations_MiB"] / 2**20).round(1)
    table["step_memory_MiB"] = (table["step_memory_MiB"] / 2**20).round(1)
    table["samples_per_second"] = table["samples_per_second"].round(1)
    kind = defaults["memory_kind"].iloc[0]
    note = ("Memory is the CUDA allocator's peak." if kind == "cuda_max_allocated" else
            "On CPU there is no allocator peak to read: step memory = parameters + gradients + AdamW state + activations saved for "
            f"backward, measured with autograd's saved-tensor hooks on one batch of {defaults['memory_batch'].iloc[0]} tokens (helpers/memory.py).")
    return _table(table) + f"\n\nTraining speed is the mean over both tasks and seeds (samples/s, fast recipe). {note}\n"


def _pooling_discussion(frame, profile) -> str:
    pooled = analysis.at_defaults(frame, profile.batch_size, vary="pooling")
    pooled = pooled[pooled.groupby(["task", "variant"], observed=True)["pooling"].transform("nunique") > 1]
    if pooled.empty:
        return "No pooling comparison in these records (notebook 05 runs it).\n"
    lines = ["### Which pooling serves each method\n",
             "`model`: the model's own head reads the [CLS] token through BERT's pooler; `mean`: the masked mean of all token "
             "states goes to the same head (all-MiniLM-L6-v2 was trained as a sentence encoder with mean pooling).\n"]
    for (task, variant), group in pooled.groupby(["task", "variant"], observed=True):
        comparison = analysis.compare(group, "pooling", "mean", "model", names=("mean pooling", "[CLS] pooling"))
        if comparison:
            lines.append(f"- {variant}: " + comparison.sentence(get_task(task).main_metric, get_task(task).display_name))
    return "\n".join(lines) + "\n"


def _bench_section(bench_path) -> str:
    bench_path = Path(bench_path) if bench_path else PROJECT_ROOT / "results" / "bench" / "bench.json"
    if not bench_path.is_file():
        return "No bench record (`python -m helpers bench`).\n"
    result = json.loads(bench_path.read_text())
    from helpers.bench import markdown_table

    return ("From `python -m helpers bench` (the usual notebook recipe vs this project's, same data, model, batch size and epochs; "
            f"record `{bench_path.relative_to(PROJECT_ROOT) if bench_path.is_relative_to(PROJECT_ROOT) else bench_path}`):\n\n" + markdown_table(result) + "\n")


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
