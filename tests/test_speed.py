"""The fast CPU recipe keeps the model's maths: same outputs in eval mode, the same dropout in training."""

import pytest
import torch
from transformers import AutoModelForSequenceClassification, BertConfig

from helpers.methods import MethodConfig, prepare_model
from helpers.speed import FastDropout, fast_dropout, use_fast_attention, use_fast_dropout


def test_fast_dropout_keeps_the_right_fraction_and_expectation():
    torch.manual_seed(0)
    x = torch.ones(1000, 1000)
    y = fast_dropout(x, 0.1)
    kept = (y != 0).float().mean().item()
    assert kept == pytest.approx(0.9, abs=0.002)
    assert y.mean().item() == pytest.approx(1.0, abs=0.003), "inverted dropout preserves the expectation"
    values = torch.unique(y).tolist()
    assert values[0] == 0.0 and values[1] == pytest.approx(65536 / (65536 - 6554)) and len(values) == 2


def test_fast_dropout_gradient_uses_the_same_mask_and_eval_is_identity():
    torch.manual_seed(1)
    x = torch.randn(64, 33, requires_grad=True)  # odd size: not a multiple of four draws
    y = fast_dropout(x, 0.3)
    y.sum().backward()
    assert torch.equal(x.grad != 0, y != 0)
    layer = FastDropout(0.3).eval()
    assert torch.equal(layer(x), x)
    assert torch.equal(fast_dropout(x, 0.0), x)


def test_seeded_fast_dropout_is_reproducible():
    x = torch.ones(100, 100)
    torch.manual_seed(5)
    first = fast_dropout(x, 0.1)
    torch.manual_seed(5)
    assert torch.equal(fast_dropout(x, 0.1), first)


@pytest.mark.parametrize("method", ["full", "lora", "prefix"])
def test_fast_kernels_give_the_same_outputs_in_eval_mode(method):
    config = BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
    )
    torch.manual_seed(0)
    reference = prepare_model(
        AutoModelForSequenceClassification.from_config(config),
        MethodConfig(method=method, num_virtual_tokens=3),
        seed=0,
    ).eval()
    torch.manual_seed(0)
    fast = AutoModelForSequenceClassification.from_config(config)
    use_fast_attention(fast)
    fast = use_fast_dropout(prepare_model(fast, MethodConfig(method=method, num_virtual_tokens=3), seed=0)).eval()
    assert not any(type(m) is torch.nn.Dropout for m in fast.modules())
    input_ids = torch.tensor([[5, 6, 7, 8, 0, 0], [9, 10, 11, 12, 13, 14]])
    mask = (input_ids != 0).long()
    torch.testing.assert_close(
        fast(input_ids=input_ids, attention_mask=mask).logits,
        reference(input_ids=input_ids, attention_mask=mask).logits,
        atol=1e-5,
        rtol=1e-4,
    )
