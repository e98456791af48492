"""The Trainer a run trains with, and the callback that evaluates at every epoch end.

This module imports transformers, which takes seconds: helpers.training imports it only when a run
trains, so that reading records (sweeps, analysis, the report) does not pay for it.
"""

from __future__ import annotations

import time

import torch
from transformers import Trainer, TrainerCallback

from helpers.batching import ShuffledLengthBuckets
from helpers.records import EvalRow, StorageError, is_storage_error


def _rng_state() -> tuple:
    """torch's global generator states (CPU, and every CUDA device when there is one)."""
    return torch.random.get_rng_state(), torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None


def _restore_rng(state: tuple) -> None:
    cpu, cuda = state
    torch.random.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state_all(cuda)


class GlueTrainer(Trainer):
    """Trainer that times evaluation and checkpoint saving apart from training, and keeps every
    evaluation's metrics with its step, epoch and split."""

    def __init__(self, *args, task=None, fast_eval=True, length_grouping=False, bucket_batches=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.task = task
        self.fast_eval = fast_eval
        self.length_grouping = length_grouping
        self.bucket_batches = bucket_batches or ShuffledLengthBuckets.DEFAULT_BUCKET_BATCHES
        self.eval_seconds = 0.0
        self.save_seconds = 0.0
        self.evals: list[EvalRow] = []

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        if isinstance(eval_dataset if eval_dataset is not None else self.eval_dataset, dict):
            start = time.perf_counter()  # one call per named split follows (`eval_<split>`), each recorded
            metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
            self.eval_seconds += time.perf_counter() - start
            return metrics
        nested = metric_key_prefix.startswith("eval_")
        start = time.perf_counter()
        counters = self.data_collator.counters()
        # Every DataLoader iterator draws its base seed from torch's global generator, so scoring one more
        # split would shift the dropout masks of the steps after it: test curves (eval_test) must not change
        # what trains, so their evaluation leaves the generators as it found them.
        rng = _rng_state() if self.task and metric_key_prefix[len("eval_") :] in self.task.test_splits else None
        metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        if rng is not None:
            _restore_rng(rng)
        self.data_collator.restore(counters)  # evaluation batches are not training tokens
        if not nested:
            self.eval_seconds += time.perf_counter() - start
        prefix = f"{metric_key_prefix}_"
        self.evals.append(
            EvalRow(
                step=self.state.global_step,
                epoch=round(self.state.epoch or 0.0, 4),
                split=metric_key_prefix[len("eval_") :] if nested else "validation",
                metrics={
                    k[len(prefix) :]: v
                    for k, v in metrics.items()
                    if k.startswith(prefix) and k[len(prefix) :] in self.task.metrics
                },
                loss=metrics.get(f"{prefix}loss"),
            )
        )
        return metrics

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if not self.length_grouping:
            return super()._get_train_sampler(train_dataset)
        batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
        return ShuffledLengthBuckets(dataset["length"], batch, bucket_batches=self.bucket_batches, seed=self.args.seed)

    def _save_checkpoint(self, model, trial):
        try:
            super()._save_checkpoint(model, trial)
        except Exception as error:
            if not is_storage_error(error):
                raise
            raise StorageError(
                f"Could not save a checkpoint in {self.args.output_dir} ({type(error).__name__}: {error}). "
                "Is the disk full? Free some space or pass another --results-dir, then run again; "
                "this run was not recorded."
            ) from error

    def save_model(self, output_dir=None, _internal_call=False):
        start = time.perf_counter()
        super().save_model(output_dir, _internal_call)
        self.save_seconds += time.perf_counter() - start

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        if not self.fast_eval:  # the baseline recipe keeps Trainer's own (torch.no_grad)
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)
        with torch.inference_mode():
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)


class EvaluateAtEpochEnd(TrainerCallback):
    """With `eval_steps`, Trainer evaluates every N steps only; this adds the end of every epoch.

    It also saves there, so that load_best_model_at_end can load a best model found at an epoch
    end; a step that was just evaluated (N divides the epoch, or the last step) is not redone.
    """

    def __init__(self):
        self.last_evaluated_step = -1

    def on_evaluate(self, args, state, control, **kwargs):
        self.last_evaluated_step = state.global_step

    def on_epoch_end(self, args, state, control, **kwargs):
        if state.global_step != self.last_evaluated_step:
            control.should_evaluate = True
            control.should_save = True
        return control
