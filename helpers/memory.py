"""Training memory, measured the same way on every device.

On CUDA the allocator's peak is the honest number. On a CPU there is no allocator peak to read, so
the record also carries a breakdown measured on one training batch of fixed shape:
- parameters (all, in their storage dtype),
- gradients (trainable parameters only),
- optimizer state (AdamW keeps two fp32 tensors per trainable parameter),
- activations saved for the backward pass, counted with `torch.autograd.graph.saved_tensors_hooks`
  (parameters that autograd saves are not counted twice).
This is what separates the methods: frozen weights need no gradients, no optimizer state, and
autograd does not keep the inputs of frozen linear layers for their weight gradients.
"""

from __future__ import annotations

import contextlib
import resource

import torch
from torch import nn


def _storage_key(tensor: torch.Tensor):
    try:
        return tensor.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):
        return id(tensor)


def saved_activation_bytes(model: nn.Module, batch: dict, autocast_dtype: torch.dtype | None = None) -> int:
    """Bytes autograd keeps for backward during one training-mode forward pass of `batch`."""
    parameter_storages = {_storage_key(p) for p in model.parameters()}
    seen: dict = {}

    def pack(tensor: torch.Tensor):
        key = _storage_key(tensor)
        if key not in parameter_storages and key not in seen:
            seen[key] = tensor.untyped_storage().nbytes()
        # Not the tensor itself: a saved output would then hold its own grad_fn, a reference cycle
        # through C++ that Python's collector cannot see, and the whole graph would leak.
        return tensor.detach()

    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    autocast = (
        torch.autocast(device_type=device.type, dtype=autocast_dtype)
        if autocast_dtype is not None
        else contextlib.nullcontext()
    )
    was_training = model.training
    model.train()
    try:
        with torch.enable_grad(), autocast, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            output = model(**batch)
            del output
    finally:
        model.train(was_training)
    return int(sum(seen.values()))


def static_training_bytes(model: nn.Module) -> dict:
    """Parameter, gradient and AdamW-state bytes: what a training step holds whatever the batch."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    return {
        "parameters_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
        "gradients_bytes": sum(p.numel() * p.element_size() for p in trainable),
        "optimizer_bytes": sum(2 * p.numel() * 4 for p in trainable),
    }


def memory_breakdown(model: nn.Module, batch: dict, autocast_dtype: torch.dtype | None = None) -> dict:
    """Parameter, gradient, AdamW-state and saved-activation bytes for one training step on `batch`."""
    static = static_training_bytes(model)
    activations = saved_activation_bytes(model, batch, autocast_dtype)
    return {
        **static,
        "activations_bytes": activations,
        "total_bytes": sum(static.values()) + activations,
        "batch_shape": list(batch["input_ids"].shape),
    }


def process_peak_rss_bytes() -> int:
    """High-water mark of this process's resident memory (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
