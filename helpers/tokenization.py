"""Tokenization of single sentences and pairs, cached on disk, and the dynamic-padding collator."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from datasets import DatasetDict, load_from_disk

from helpers.data import DATA_CACHE
from helpers.tasks import TaskSpec, get_task


def tokenize_batch(batch: dict, task: TaskSpec | str, tokenizer, max_length: int, padding: bool | str = False) -> dict:
    """Tokenize one batch of rows: the task's one or two text columns, truncated to max_length."""
    task = get_task(task)
    texts = [batch[column] for column in task.text_columns]
    encoded = tokenizer(*texts, truncation=True, max_length=max_length, padding=padding)
    encoded["labels"] = batch["label"]
    # Real (non-padding) tokens per example: what length-grouping and tokens/s are computed from.
    encoded["length"] = [sum(mask) for mask in encoded["attention_mask"]]
    return encoded


def _cache_key(splits: DatasetDict, task: TaskSpec, tokenizer, max_length: int, padding) -> str:
    parts = {
        "task": task.name,
        "tokenizer": getattr(tokenizer, "name_or_path", type(tokenizer).__name__),
        "vocab_size": len(tokenizer),
        "max_length": max_length,
        "padding": padding,
        "splits": {name: dataset._fingerprint for name, dataset in splits.items()},
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def tokenize_splits(
    splits: DatasetDict,
    task: TaskSpec | str,
    tokenizer,
    *,
    max_length: int,
    padding: bool | str = False,
    cache_dir: str | os.PathLike | None = DATA_CACHE,
) -> DatasetDict:
    """Tokenize every split, truncated to `max_length` (a run's TrainConfig.max_length; no default here,
    so the length is decided in one place), with no padding by default: the collator pads each batch.

    Results are cached under `cache_dir/tokenized/<key>`, keyed by the task, tokenizer, max_length
    and the content fingerprint of each split, so a second run with the same data skips this step.
    Columns kept: input_ids, attention_mask (token_type_ids if the model uses them), labels, length.
    """
    task = get_task(task)
    if max_length <= 0:
        raise ValueError(f"max_length must be positive, got {max_length}.")
    target = None
    if cache_dir is not None:
        target = (
            Path(cache_dir) / "tokenized" / f"{task.name}-{_cache_key(splits, task, tokenizer, max_length, padding)}"
        )
        if target.is_dir():
            return load_from_disk(str(target))
    tokenized = splits.map(
        tokenize_batch,
        batched=True,
        fn_kwargs={"task": task, "tokenizer": tokenizer, "max_length": max_length, "padding": padding},
        remove_columns=list(next(iter(splits.values())).column_names),
        desc=f"Tokenizing {task.display_name}",
    )
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
        tokenized.save_to_disk(str(staging))
        try:
            staging.rename(target)  # atomic: a half-written cache is never seen
        except OSError:  # another process finished first
            shutil.rmtree(staging, ignore_errors=True)
        tokenized = load_from_disk(str(target))
    return tokenized


class GlueCollator:
    """Pads each batch (dynamic padding), drops bookkeeping columns, and counts real vs padded tokens."""

    def __init__(self, tokenizer, pad_to_multiple_of: int | None = None):
        from transformers import DataCollatorWithPadding

        self.pad = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_to_multiple_of)
        self.reset()

    def reset(self) -> None:
        self.real_tokens = self.padded_tokens = 0
        # Σ length² over examples (real) and Σ batch·length² over batches (computed): attention FLOPs.
        self.real_tokens_sq = self.padded_tokens_sq = 0

    def counters(self) -> tuple[int, int, int, int]:
        return self.real_tokens, self.padded_tokens, self.real_tokens_sq, self.padded_tokens_sq

    def restore(self, counters: tuple[int, int, int, int]) -> None:
        self.real_tokens, self.padded_tokens, self.real_tokens_sq, self.padded_tokens_sq = counters

    def __call__(self, rows: list[dict]) -> dict:
        rows = [{k: v for k, v in row.items() if k not in ("length", "idx")} for row in rows]
        batch = self.pad(rows)
        lengths = batch["attention_mask"].sum(dim=1)
        size, length = batch["attention_mask"].shape
        self.real_tokens += int(lengths.sum())
        self.real_tokens_sq += int((lengths**2).sum())
        self.padded_tokens += size * length
        self.padded_tokens_sq += size * length * length
        return batch


def make_collator(tokenizer, pad_to_multiple_of: int | None = None) -> GlueCollator:
    """Pads each batch to its own longest example (dynamic padding)."""
    return GlueCollator(tokenizer, pad_to_multiple_of)
