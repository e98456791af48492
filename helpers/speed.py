"""Speed-ups of the "fast" recipe that keep the model's maths (CPU kernels; GPU attention): measured in
`python -m helpers bench`.

Profiling a LoRA step on this project's 2-core CPU (MiniLM, batch 32 x 128 tokens, bf16 autocast)
showed the matrix products already near the machine's peak, and most of the rest spent elsewhere:
- PyTorch's dropout draws one random number per element through `bernoulli_` (about 4 ns each);
  dropout on the attention probabilities alone (batch x heads x T x T elements per layer) cost
  more than the layer's matrix products. `fast_dropout` draws 64 random bits at a time and uses
  16 of them per element: the same dropout (keep probability exact to 1/65536), 3-6x cheaper.
- SDPA on CPU with dropout falls back to its unfused maths path, and its fused (flash) CPU kernel
  is slow in backward; plain "eager" attention with `fast_dropout` is quicker in both cases.
So the fast recipe on CPU swaps every `nn.Dropout` for `FastDropout` and runs attention through
`fast_eager` (registered with transformers' AttentionInterface). GPUs keep SDPA and native dropout.
"""

from __future__ import annotations

import torch
from torch import nn

FAST_EAGER = "fast_eager"
_registered = False


def fast_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Dropout with p quantised to 1/65536, drawing 16 random bits per element from 64-bit draws."""
    if not training or p <= 0.0:
        return x
    if p >= 1.0:
        return torch.zeros_like(x)
    threshold = round(p * 65536)
    numel = x.numel()
    bits = torch.empty((numel + 3) // 4, dtype=torch.int64, device=x.device).random_(-(2**63), 2**63 - 1)
    keep = bits.view(torch.int16)[:numel].view(x.shape) >= (threshold - 32768)
    return x * keep * (65536 / (65536 - threshold))


class FastDropout(nn.Module):
    """Drop-in replacement for nn.Dropout using `fast_dropout`."""

    def __init__(self, p: float = 0.1):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fast_dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def fast_eager_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Eager attention (scores, additive mask, softmax, dropout, weighted sum) with `fast_dropout`."""
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    groups = query.size(1) // key.size(1)
    if groups > 1:  # grouped-query attention (Llama): each key/value head serves `groups` query heads
        key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            weights = weights.masked_fill(~attention_mask, torch.finfo(weights.dtype).min)
        else:
            weights = weights + attention_mask
    weights = nn.functional.softmax(weights, dim=-1)
    weights = fast_dropout(weights, dropout, module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return output, weights


def register_fast_attention() -> None:
    """Register `fast_eager` (and its additive mask) with transformers; idempotent."""
    global _registered
    if _registered:
        return
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import eager_mask

    AttentionInterface.register(FAST_EAGER, fast_eager_attention)
    AttentionMaskInterface.register(FAST_EAGER, eager_mask)
    _registered = True


def use_fast_attention(model: nn.Module) -> nn.Module:
    """Run attention through `fast_eager` (call before prepare_model, so prefix tuning wraps it)."""
    register_fast_attention()
    model.set_attn_implementation(FAST_EAGER)
    return model


def use_fast_dropout(model: nn.Module) -> nn.Module:
    """Swap every nn.Dropout, including those a PEFT method added, for FastDropout."""
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if type(child) is nn.Dropout:
                setattr(module, child_name, FastDropout(child.p))
    return model


# ---------------------------------------------------------------------------------------------
# GPU: attention kernels for batches whose length changes every step
# ---------------------------------------------------------------------------------------------

GPU_PAD_MULTIPLE = 8  # tensor cores want multiples of 8; it also caps the number of distinct shapes


def sdpa_without_cudnn():
    """On CUDA, SDPA restricted to its flash, memory-efficient and maths kernels.

    PyTorch prefers the cuDNN attention kernel on Hopper GPUs, and cuDNN builds an execution plan for
    every new input shape (hundreds of ms each). With per-batch padding nearly every batch has a new
    length: measured on an H100 (MiniLM, batch 32), the fast recipe then trained 4-6x *slower* than
    padding everything to 128. Elsewhere this is a no-op context.
    """
    import contextlib

    if not torch.cuda.is_available():
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])


# ---------------------------------------------------------------------------------------------
# torch.compile over a few fixed lengths (opt-in: TrainConfig.compile, `--compile`)
# ---------------------------------------------------------------------------------------------

COMPILE_PAD_MULTIPLE = 32  # with max_length 128: four lengths (32, 64, 96, 128), so four graphs per batch size


def static_bucket_shapes():
    """Compile settings for batches padded to multiples of COMPILE_PAD_MULTIPLE.

    Compiling with per-batch padding lost on the CPU (RTE LoRA: 30.9 vs 44.9 samples/s, compile time
    included): nearly every batch had a new length, so the model was recompiled, and then run through
    a graph with symbolic lengths. With the lengths padded to a few fixed buckets, each bucket gets
    its own static graph (automatic dynamic shapes off), compiled once; the limit on recompilations
    is raised to cover every bucket in training and evaluation, for both batch sizes (full and last).
    """
    import torch._dynamo

    return torch._dynamo.config.patch(automatic_dynamic_shapes=False, recompile_limit=64)
