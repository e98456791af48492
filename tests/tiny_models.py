"""Tiny RoBERTa and DistilBERT checkpoints with their tokenizers, written to a folder from configs
(no downloads): the notebooks load them by path like any Hub model."""

from __future__ import annotations

from pathlib import Path


def write_tiny_model(arch: str, folder: Path, texts: list[str]) -> Path:
    """A 2-layer, 32-wide `arch` ("roberta" or "distilbert") model and tokenizer saved in `folder`."""
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
    else:
        raise ValueError(arch)
    tokenizer.save_pretrained(str(folder))
    AutoModelForSequenceClassification.from_config(config).save_pretrained(str(folder))
    return folder
