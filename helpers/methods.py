"""Fine-tuning methods: a registry with one row per method, one validated config (`MethodConfig`) and
one function (`prepare_model`).

Every method is one `MethodSpec` row in `REGISTRY` (at the end of the "Building" section, in display
order): its name, family, knobs, default learning rate, build function and what it trains in words.
Everything else derives from the rows: the knob checks and the knobs a run id holds, the CLI's
choices and help, sweep grids, the default rates, the report's wording and the display order. To add
a method, write its build function and register one row with `register_method`.

The classification head always trains and, for peft methods, is saved with the adapter
(`modules_to_save`): forgetting it is a classic pitfall that leaves a random head at inference.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace

from torch import nn

from helpers.models import POOLING_CHOICES, ArchSpec, arch_spec, describe_architecture, linear_layer_names

log = logging.getLogger(__name__)

# The PEFT survey families (Lialin et al. 2023; Han et al. 2024). Soft prompts, which that taxonomy
# counts as additive, get a family of their own: their virtual tokens are what sets them apart here.
FAMILIES = ("full", "selective", "additive", "reparameterised", "prompt")
ALL_LINEAR = "all-linear"
DEFAULT_TARGETS = ("query", "value")  # what LoRA adapts when target_modules is None (named per architecture)

# The signature of every build function: (base model, config, architecture names, seed) -> model ready to train.
BuildFunction = Callable[[nn.Module, "MethodConfig", ArchSpec, int], nn.Module]


@dataclass(frozen=True)
class MethodSpec:
    """One fine-tuning method: everything the package needs to know about it, in one row."""

    name: str
    family: str  # one of FAMILIES
    build: BuildFunction  # base model -> model ready to train (freezing goes through `freeze`)
    # What trains, in words: a template over the run's knobs, e.g. "rank-{rank} B·A on {targets}"
    # ({targets}: the target modules in words).
    trains: str
    default_lr: float  # peak learning rate when a run gives none
    knobs: tuple[str, ...] = ()  # MethodConfig fields it reads: only these are recorded and enter the run id
    label_rule: Callable[[dict], str] | None = None  # short label from the knob values; None: the display name
    # A knob whose other values read as methods of their own ("bitfit (sparse)": own row in tables, own
    # place in the display order): {value: what that variant trains}. The knob's default is the method itself.
    variant_knob: str | None = None
    variants: Mapping[str, str] = field(default_factory=dict)
    input_tokens: bool = False  # its virtual tokens are prepended to the input and take positions
    # Backward pass for the FLOPs count (helpers.flops): "inputs" (frozen weights), "weights" (weight
    # gradients too), "none" (nothing below the head trains).
    backward: str = "inputs"
    needs: str = ""  # what it needs beyond a CPU, in words; such methods stay out of the all-methods experiment
    check: Callable[[], None] | None = None  # raises ValueError when this machine lacks what `needs` says
    # The method it is on a base model loaded in 4 bits (QLoRA: "lora"; see quantization_config); reports
    # read one against the other. None: a full-precision base.
    quantizes: str | None = None

    def __post_init__(self):
        fields_ = {f.name for f in fields(MethodConfig)} - {"method", "pooling"}
        problems = [
            (self.family in FAMILIES, f"family must be one of {FAMILIES}, got {self.family!r}"),
            (set(self.knobs) <= fields_, f"knobs must be MethodConfig fields, got {sorted(set(self.knobs) - fields_)}"),
            (math.isfinite(self.default_lr) and self.default_lr > 0, f"default_lr must be > 0, got {self.default_lr}"),
            (self.variant_knob is None or self.variant_knob in self.knobs, "variant_knob must be one of its knobs"),
            (self.backward in ("inputs", "weights", "none"), f"backward {self.backward!r} is not known"),
        ]
        for ok, message in problems:
            if not ok:
                raise ValueError(f"Method {self.name!r}: {message}.")

    @property
    def quantized(self) -> bool:
        return self.quantizes is not None

    def values(self, knobs: Mapping | None = None) -> dict:
        """The method name and its knobs: those given (None and NaN read as missing), else their defaults."""
        given = {k: v for k, v in (knobs or {}).items() if k in self.knobs and not _missing(v)}
        values = {"method": self.name}
        for knob in self.knobs:
            value = given.get(knob, _FIELD_DEFAULTS[knob])
            if isinstance(value, float) and value.is_integer() and isinstance(_FIELD_DEFAULTS[knob], int):
                value = int(value)  # a whole number read back from a table (8.0) is the integer knob it was
            if knob == "target_modules" and value is not None:
                value = tuple(value.split(",")) if isinstance(value, str) else tuple(value)
            values[knob] = value
        return values

    def variant(self, knobs: Mapping | None = None) -> str | None:
        """The variant the knobs select ("sparse"), or None for the method itself."""
        if self.variant_knob is None:
            return None
        value = self.values(knobs)[self.variant_knob]
        return value if value in self.variants else None

    def display_name(self, knobs: Mapping | None = None) -> str:
        """The name tables and figures show: the method's name, or "bitfit (sparse)" for a variant."""
        variant = self.variant(knobs)
        return self.name if variant is None else f"{self.name} ({variant})"

    def display_names(self) -> list[str]:
        """The method and each of its variants, in display order."""
        return [self.name] + [f"{self.name} ({variant})" for variant in self.variants]

    def label(self, knobs: Mapping | None = None) -> str:
        """Short human label, e.g. `lora r=8`, `bitfit (sparse)`, `prompt P=20`."""
        return self.label_rule(self.values(knobs)) if self.label_rule else self.display_name(knobs)

    def what_trains(self, knobs: Mapping | None = None) -> str:
        """What trains, in words, with the run's knobs filled in."""
        values = self.values(knobs)
        targets = values.get("target_modules")
        in_words = "query and value" if targets in (None, DEFAULT_TARGETS) else ",".join(targets)
        template = self.variants.get(self.variant(knobs), self.trains)
        return template.format(**values, targets=in_words)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


# ---------------------------------------------------------------------------------------------
# The registry, and what derives from it
# ---------------------------------------------------------------------------------------------

# Method name -> its row, in display order (the order of tables, figures and --help). Filled by
# register_method at the end of the "Building" section.
REGISTRY: dict[str, MethodSpec] = {}


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add a method to the registry (after the ones already there); its name must be new."""
    if spec.name in REGISTRY:
        raise ValueError(f"Method {spec.name!r} is already registered.")
    REGISTRY[spec.name] = spec
    return spec


class RegistryTuple(Sequence):
    """A tuple computed from the registry on every use, so one imported name sees methods registered
    later (a module-level tuple would be frozen at import)."""

    def __init__(self, compute: Callable[[], tuple]):
        self._compute = compute

    def __getitem__(self, index):
        return self._compute()[index]

    def __len__(self) -> int:
        return len(self._compute())

    def __iter__(self) -> Iterator:
        return iter(self._compute())  # one computation per loop, not one per item

    def __contains__(self, item) -> bool:
        return item in self._compute()

    def __eq__(self, other) -> bool:
        return isinstance(other, (tuple, list, RegistryTuple)) and tuple(self) == tuple(other)

    __hash__ = None

    def __repr__(self) -> str:
        return repr(self._compute())


class RegistryMapping(Mapping):
    """A read-only dict computed from the registry on every use (see RegistryTuple)."""

    def __init__(self, compute: Callable[[], dict]):
        self._compute = compute

    def __getitem__(self, key):
        return self._compute()[key]

    def __iter__(self) -> Iterator:
        return iter(self._compute())

    def __len__(self) -> int:
        return len(self._compute())

    def items(self):
        return self._compute().items()  # one computation, not one per key

    def __repr__(self) -> str:
        return repr(self._compute())


def _names(keep: Callable[[MethodSpec], bool]) -> RegistryTuple:
    return RegistryTuple(lambda: tuple(name for name, spec in REGISTRY.items() if keep(spec)))


METHODS = _names(lambda spec: True)
# The reparameterised family is LoRA and its variants here: they share LoRA's knobs and closed form.
LORA_METHODS = _names(lambda spec: spec.family == "reparameterised")
PROMPT_METHODS = _names(lambda spec: spec.family == "prompt")
INPUT_TOKEN_METHODS = _names(lambda spec: spec.input_tokens)


def quantized_pairs() -> list[tuple[str, str]]:
    """(method on a 4-bit base, the same method on a full-precision base) for every quantised registry row."""
    return [(spec.name, spec.quantizes) for spec in REGISTRY.values() if spec.quantized]


def knob_owners() -> dict[str, tuple[str, ...]]:
    """Knob -> the methods that read it (the knob table inverted), knobs in MethodConfig field order."""
    return {
        knob: owners
        for knob in _FIELD_DEFAULTS
        if (owners := tuple(name for name, spec in REGISTRY.items() if knob in spec.knobs))
    }


def variant_values() -> dict[str, tuple]:
    """Variant knob -> its allowed values: the default (the method itself), then each variant's."""
    return {
        spec.variant_knob: (_FIELD_DEFAULTS[spec.variant_knob], *spec.variants)
        for spec in REGISTRY.values()
        if spec.variant_knob
    }


def display_order() -> list[str]:
    """Every method and variant as tables and figures order them: "bitfit (sparse)" right after "bitfit"."""
    return [name for spec in REGISTRY.values() for name in spec.display_names()]


def method_spec(method: str) -> MethodSpec | None:
    """The registry row of `method`, or None for records of other kinds (in-context learning: `icl`)."""
    return REGISTRY.get(method)


def display_name(method: Mapping) -> str:
    """The display name of a run's method dict (as its record holds it): "lora", "bitfit (sparse)"."""
    spec = method_spec(method["method"])
    return spec.display_name(method) if spec else method["method"]


def method_label(method: Mapping) -> str:
    """The short label of a run's method dict (as its record holds it): "lora r=8", "prompt P=20"."""
    spec = method_spec(method["method"])
    return spec.label(method) if spec else method["method"]


# ---------------------------------------------------------------------------------------------
# The config
# ---------------------------------------------------------------------------------------------

# Checks of knob values, applied when the run's method reads the knob: (is it valid, message).
_KNOB_CHECKS: dict[str, tuple[Callable[[object], bool], str]] = {
    "rank": (lambda v: isinstance(v, int) and v > 0, "LoRA rank must be a positive integer, got {!r}."),
    "alpha": (lambda v: math.isfinite(v) and v > 0, "LoRA alpha must be > 0 and finite, got {!r}."),
    "lora_dropout": (lambda v: 0 <= v < 1, "LoRA dropout must be in [0, 1), got {!r}."),
    "num_virtual_tokens": (
        lambda v: isinstance(v, int) and v > 0,
        "num_virtual_tokens must be a positive integer, got {!r}.",
    ),
    "prefix_projection": (lambda v: v >= 0, "prefix_projection must be 0 (off) or a positive width, got {}."),
    "encoder_hidden_size": (lambda v: v > 0, "encoder_hidden_size must be positive, got {}."),
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
        if self.method not in REGISTRY:
            raise ValueError(f"Unknown method {self.method!r}. Valid methods: {', '.join(METHODS)}.")
        self._normalise_target_modules()
        spec = REGISTRY[self.method]
        for knob in spec.knobs:
            if knob in _KNOB_CHECKS:
                valid, message = _KNOB_CHECKS[knob]
                if not valid(getattr(self, knob)):
                    raise ValueError(message.format(getattr(self, knob)))
        # Variant knobs (bitfit_variant) are checked whatever the method: a typo is a typo.
        for knob, allowed in variant_values().items():
            if getattr(self, knob) not in allowed:
                raise ValueError(f"{knob} must be one of {allowed}, got {getattr(self, knob)!r}.")
        if self.pooling not in POOLING_CHOICES:
            raise ValueError(f"pooling must be one of {POOLING_CHOICES}, got {self.pooling!r}.")

    def _normalise_target_modules(self) -> None:
        """ "query,value" -> ("query", "value"); an empty list -> None (the default)."""
        if isinstance(self.target_modules, str):
            text = self.target_modules
            self.target_modules = tuple(name.strip() for name in text.split(",") if name.strip())
            if not self.target_modules:  # "," or "": a typo, not a request for the default
                raise ValueError(
                    f"target_modules {text!r} names no layers; give layer names (e.g. query,value) or {ALL_LINEAR!r}."
                )
        if self.target_modules is not None:
            self.target_modules = tuple(self.target_modules) or None

    def to_dict(self) -> dict:
        """The method and only the knobs it uses (what the run record and run id hold)."""
        values = asdict(self)
        kept = {"method": self.method, "pooling": self.pooling}
        kept.update({knob: values[knob] for knob in REGISTRY[self.method].knobs})
        if "target_modules" in kept:
            kept["target_modules"] = list(kept["target_modules"]) if kept["target_modules"] else None
        return kept

    def label(self) -> str:
        """Short human label, e.g. `lora r=8`, `bitfit (sparse)`, `prompt P=20`."""
        return REGISTRY[self.method].label(self.to_dict())


# Each MethodConfig field's default (method and pooling aside): the knobs, in field order.
_FIELD_DEFAULTS = {f.name: f.default for f in fields(MethodConfig) if f.name not in ("method", "pooling")}


def check_runtime(config: MethodConfig) -> None:
    """Fail early, naming what is missing, when this machine cannot train the method (QLoRA: CUDA and
    bitsandbytes). Building the config never fails for this: its records stay readable anywhere."""
    check = REGISTRY[config.method].check
    if check is not None:
        check()


def check_qlora_runtime() -> None:
    """QLoRA needs a CUDA GPU and bitsandbytes; fail early with what is missing."""
    import torch

    if not torch.cuda.is_available():
        raise ValueError(
            "Method 'qlora' quantises the base model to 4 bits with bitsandbytes, which needs a CUDA GPU; none is "
            "available here. Use 'lora' on CPU."
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ValueError(
            "Method 'qlora' needs bitsandbytes: pip install bitsandbytes (or pip install -e '.[qlora]')."
        ) from None


def quantization_config(config: MethodConfig):
    """The 4-bit BitsAndBytesConfig of a quantised method (QLoRA: NF4, double quantisation, bf16 compute), or None."""
    if not REGISTRY[config.method].quantized:
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
    """Name prefixes of the classification head's parameters ("classifier.")."""
    return tuple(f"{name}." for name in spec.head)


def in_head(spec: ArchSpec) -> Callable[[str], bool]:
    """Predicate: is parameter `name` part of the classification head?"""
    prefixes = head_prefixes(spec)
    return lambda name: name.startswith(prefixes)


def bitfit_predicate(config: MethodConfig, spec: ArchSpec) -> Callable[[str], bool]:
    """BitFit's predicate: every bias (or, sparse, the query and first-MLP biases) and the head."""
    head = in_head(spec)
    if config.bitfit_variant == "all":
        return lambda name: head(name) or name.endswith(".bias")
    sparse = re.compile(rf"\.layers?\.\d+\.({re.escape(spec.query)}|{re.escape(spec.intermediate)})\.bias$")
    return lambda name: head(name) or bool(sparse.search(name))


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
# Building: one function per method (or family), then the registry rows
# ---------------------------------------------------------------------------------------------


def build_full(model: nn.Module, config: MethodConfig, spec: ArchSpec, seed: int) -> nn.Module:
    """Full fine-tuning: every parameter trains."""
    return freeze(model, lambda name: True)


def build_head(model: nn.Module, config: MethodConfig, spec: ArchSpec, seed: int) -> nn.Module:
    """Head only: the encoder is frozen, a linear probe (plus the head's own layers) trains."""
    return freeze(model, in_head(spec))


def build_bitfit(model: nn.Module, config: MethodConfig, spec: ArchSpec, seed: int) -> nn.Module:
    """BitFit (Ben Zaken et al., 2022): the bias vectors and the head train."""
    head = in_head(spec)
    if not any(name.endswith(".bias") and not head(name) for name, _ in model.named_parameters()):
        log.warning(
            "This %s model has no bias vectors outside its head: BitFit trains the head only (as method 'head').",
            model.config.model_type,
        )
    return freeze(model, bitfit_predicate(config, spec))


def build_prefix(model: nn.Module, config: MethodConfig, spec: ArchSpec, seed: int) -> nn.Module:
    """Prefix tuning (helpers.prefix): key/value prefixes in every layer and the head train."""
    from helpers.prefix import add_prefix

    add_prefix(model, config.num_virtual_tokens, spec.key, spec.value, config.prefix_projection or None, seed=seed)
    head = in_head(spec)
    return freeze(model, lambda name: head(name) or name.startswith("prefix_encoder."))


def build_lora(model: nn.Module, config: MethodConfig, spec: ArchSpec, seed: int) -> nn.Module:
    """LoRA, DoRA (use_dora) and QLoRA (on a 4-bit base model) with peft; the head trains too."""
    import peft

    if REGISTRY[config.method].quantized:
        model = peft.prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    peft_config = peft.LoraConfig(
        task_type=peft.TaskType.SEQ_CLS,
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=config.lora_dropout,
        target_modules=layer_regex(resolve_target_modules(model, config)),
        use_dora=config.method == "dora",
        modules_to_save=list(spec.head),
    )
    return peft.get_peft_model(model, peft_config)


def build_ia3(model: nn.Module, config: MethodConfig, spec: ArchSpec, seed: int) -> nn.Module:
    """(IA)³ with peft: rescaling vectors on keys, values and the MLP's inner activations; the head trains too."""
    import peft

    peft_config = peft.IA3Config(
        task_type=peft.TaskType.SEQ_CLS,
        target_modules=layer_regex([spec.key, spec.value, spec.mlp_output]),
        feedforward_modules=layer_regex([spec.mlp_output]),
        modules_to_save=list(spec.head),
    )
    return peft.get_peft_model(model, peft_config)


def build_prompt(model: nn.Module, config: MethodConfig, spec: ArchSpec, seed: int) -> nn.Module:
    """Prompt tuning, or P-tuning (`ptuning`: the prompt comes from a small encoder), with peft."""
    import peft

    common = dict(
        task_type=peft.TaskType.SEQ_CLS,
        num_virtual_tokens=config.num_virtual_tokens,
        modules_to_save=list(spec.head),
        **_transformer_shape(model),
    )
    if config.method == "ptuning":
        peft_config = peft.PromptEncoderConfig(encoder_hidden_size=config.encoder_hidden_size, **common)
    else:
        peft_config = peft.PromptTuningConfig(**common)
    return peft.get_peft_model(model, peft_config)


def _transformer_shape(model: nn.Module) -> dict:
    """token_dim and friends for peft's prompt methods, which cannot read them from DistilBERT's config."""
    cfg = model.config
    hidden = getattr(cfg, "hidden_size", None) or cfg.dim
    heads = getattr(cfg, "num_attention_heads", None) or cfg.n_heads
    layers = getattr(cfg, "num_hidden_layers", None) or cfg.n_layers
    return {"token_dim": hidden, "num_transformer_submodules": 1, "num_attention_heads": heads, "num_layers": layers}


def _lora_label(values: dict) -> str:
    targets = values["target_modules"]
    shown = f" [{','.join(targets)}]" if targets and tuple(targets) != DEFAULT_TARGETS else ""
    return f"{values['method']} r={values['rank']}{shown}"


def _prompt_label(values: dict) -> str:
    return f"{values['method']} P={values['num_virtual_tokens']}"


_LORA_KNOBS = ("rank", "alpha", "lora_dropout", "target_modules")
_LORA_WORDS = "rank-{rank} B·A (α={alpha:g}) on {targets}"

# The registry: one row per method, in display order. default_lr: from short sweeps on SST-2 and MRPC
# with the packaged MiniLM (notebook 05 sweeps them properly): PEFT methods train few parameters from a
# good starting point and want much larger steps than full fine-tuning.
# fmt: off
register_method(MethodSpec(
    name="head", family="selective", build=build_head, default_lr=5e-3, backward="none",
    trains="the classifier only",
))
register_method(MethodSpec(
    name="bitfit", family="selective", build=build_bitfit, default_lr=3e-3, knobs=("bitfit_variant",),
    trains="every bias vector (+ classifier)",
    variant_knob="bitfit_variant", variants={"sparse": "query and first-MLP biases only (+ classifier)"},
))
register_method(MethodSpec(
    name="lora", family="reparameterised", build=build_lora, default_lr=3e-3, knobs=_LORA_KNOBS,
    trains=_LORA_WORDS + " (+ classifier)", label_rule=_lora_label,
))
register_method(MethodSpec(
    name="dora", family="reparameterised", build=build_lora, default_lr=3e-3, knobs=_LORA_KNOBS,
    trains=_LORA_WORDS + " + a magnitude per output column (+ classifier)", label_rule=_lora_label,
))
register_method(MethodSpec(
    name="ia3", family="additive", build=build_ia3, default_lr=1e-2,
    trains="scaling vectors on keys, values and the MLP (+ classifier)",
))
register_method(MethodSpec(
    name="prefix", family="prompt", build=build_prefix, default_lr=1e-2,
    knobs=("num_virtual_tokens", "prefix_projection"),
    trains="{num_virtual_tokens} key/value prefix vectors in every layer (+ classifier)", label_rule=_prompt_label,
))
register_method(MethodSpec(
    name="prompt", family="prompt", build=build_prompt, default_lr=3e-2, knobs=("num_virtual_tokens",),
    trains="{num_virtual_tokens} virtual input embeddings; the head reads the first virtual token's final state, "
    "not [CLS] (+ classifier)",
    label_rule=_prompt_label, input_tokens=True,
))
register_method(MethodSpec(
    name="ptuning", family="prompt", build=build_prompt, default_lr=1e-2,
    knobs=("num_virtual_tokens", "encoder_hidden_size"),
    trains="{num_virtual_tokens} virtual input tokens produced by an MLP prompt encoder; the head reads the first "
    "virtual token, not [CLS] (+ classifier)",
    label_rule=_prompt_label, input_tokens=True,
))
register_method(MethodSpec(
    name="full", family="full", build=build_full, default_lr=5e-5, backward="weights",
    trains="every weight",
))
register_method(MethodSpec(
    name="qlora", family="reparameterised", build=build_lora, default_lr=3e-3, knobs=_LORA_KNOBS,
    trains=_LORA_WORDS + " over a 4-bit base (+ classifier)", label_rule=_lora_label,
    needs="CUDA + bitsandbytes", check=check_qlora_runtime, quantizes="lora",
))
# fmt: on


def prepare_model(model: nn.Module, config: MethodConfig, seed: int = 0) -> nn.Module:
    """Turn a loaded base model into the model to train, for any method; returns the model to train."""
    return REGISTRY[config.method].build(model, config, arch_spec(model), seed)


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


def lora_rank_formula(model: nn.Module, config: MethodConfig) -> tuple[int, int]:
    """(per_rank, constant): LoRA's closed-form trainable count on `model` is per_rank·r + constant
    for `config`'s target modules (lora_closed_form at two ranks; the constant is the head, plus
    DoRA's magnitude vectors)."""
    targets = resolve_target_modules(model, config)
    architecture, spec, head = describe_architecture(model), arch_spec(model), head_parameter_count(model)
    one, two = (lora_closed_form(architecture, spec, targets, replace(config, rank=r), head) for r in (1, 2))
    return two - one, 2 * one - two


def trainable_by_kind(model: nn.Module):
    """The trainable tensors grouped by where they sit, layer numbers folded (`layer.N.`: the same
    bias in every layer is one kind): tensors and parameters per kind, as a table."""
    import pandas as pd

    rows = [
        {"kind": re.sub(r"^.*\.layers?\.\d+\.", "layer.N.", name), "parameters": parameter.numel()}
        for name, parameter in model.named_parameters()
        if parameter.requires_grad
    ]
    return (
        pd.DataFrame(rows)
        .groupby("kind", sort=False)
        .agg(tensors=("parameters", "size"), parameters=("parameters", "sum"))
    )


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
