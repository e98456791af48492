"""Export a trained run as a plain transformers model folder, loadable without peft or this project.

A run trained with `--save-adapter` keeps its adapter and head (LoRA, DoRA, IA3) or its trained tensors
(BitFit, head, full). Export rebuilds the run's model as `predict` does, merges a peft adapter into the
base weights (`merge_and_unload`: W + (alpha/r)·BA for LoRA, the head copied in place of the frozen one),
and saves config (with the task's label names), weights and tokenizer, so that
`AutoModelForSequenceClassification.from_pretrained(folder)` gives the same logits as the unmerged model.

Prompt methods (prefix, prompt, ptuning) add virtual tokens and mean pooling adds hooks: both change the
forward pass itself, which a plain model folder cannot hold, so they are refused with the reason.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

EXPORT_INFO = "exported_from.json"  # which run the folder holds, and its recorded test scores


def find_run_record(run: str, results_dir: str | os.PathLike | None = None) -> Path:
    """The record of `run`: a record file's path, or a run id looked up in `results_dir` and its subfolders."""
    if Path(run).is_file():
        return Path(run)
    if results_dir is None:
        from helpers.training import RESULTS_DIR

        results_dir = RESULTS_DIR
    found = sorted(Path(results_dir).rglob(f"{Path(run).name.removesuffix('.json')}.json"))
    if not found:
        raise FileNotFoundError(f"No run record {run!r}: not a file, nor a run id with a record under {results_dir}.")
    if len(found) > 1:
        raise ValueError(f"Run id {run!r} has {len(found)} records: {', '.join(map(str, found))}; pass one's path.")
    return found[0]


def plain_model(model):
    """The model as a plain transformers model: a peft adapter merged into its base, or the model as it is."""
    if getattr(getattr(model, "config", None), "pooling", None) == "mean":
        raise ValueError(
            "This run pools the mean of the tokens through hooks (pooling 'mean'), which a saved model folder "
            "does not keep; only runs with pooling 'model' can be exported."
        )
    if hasattr(model, "peft_config"):
        if model.active_peft_config.is_prompt_learning:
            raise ValueError(
                f"A {model.active_peft_config.peft_type.value} run adds virtual tokens to every input, which cannot be "
                "merged into the base weights; use `python -m helpers predict` with the run instead."
            )
        return model.merge_and_unload()
    if any(name.startswith("prefix_encoder.") for name, _ in model.named_parameters()):
        raise ValueError(
            "A prefix run adds trained keys and values to every attention layer, which cannot be merged into the "
            "base weights; use `python -m helpers predict` with the run instead."
        )
    return model


def check_out_folder(out: str | os.PathLike, force: bool) -> Path:
    """`out` as a Path, if it is new or an empty folder (or `force`): an export never mixes with other files."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file; --out names the folder to write.")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise FileExistsError(f"{out} is not empty; choose a new folder or pass --force to write into it.")
    return out


def export_run(
    run: str, out: str | os.PathLike, results_dir: str | os.PathLike | None = None, force: bool = False
) -> dict:
    """Merge and save run `run` (record path or run id) into folder `out`; returns what was exported."""
    from helpers.predict import load_trained_model

    out = check_out_folder(out, force)
    model, tokenizer, task, record = load_trained_model(find_run_record(run, results_dir))  # needs saved weights
    merged = plain_model(model)
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    info = {
        "run_id": record["run_id"],
        "task": task.name,
        "labels": list(task.label_names) or "regression",
        "method": record["config"]["method"],
        "base_model": record["config"]["model"],
        "merged": hasattr(model, "peft_config"),
        "test": record["test"],
    }
    (out / EXPORT_INFO).write_text(json.dumps(info, indent=2) + "\n")
    return {**info, "folder": str(out)}
