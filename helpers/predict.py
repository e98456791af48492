"""Use a trained run: rebuild its model from the record, load its saved weights, label new texts.

A run keeps its trained weights when trained with `save_adapter=True` (`--save-adapter`): the peft
adapter with the head, or the trainable tensors (BitFit, head, full, prefix), under
`<results>/adapters/<run_id>/` and named in the record's `adapter_path`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import torch


def load_trained_model(record_path: str | os.PathLike):
    """(model in eval mode, tokenizer, task, record) of a saved run."""
    from safetensors.torch import load_file

    from helpers.methods import MethodConfig, prepare_model
    from helpers.models import load_model, load_tokenizer
    from helpers.records import load_record
    from helpers.tasks import get_task
    from helpers.training import TrainConfig

    record = load_record(record_path)
    folder = record.get("adapter_path")
    if not folder or not Path(folder).is_dir():
        raise FileNotFoundError(
            f"{record_path}: the run kept no trained weights (adapter_path {folder!r}); "
            "train it again with --save-adapter."
        )
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in record["config"].items() if k in fields}
    method_fields = {f.name for f in dataclasses.fields(MethodConfig)}
    values["method"] = MethodConfig(**{k: v for k, v in values["method"].items() if k in method_fields})
    config = TrainConfig(**values)
    task = get_task(config.task)
    model = prepare_model(
        load_model(config.model, task, pooling=config.method.pooling), config.method, seed=config.seed
    )
    folder = Path(folder)
    if (folder / "adapter_model.safetensors").is_file():
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, load_file(str(folder / "adapter_model.safetensors")))
    else:
        missing = set(load_file(str(folder / "trainable.safetensors"))) - {name for name, _ in model.named_parameters()}
        if missing:
            raise ValueError(f"{folder}: saved tensors {sorted(missing)[:5]} are not parameters of the rebuilt model.")
        model.load_state_dict(load_file(str(folder / "trainable.safetensors")), strict=False)
    return model.eval(), load_tokenizer(config.model), task, record


@torch.inference_mode()
def predict_texts(
    model,
    tokenizer,
    task,
    texts: list[str],
    pairs: list[str] | None = None,
    max_length: int = 128,
    batch_size: int = 32,
) -> list[dict]:
    """One `{label, score}` per text (pair): the label name and its probability, or the regression value."""
    out = []
    for start in range(0, len(texts), batch_size):
        args = [texts[start : start + batch_size]] + ([pairs[start : start + batch_size]] if pairs is not None else [])
        batch = tokenizer(*args, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        logits = model(**batch).logits.float()
        if task.is_regression:
            out += [{"score": float(v)} for v in logits.reshape(-1)]
            continue
        probabilities = torch.softmax(logits, dim=-1).numpy()
        out += [{"label": task.label_names[int(np.argmax(p))], "score": float(np.max(p))} for p in probabilities]
    return out


def predict_file(model, tokenizer, task, path: str | os.PathLike, max_length: int = 128) -> list[dict]:
    """Predictions for every row of a CSV / TSV / JSON file holding the task's text column(s)."""
    from helpers.datasets_spec import DatasetSpecError, read_table

    frame = read_table(Path(path))
    missing = [c for c in task.text_columns if c not in frame.columns]
    if missing:
        raise DatasetSpecError(
            f"{path}: no column(s) {missing} (the run's task reads {list(task.text_columns)}); "
            f"its columns are {list(frame.columns)}."
        )
    texts = frame[task.text_columns[0]].astype(str).tolist()
    pairs = frame[task.text_columns[1]].astype(str).tolist() if task.is_pair else None
    return predict_texts(model, tokenizer, task, texts, pairs, max_length)


def format_predictions(predictions: list[dict]) -> str:
    return "\n".join(json.dumps(p) for p in predictions)
