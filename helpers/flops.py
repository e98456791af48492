"""Training FLOPs of an encoder, from token counts, for model FLOP utilisation.

Per token and layer, the dense layers cost 2·(their weights) FLOPs forward; attention scores and
the weighted sum cost 4·T·d for a sequence of length T. Backward costs one more forward for the
gradient with respect to the inputs, and one more for the weight gradients only when the dense
weights train (full fine-tuning); attention's two matrix products have no weights, so their
backward is always twice their forward. Head-only training has no backward through the encoder.
`tests/test_flops.py` checks this against PyTorch's own FLOP counter.
"""

from __future__ import annotations

import re

from torch import nn


def encoder_shape(model: nn.Module) -> dict:
    """Dense weights inside the encoder layers, number of layers and width."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    cfg = base.config
    width = getattr(cfg, "hidden_size", None) or cfg.dim
    layers = getattr(cfg, "num_hidden_layers", None) or cfg.n_layers
    dense = 0
    for name, module in base.named_modules():
        # peft wraps adapted layers; the frozen nn.Linear inside (base_layer) is what computes.
        if isinstance(module, nn.Linear) and re.search(r"\.layers?\.\d+\.", name) and "lora_" not in name:
            dense += module.weight.numel()
    return {"dense_weights": dense, "layers": layers, "width": width}


BACKWARD_MULTIPLIERS = {"none": (1, 1), "inputs": (2, 3), "weights": (3, 3)}  # (dense, attention)


def training_flops(shape: dict, tokens: int, tokens_times_length: int, backward: str) -> float:
    """FLOPs of forward + backward over `tokens` positions; `tokens_times_length` is Σ B·T² over batches.

    backward: "weights" (full fine-tuning: input and weight gradients), "inputs" (frozen weights, e.g.
    BitFit, LoRA: input gradients only), "none" (head-only: no backward pass through the encoder).
    Not counted: adapters, biases, prefix keys, the head; 4-bit (QLoRA) weights are undercounted.
    """
    dense_multiplier, attention_multiplier = BACKWARD_MULTIPLIERS[backward]
    dense_forward = 2 * shape["dense_weights"] * tokens
    attention_forward = 4 * shape["layers"] * shape["width"] * tokens_times_length
    return dense_multiplier * dense_forward + attention_multiplier * attention_forward
