import pytest
import torch

from helpers.data import load_glue
from helpers.models import load_tokenizer
from helpers.tokenization import make_collator, tokenize_splits


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


def test_pairs_get_both_segments_and_no_padding(glue_dir, tokenizer, tmp_path):
    splits = load_glue("rte", glue_dir=glue_dir)
    tokenized = tokenize_splits(splits, "rte", tokenizer, max_length=64, cache_dir=tmp_path)
    row = tokenized["train"][0]
    assert set(tokenized["train"].column_names) == {"input_ids", "attention_mask", "token_type_ids", "labels", "length"}
    assert row["input_ids"].count(tokenizer.sep_token_id) == 2
    assert 0 in row["token_type_ids"] and 1 in row["token_type_ids"]
    assert all(row["attention_mask"]) and row["length"] == len(row["input_ids"])
    assert row["labels"] == splits["train"][0]["label"]
    assert len({len(ids) for ids in tokenized["train"]["input_ids"]}) > 1, "no padding at tokenize time"


def test_truncation_to_max_length(glue_dir, tokenizer):
    splits = load_glue("mrpc", glue_dir=glue_dir)
    tokenized = tokenize_splits(splits, "mrpc", tokenizer, max_length=8, cache_dir=None)
    assert max(tokenized["train"]["length"]) == 8


def test_collator_pads_each_batch_to_its_longest(glue_dir, tokenizer):
    tokenized = tokenize_splits(load_glue("sst2", glue_dir=glue_dir), "sst2", tokenizer, max_length=128, cache_dir=None)
    rows = [{k: v for k, v in tokenized["train"][i].items() if k != "length"} for i in range(6)]
    batch = make_collator(tokenizer)(rows)
    longest = max(len(row["input_ids"]) for row in rows)
    assert batch["input_ids"].shape == (6, longest)
    assert batch["attention_mask"].sum().item() == sum(len(row["input_ids"]) for row in rows)
    assert batch["labels"].dtype == torch.long


def test_tokenized_splits_are_cached_on_disk(glue_dir, tokenizer, tmp_path):
    splits = load_glue("cola", glue_dir=glue_dir)
    first = tokenize_splits(splits, "cola", tokenizer, max_length=32, cache_dir=tmp_path)
    cached = list((tmp_path / "tokenized").iterdir())
    assert len(cached) == 1 and cached[0].name.startswith("cola-")
    again = tokenize_splits(splits, "cola", tokenizer, max_length=32, cache_dir=tmp_path)
    assert again["train"]["input_ids"] == first["train"]["input_ids"]
    assert again["train"].cache_files and str(tmp_path) in again["train"].cache_files[0]["filename"]
    tokenize_splits(splits, "cola", tokenizer, max_length=16, cache_dir=tmp_path)
    assert len(list((tmp_path / "tokenized").iterdir())) == 2, "another max_length is another cache entry"
