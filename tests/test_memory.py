import gc

import torch
from transformers import AutoModelForSequenceClassification, BertConfig

from helpers.memory import memory_breakdown
from helpers.methods import MethodConfig, prepare_model


def tiny(method):
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
    )
    return prepare_model(AutoModelForSequenceClassification.from_config(config), MethodConfig(method=method))


BATCH = {
    "input_ids": torch.randint(5, 100, (4, 16)),
    "attention_mask": torch.ones(4, 16, dtype=torch.long),
    "labels": torch.zeros(4, dtype=torch.long),
}


def test_breakdown_orders_the_methods_and_counts_optimizer_state():
    head, bitfit, full = (memory_breakdown(tiny(m), BATCH) for m in ("head", "bitfit", "full"))
    assert head["activations_bytes"] < bitfit["activations_bytes"] < full["activations_bytes"]
    assert (
        full["gradients_bytes"] == full["parameters_bytes"] and full["optimizer_bytes"] == 2 * full["parameters_bytes"]
    )
    assert head["gradients_bytes"] == (32 * 2 + 2) * 4
    assert bitfit["total_bytes"] == sum(
        bitfit[k] for k in ("parameters_bytes", "gradients_bytes", "optimizer_bytes", "activations_bytes")
    )


def test_the_probe_leaves_no_graph_behind():
    """Regression: a pack hook that returned the tensor itself leaked every probed graph."""
    model = tiny("lora")
    gc.collect()
    before = {id(o) for o in gc.get_objects() if torch.is_tensor(o)}
    memory_breakdown(model, BATCH)
    gc.collect()
    assert [o for o in gc.get_objects() if torch.is_tensor(o) and id(o) not in before] == []
