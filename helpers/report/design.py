"""§1, the model and the data, and the validation–test gap §2 explains with them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from helpers import analysis
from helpers.methods import method_spec
from helpers.report.markdown import _figure, _table
from helpers.report.peft import _grid_note
from helpers.tasks import get_task


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
    if "minilm" in str(row["model"]).lower():
        lines[-1] += (
            " Why this model: it is small enough to train every method here on a 2-core CPU, and it installs offline "
            "(a PyPI package). It is a sentence-embedding model: its training averaged the token states (mean "
            "pooling), so BERT's pooler on the first token, which the default head reads, took no part in it; §6 "
            "compares mean pooling where its runs exist."
        )
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
            "differs between methods (by method above)."
            + _head_gap(_method_gaps(defaults[defaults["task"] == "sst2"]))
            + " Validation scores rank settings here; the test (GLUE dev) scores are the ones to compare.\n"
        )
        text += _gap_against_training_size(defaults, grid, "sst2")
    return text


def _head_gap(gaps: pd.Series) -> str:
    """What the classifier alone's gap says about the cause: its encoder is frozen, so it memorises no text,
    and a gap as large as full fine-tuning's cannot come from memorised text alone."""
    if not {"head", "full"} <= set(gaps.index.astype(str)):
        return ""
    return (
        f" The classifier alone, on a frozen encoder that memorises no text, has a gap of {gaps['head']:+.3f} against "
        f"full fine-tuning's {gaps['full']:+.3f}: memorised text cannot be the whole cause, and the slice's short, "
        "in-domain phrases are easier to label from the pretrained features too. How much of the gap each cause "
        "holds would take scoring the slice's shared and unshared examples apart (not measured)."
    )


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
        "checked, lower-cased, whole words; notebook 01, `meta/split_overlap.json`). Training has seen most of the "
        "slice's text, inside longer labelled phrases, and almost none of the test's"
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
