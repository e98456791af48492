"""Fine-tuning methods: one validated config (`MethodConfig`) and one function (`prepare_model`).

| method   | what trains                                                     | built with        |
|----------|-----------------------------------------------------------------|-------------------|
| full     | everything                                                      | freezing predicate|
| head     | the classification head only                                    | freezing predicate|
| bitfit   | every bias + head (`bitfit_variant="sparse"`: query and first-MLP biases only) | freezing predicate|
| lora     | low-rank updates B·A on the target linear layers + head         | peft LoRA         |
| dora     | LoRA with weight decomposition (magnitude + direction) + head   | peft LoRA+DoRA    |
| ia3      | learned rescaling of keys, values and MLP activations + head    | peft IA3          |
| prefix   | key/value prefixes in every layer (+ optional MLP) + head       | helpers.prefix    |
| prompt   | virtual input tokens (prompt tuning) + head                     | peft              |
| ptuning  | virtual input tokens from a small prompt encoder (P-tuning) + head | peft           |
| qlora    | LoRA on a 4-bit quantised base (CUDA + bitsandbytes only) + head | peft + bitsandbytes|

The classification head always trains and, for peft methods, is saved with the adapter
(`modules_to_save`): forgetting it is a classic pitfall that leaves a random head at inference.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from torch import nn

from helpers.models import POOLING_CHOICES, ArchSpec, arch_spec, linear_layer_names

log = logging.getLogger(__name__)

METHODS = ("full", "head", "bitfit", "lora", "dora", "ia3", "prefix", "prompt", "ptuning", "qlora")
LORA_METHODS = ("lora", "dora", "qlora")
PROMPT_METHODS = ("prefix", "prompt", "ptuning")
INPUT_TOKEN_METHODS = ("prompt", "ptuning")  # their virtual tokens are prepended to the input and take positions
BITFIT_VARIANTS = ("all", "sparse")
ALL_LINEAR = "all-linear"

# Which knobs belong to which method: only these are recorded and enter the run id.
_KNOBS = {
    "full": (),
    "head": (),
    "bitfit": ("bitfit_variant",),
    "lora": ("rank", "alpha", "lora_dropout", "target_modules"),
    "dora": ("rank", "alpha", "lora_dropout", "target_modules"),
    "qlora": ("rank", "alpha", "lora_dropout", "target_modules"),
    "ia3": (),
    "prefix": ("num_virtual_tokens", "prefix_projection"),
    "prompt": ("num_virtual_tokens",),
    "ptuning": ("num_virtual_tokens", "encoder_hidden_size"),
}


@dataclass
class MethodConfig:
    """A fine-tuning method and its knobs; checked on creation, before any model is loaded."""

    method: str = field(default="lora", metadata={"help": "the fine-tuning method (see METHODS)"})
    rank: int = field(default=8, metadata={"help": "LoRA/DoRA rank r: higher = more parameters, more capacity"})
    alpha: float = field(default=16.0, metadata={"help": "LoRA alpha; the update is scaled by alpha / r"})
    lora_dropout: float = field(default=0.1, metadata={"help": "dropout on the LoRA branch's input, in [0, 1)"})
    target_modules: tuple[str, ...] | None = field(
        default=None,
        metadata={
            "help": f"LoRA targets: {ALL_LINEAR!r}, or comma-separated layer names",
            "default_help": "the attention query and value layers",
        },
    )
    bitfit_variant: str = field(
        default="all", metadata={"help": "all: every bias; sparse: query + first-MLP biases only (BitFit paper)"}
    )
    num_virtual_tokens: int = field(default=20, metadata={"help": "prompt/prefix length P for prefix, prompt, ptuning"})
    prefix_projection: int = field(
        default=0, metadata={"help": "prefix: 0 = free prefix, N = reparameterise through an MLP of width N"}
    )
    encoder_hidden_size: int = field(default=128, metadata={"help": "ptuning: prompt encoder width"})
    pooling: str = field(
        default="model",
        metadata={
            "help": "model: first token (+ BERT pooler), as AutoModelForSequenceClassification; mean: masked token mean"
        },
    )

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"Unknown method {self.method!r}. Valid methods: {', '.join(METHODS)}.")
        if isinstance(self.target_modules, str):
            text = self.target_modules
            self.target_modules = tuple(name.strip() for name in text.split(",") if name.strip())
            if not self.target_modules:  # "," or "": a typo, not a request for the default
                raise ValueError(
                    f"target_modules {text!r} names no layers; give layer names (e.g. query,value) or {ALL_LINEAR!r}."
                )
        if self.target_modules is not None:
            self.target_modules = tuple(self.target_modules) or None
        if self.method in LORA_METHODS:
            if not isinstance(self.rank, int) or self.rank <= 0:
                raise ValueError(f"LoRA rank must be a positive integer, got {self.rank!r}.")
            if not (math.isfinite(self.alpha) and self.alpha > 0):
                raise ValueError(f"LoRA alpha must be > 0 and finite, got {self.alpha!r}.")
            if not 0 <= self.lora_dropout < 1:
                raise ValueError(f"LoRA dropout must be in [0, 1), got {self.lora_dropout!r}.")
        if self.method in PROMPT_METHODS and (
            not isinstance(self.num_virtual_tokens, int) or self.num_virtual_tokens <= 0
        ):
            raise ValueError(f"num_virtual_tokens must be a positive integer, got {self.num_virtual_tokens!r}.")
        if self.method == "prefix" and self.prefix_projection < 0:
            raise ValueError(f"prefix_projection must be 0 (off) or a positive width, got {self.prefix_projection}.")
        if self.method == "ptuning" and self.encoder_hidden_size <= 0:
            raise ValueError(f"encoder_hidden_size must be positive, got {self.encoder_hidden_size}.")
        if self.bitfit_variant not in BITFIT_VARIANTS:
            raise ValueError(f"bitfit_variant must be one of {BITFIT_VARIANTS}, got {self.bitfit_variant!r}.")
        if self.pooling not in POOLING_CHOICES:
            raise ValueError(f"pooling must be one of {POOLING_CHOICES}, got {self.pooling!r}.")
        if self.method == "qlora":
            check_qlora_runtime()

    def to_dict(self) -> dict:
        """The method and only the knobs it uses (what the run record and run id hold)."""
        values = asdict(self)
        kept = {"method": self.method, "pooling": self.pooling}
        kept.update({knob: values[knob] for knob in _KNOBS[self.method]})
        if "target_modules" in kept:
            kept["target_modules"] = list(kept["target_modules"]) if kept["target_modules"] else None
        return kept

    def label(self) -> str:
        """Short human label, e.g. `lora r=8`, `bitfit (sparse)`, `prompt P=20`."""
        if self.method in LORA_METHODS:
            extra = f" r={self.rank}"
            if self.target_modules and self.target_modules != ("query", "value"):
                extra += f" [{','.join(self.target_modules)}]"
            return self.method + extra
        if self.method == "bitfit" and self.bitfit_variant == "sparse":
            return "bitfit (sparse)"
        if self.method in PROMPT_METHODS:
            return f"{self.method} P={self.num_virtual_tokens}"
        return self.method


def check_qlora_runtime() -> None:
    """QLoRA needs a CUDA GPU and bitsandbytes; fail early with what is missing."""
    import torch

    if not torch.cuda.is_available():
        raise ValueError(
            "Method 'qlora' quantises the base model to 4 bits with bitsandbytes, which needs a CUDA GPU; none is available here. Use 'lora' on CPU."
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ValueError(
            "Method 'qlora' needs bitsandbytes: pip install bitsandbytes (or pip install -e '.[qlora]')."
        ) from None


def quantization_config(config: MethodConfig):
    """The 4-bit BitsAndBytesConfig for qlora (NF4, double quantisation, bf16 compute); else None."""
    if config.method != "qlora":
        return None
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16,
    )


# ---------------------------------------------------------------------------------------------
# Which parameters train: one predicate over parameter names
# ---------------------------------------------------------------------------------------------


def head_prefixes(spec: ArchSpec) -> tuple[str, ...]:
    return tuple(f"{name}." for name in spec.head)


def trainable_predicate(config: MethodConfig, spec: ArchSpec) -> Callable[[str], bool]:
    """For methods built by freezing (full, head, bitfit, prefix): does parameter `name` train?"""
    in_head = lambda name: name.startswith(head_prefixes(spec))  # noqa: E731
    if config.method == "full":
        return lambda name: True
    if config.method == "head":
        return in_head
    if config.method == "bitfit":
        if config.bitfit_variant == "all":
            return lambda name: in_head(name) or name.endswith(".bias")
        sparse = re.compile(rf"\.layers?\.\d+\.({re.escape(spec.query)}|{re.escape(spec.intermediate)})\.bias$")
        return lambda name: in_head(name) or bool(sparse.search(name))
    if config.method == "prefix":
        return lambda name: in_head(name) or name.startswith("prefix_encoder.")
    raise ValueError(f"Method {config.method!r} is built with peft, not by a freezing predicate.")


def freeze(model: nn.Module, predicate: Callable[[str], bool]) -> nn.Module:
    """Set `requires_grad` of every parameter from the predicate (the one place that freezes)."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad = predicate(name)
    return model


# ---------------------------------------------------------------------------------------------
# Target modules
# ---------------------------------------------------------------------------------------------


def layer_regex(suffixes: list[str] | tuple[str, ...]) -> str:
    """A peft target regex matching `<...>.layer.<i>.<suffix>` exactly (not the head or pooler)."""
    return rf".*\.layers?\.\d+\.({'|'.join(re.escape(suffix) for suffix in suffixes)})"


def resolve_target_modules(model: nn.Module, config: MethodConfig) -> list[str]:
    """The in-layer module suffixes LoRA adapts: default query+value, all linear layers, or as given."""
    spec = arch_spec(model)
    available = linear_layer_names(model)
    if config.target_modules is None:
        return [spec.query, spec.value]
    if config.target_modules == (ALL_LINEAR,):
        return available
    resolved = []
    for name in config.target_modules:
        matches = [suffix for suffix in available if suffix == name or suffix.endswith("." + name)]
        if not matches:
            raise ValueError(
                f"Target module {name!r} is not a linear layer of this {model.config.model_type} model. "
                f"Its linear layers are: {', '.join(available)} (or use {ALL_LINEAR!r})."
            )
        resolved += [match for match in matches if match not in resolved]
    return resolved


# ---------------------------------------------------------------------------------------------
# Readying a model
# ---------------------------------------------------------------------------------------------


def prepare_model(model: nn.Module, config: MethodConfig, seed: int = 0) -> nn.Module:
    """Turn a loaded base model into the model to train, for any method; returns the model to train."""
    spec = arch_spec(model)
    head = list(spec.head)
    if config.method == "bitfit" and not any(
        name.endswith(".bias") and not name.startswith(head_prefixes(spec)) for name, _ in model.named_parameters()
    ):
        log.warning(
            "This %s model has no bias vectors outside its head: BitFit trains the head only (as method 'head').",
            model.config.model_type,
        )
    if config.method in ("full", "head", "bitfit"):
        return freeze(model, trainable_predicate(config, spec))
    if config.method == "prefix":
        from helpers.prefix import add_prefix

        add_prefix(model, config.num_virtual_tokens, spec.key, spec.value, config.prefix_projection or None, seed=seed)
        return freeze(model, trainable_predicate(config, spec))

    import peft

    if config.method in LORA_METHODS:
        if config.method == "qlora":
            model = peft.prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        targets = resolve_target_modules(model, config)
        peft_config = peft.LoraConfig(
            task_type=peft.TaskType.SEQ_CLS,
            r=config.rank,
            lora_alpha=config.alpha,
            lora_dropout=config.lora_dropout,
            target_modules=layer_regex(targets),
            use_dora=config.method == "dora",
            modules_to_save=head,
        )
    elif config.method == "ia3":
        peft_config = peft.IA3Config(
            task_type=peft.TaskType.SEQ_CLS,
            target_modules=layer_regex([spec.key, spec.value, spec.mlp_output]),
            feedforward_modules=layer_regex([spec.mlp_output]),
            modules_to_save=head,
        )
    else:  # prompt, ptuning
        shape = _transformer_shape(model)
        common = dict(
            task_type=peft.TaskType.SEQ_CLS, num_virtual_tokens=config.num_virtual_tokens, modules_to_save=head, **shape
        )
        if config.method == "prompt":
            peft_config = peft.PromptTuningConfig(**common)
        else:
            peft_config = peft.PromptEncoderConfig(encoder_hidden_size=config.encoder_hidden_size, **common)
    return peft.get_peft_model(model, peft_config)


def _transformer_shape(model: nn.Module) -> dict:
    """token_dim and friends for peft's prompt methods, which cannot read them from DistilBERT's config."""
    cfg = model.config
    hidden = getattr(cfg, "hidden_size", None) or cfg.dim
    heads = getattr(cfg, "num_attention_heads", None) or cfg.n_heads
    layers = getattr(cfg, "num_hidden_layers", None) or cfg.n_layers
    return {"token_dim": hidden, "num_transformer_submodules": 1, "num_attention_heads": heads, "num_layers": layers}


# ---------------------------------------------------------------------------------------------
# Counting
# ---------------------------------------------------------------------------------------------


@dataclass
class ParamCounts:
    trainable: int
    total: int
    percent: float = field(init=False)

    def __post_init__(self):
        self.percent = 100.0 * self.trainable / self.total if self.total else 0.0

    def to_dict(self) -> dict:
        return {"trainable": self.trainable, "total": self.total, "percent": round(self.percent, 6)}

    def __str__(self) -> str:
        return f"trainable params: {self.trainable:,} / total: {self.total:,} ({self.percent:.4f}%)"


def count_parameters(model: nn.Module) -> ParamCounts:
    """Trainable and total parameters; peft's frozen copy of the head (`original_module`) is not counted."""
    trainable = total = 0
    for name, parameter in model.named_parameters():
        if ".original_module." in name:
            continue
        count = _parameter_count(parameter)
        total += count
        if parameter.requires_grad:
            trainable += count
    return ParamCounts(trainable, total)


def _parameter_count(parameter: nn.Parameter) -> int:
    """Model parameters held by one tensor: numel, except for bitsandbytes 4-bit weights (QLoRA).

    A `Params4bit` packs two 4-bit values into each byte of its storage, so its numel counts half
    the weights (or fewer, with a wider quant_storage); peft's get_nb_trainable_parameters does the same.
    """
    if type(parameter).__name__ == "Params4bit":
        return parameter.numel() * 2 * parameter.element_size()
    return parameter.numel()


def trainable_parameter_names(model: nn.Module) -> list[str]:
    return [name for name, parameter in model.named_parameters() if parameter.requires_grad]


def lora_closed_form(
    architecture: dict, spec: ArchSpec, targets: list[str], config: MethodConfig, head_params: int
) -> int:
    """r·(d_in + d_out) per adapted layer (+ d_out for DoRA's magnitudes), times the layers, plus the head.

    Computed from the architecture (width d, MLP width, depth) and the target names, not from the
    wrapped model, so a mismatch with the counted parameters would reveal wrongly adapted layers.
    """
    d, ff = architecture["hidden_size"], architecture["intermediate_size"]
    kv = architecture.get("key_value_size", d)  # grouped-query attention: narrower keys and values
    shapes = {
        spec.query: (d, d),
        spec.key: (d, kv),
        spec.value: (d, kv),
        spec.attention_output: (d, d),
        spec.intermediate: (d, ff),
        spec.mlp_output: (ff, d),
    }
    if spec.gate is not None:
        shapes[spec.gate] = (d, ff)
    per_layer = 0
    for target in targets:
        if target not in shapes:
            raise ValueError(f"No closed form for target {target!r}; known: {sorted(shapes)}.")
        d_in, d_out = shapes[target]
        per_layer += config.rank * (d_in + d_out) + (d_out if config.method == "dora" else 0)
    return architecture["layers"] * per_layer + head_params


def head_parameter_count(model: nn.Module) -> int:
    """Parameters of the classification head (trainable copy for peft models)."""
    spec = arch_spec(model)
    count = 0
    for name, parameter in model.named_parameters():
        if ".original_module." in name:
            continue
        short = re.sub(r"^(base_model\.model\.)", "", name)
        if short.startswith(head_prefixes(spec)):
            count += parameter.numel()
    return count
