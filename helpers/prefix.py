"""Prefix tuning (Li & Liang, 2021) for encoders: trainable key/value prefixes in every layer.

Why not peft's `PrefixTuningConfig`: with transformers 5.x the BERT/RoBERTa encoders take `cache`
instead of `past_key_values`, and peft refuses them ("Model does not support past key values").
Passing a cache through the encoder would also shift the position ids of the real tokens.

How it works here: the model's attention runs through an attention function registered with
transformers (`AttentionInterface`) as `prefix_sdpa` (or `prefix_fast_eager`, on top of the CPU
recipe's attention in helpers.speed). Before calling the inner attention it prepends this layer's
prefix keys and values, and widens the attention mask so every query may attend to the prefix while
padding positions stay masked. Queries, positions and outputs of the real tokens are untouched, so
the classification head reads the same positions as before.
"""

from __future__ import annotations

import re

import torch
from torch import nn

# name registered with transformers -> the inner attention it wraps
PREFIX_ATTENTION = {"prefix_sdpa": "sdpa", "prefix_fast_eager": "fast_eager"}
_registered = False


class PrefixEncoder(nn.Module):
    """Holds (or computes) the key/value prefix of every layer.

    Without reparameterisation the prefix is a free parameter of shape (layers, 2, heads, P, head_dim),
    initialised from the keys and values the model itself computes for P real vocabulary tokens (the
    paper's "initialise with real words", which trains more stably than random values). With
    `projection_hidden`, P embeddings pass through a two-layer MLP, as in the paper's reparameterisation.
    """

    def __init__(
        self,
        num_layers: int,
        num_heads: int,
        head_dim: int,
        num_virtual_tokens: int,
        projection_hidden: int | None = None,
        init: torch.Tensor | None = None,
    ):
        super().__init__()
        self.shape = (num_layers, 2, num_heads, num_virtual_tokens, head_dim)
        width = num_heads * head_dim
        if projection_hidden:
            self.embedding = nn.Embedding(num_virtual_tokens, width)
            self.mlp = nn.Sequential(
                nn.Linear(width, projection_hidden), nn.Tanh(), nn.Linear(projection_hidden, num_layers * 2 * width)
            )
            self.prefix = None
        else:
            start = init if init is not None else 0.02 * torch.randn(self.shape)
            self.prefix = nn.Parameter(start.reshape(self.shape).contiguous().clone())
        self.reset()

    def forward(self) -> torch.Tensor:
        if self.prefix is not None:
            return self.prefix
        layers, _, heads, tokens, head_dim = self.shape
        flat = self.mlp(self.embedding.weight)  # (P, layers * 2 * width)
        return flat.view(tokens, layers, 2, heads, head_dim).permute(1, 2, 3, 0, 4)

    def reset(self, *args, **kwargs) -> None:
        """Forget the prefix computed for the last forward pass (a pre-hook on the model calls this)."""
        # object.__setattr__: the cached tensor may be the Parameter itself and must not be registered twice.
        object.__setattr__(self, "_current", None)

    def layer(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(keys, values) of one layer, each (heads, P, head_dim); computed once per forward pass."""
        if self._current is None:
            object.__setattr__(self, "_current", self())
        return self._current[index, 0], self._current[index, 1]


def _with_prefix(inner):
    def attention(module, query, key, value, attention_mask, **kwargs):
        key, value, attention_mask = _prepend_prefix(module, query, key, value, attention_mask)
        return inner(module, query, key, value, attention_mask, **kwargs)

    return attention


def _prepend_prefix(module, query, key, value, attention_mask):
    """This layer's prefix keys/values in front of the real ones (see the module docstring)."""

    owner = getattr(module, "_prefix_owner", None)
    if owner is not None:
        prefix_key, prefix_value = owner.layer(module._prefix_index)
        batch, num_virtual = query.shape[0], prefix_key.shape[1]
        key = torch.cat([prefix_key.to(key.dtype).unsqueeze(0).expand(batch, -1, -1, -1), key], dim=2)
        value = torch.cat([prefix_value.to(value.dtype).unsqueeze(0).expand(batch, -1, -1, -1), value], dim=2)
        if attention_mask is not None:
            # (batch, 1, q, kv): True/0.0 means "may attend"; every query may attend to the prefix.
            shape = (*attention_mask.shape[:-1], num_virtual)
            if attention_mask.dtype == torch.bool:
                visible = torch.ones(shape, dtype=torch.bool, device=attention_mask.device)
            else:
                visible = torch.zeros(shape, dtype=attention_mask.dtype, device=attention_mask.device)
            attention_mask = torch.cat([visible, attention_mask], dim=-1)
    return key, value, attention_mask


def register_prefix_attention() -> None:
    """Register the prefix attentions with transformers (attention and matching mask); idempotent."""
    global _registered
    if _registered:
        return
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import eager_mask, sdpa_mask

    from helpers.speed import fast_eager_attention

    inner = {"sdpa": (sdpa_attention_forward, sdpa_mask), "fast_eager": (fast_eager_attention, eager_mask)}
    for name, inner_name in PREFIX_ATTENTION.items():
        attention, mask = inner[inner_name]
        AttentionInterface.register(name, _with_prefix(attention))
        AttentionMaskInterface.register(name, mask)
    _registered = True


def _attention_modules(model: nn.Module, key_module: str) -> list[nn.Module]:
    """The self-attention module of each layer, in order: the parent of the layer's key projection."""
    parent = key_module.rsplit(".", 1)[0]
    pattern = re.compile(rf".*\.layers?\.(\d+)\.{re.escape(parent)}$")
    found = [(int(m.group(1)), module) for name, module in model.named_modules() if (m := pattern.match(name))]
    return [module for _, module in sorted(found, key=lambda item: item[0])]


@torch.no_grad()
def _real_token_init(model: nn.Module, key_module: str, value_module: str, shape: tuple, seed: int) -> torch.Tensor:
    """Keys/values the model computes for random real vocabulary tokens, one row per virtual token."""
    layers, _, heads, tokens, head_dim = shape
    generator = torch.Generator().manual_seed(seed)
    vocab = model.get_input_embeddings().num_embeddings
    input_ids = torch.randint(1000 if vocab > 2000 else 1, vocab, (1, tokens), generator=generator)
    captured: dict[str, torch.Tensor] = {}
    hooks = []
    for name, module in model.named_modules():
        if re.search(rf"\.layers?\.\d+\.({re.escape(key_module)}|{re.escape(value_module)})$", name):
            hooks.append(
                module.register_forward_hook(lambda m, i, o, name=name: captured.__setitem__(name, o.detach()))
            )
    was_training = model.training
    model.eval()
    try:
        model.base_model(input_ids=input_ids.to(model.device))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    keys = [v for k, v in captured.items() if k.endswith(key_module)]
    values = [v for k, v in captured.items() if k.endswith(value_module)]
    stacked = torch.stack([torch.stack([k[0], v[0]]) for k, v in zip(keys, values)])  # (L, 2, P, width)
    return stacked.view(layers, 2, tokens, heads, head_dim).transpose(2, 3).float().cpu()


def add_prefix(
    model: nn.Module,
    num_virtual_tokens: int,
    key_module: str,
    value_module: str,
    projection_hidden: int | None = None,
    seed: int = 0,
) -> PrefixEncoder:
    """Attach a `PrefixEncoder` as `model.prefix_encoder` and route attention through `prefix_sdpa`."""
    register_prefix_attention()
    attention = _attention_modules(model, key_module)
    if not attention:
        raise ValueError(f"Found no attention modules with a {key_module!r} projection for prefix tuning.")
    first = attention[0]
    num_heads = getattr(first, "num_attention_heads", None) or first.n_heads
    head_dim = getattr(first, "attention_head_size", None) or first.dim // num_heads
    shape = (len(attention), 2, num_heads, num_virtual_tokens, head_dim)
    init = None if projection_hidden else _real_token_init(model, key_module, value_module, shape, seed)
    encoder = PrefixEncoder(len(attention), num_heads, head_dim, num_virtual_tokens, projection_hidden, init)
    model.prefix_encoder = encoder.to(model.device)
    for index, module in enumerate(attention):
        # Plain attributes, not submodules: the encoder is registered once, on the model.
        object.__setattr__(module, "_prefix_owner", encoder)
        object.__setattr__(module, "_prefix_index", index)
    model.register_forward_pre_hook(encoder.reset)
    current = model.config._attn_implementation
    model.set_attn_implementation("prefix_fast_eager" if current == "fast_eager" else "prefix_sdpa")
    return encoder
