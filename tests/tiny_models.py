"""Tiny RoBERTa, DistilBERT and Llama checkpoints with their tokenizers, built from configs (no
downloads): the notebooks load them by path like any Hub model, the LLM tests use the Llama parts."""

from __future__ import annotations

from pathlib import Path

from glue_fixtures import NEGATIVE, NOUNS, POSITIVE
from transformers import LlamaConfig

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
WORDS = (
    [
        "the",
        "was",
        ".",
        "sentence",
        ":",
        "answer",
        "with",
        "one",
        "word",
        "negative",
        "or",
        "positive",
        "yes",
        "no",
        "not",
        "is",
        "sentiment",
        "of",
        "this",
        "movie",
        "review",
        "?",
        "system",
        "user",
        "assistant",
        "sentence1",
        "1",
        "2",
        "does",
        "first",
        "imply",
        "second",
        "it",
        "entailment",
    ]
    + POSITIVE
    + NEGATIVE
    + NOUNS
)


def tiny_tokenizer(chat: bool = True):
    """A word-level tokenizer over the fixtures' words, with chat tokens and (optionally) a chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>", "\n"]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(specials + WORDS))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(r"(<\|im_start\|>|<\|im_end\|>|\n|\s+|[.:?])", behavior="isolated")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        pad_token="<pad>",
        eos_token="<|im_end|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    if chat:
        tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def tiny_llama_config(vocab_size: int, **extra) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=0,
        **extra,
    )


def write_tiny_model(arch: str, folder: Path, texts: list[str]) -> Path:
    """A 2-layer, 32-wide `arch` ("roberta", "distilbert" or "llama": a causal LM with a chat template,
    over the fixtures' words) model and tokenizer saved in `folder`."""
    from transformers import AutoModelForSequenceClassification, DistilBertConfig, RobertaConfig

    folder.mkdir(parents=True, exist_ok=True)
    if arch == "roberta":
        from tokenizers import ByteLevelBPETokenizer
        from transformers import RobertaTokenizer

        bpe = ByteLevelBPETokenizer()
        bpe.train_from_iterator(
            texts, vocab_size=400, min_frequency=1, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        )
        bpe.save_model(str(folder))
        tokenizer = RobertaTokenizer(vocab_file=str(folder / "vocab.json"), merges_file=str(folder / "merges.txt"))
        config = RobertaConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=520,
            pad_token_id=tokenizer.pad_token_id,
            type_vocab_size=1,
        )
    elif arch == "distilbert":
        from transformers import DistilBertTokenizer

        from helpers.models import resolve_model_path

        tokenizer = DistilBertTokenizer(
            vocab_file=str(Path(resolve_model_path(None)) / "vocab.txt")
        )  # MiniLM's WordPiece vocabulary
        config = DistilBertConfig(vocab_size=len(tokenizer), dim=32, n_layers=2, n_heads=2, hidden_dim=64)
    elif arch == "llama":
        from transformers import LlamaForCausalLM

        tokenizer = tiny_tokenizer()
        tokenizer.save_pretrained(str(folder))
        LlamaForCausalLM(tiny_llama_config(len(tokenizer))).save_pretrained(str(folder))
        return folder
    else:
        raise ValueError(arch)
    tokenizer.save_pretrained(str(folder))
    AutoModelForSequenceClassification.from_config(config).save_pretrained(str(folder))
    return folder
