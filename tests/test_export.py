"""Export: a saved run becomes a plain transformers folder whose logits are the unmerged model's."""

from __future__ import annotations

import json

import pytest
import torch

TEXTS = ["the film was great .", "the plot was dreadful .", "the cast was fine but the song was poor ."]
# (method, what the export changes in the base model's weights besides the head)
METHODS = [
    ("lora", "query and value weights"),
    ("dora", "query and value weights"),
    ("ia3", "key, value and MLP-output weights"),
    ("bitfit", "biases only"),
]
CHANGED = {
    "lora": lambda name: name.endswith(("q_lin.weight", "v_lin.weight")),
    "dora": lambda name: name.endswith(("q_lin.weight", "v_lin.weight")),
    "ia3": lambda name: name.endswith(("k_lin.weight", "v_lin.weight", "lin2.weight")),
    "bitfit": lambda name: name.endswith(".bias"),
}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from tiny_models import write_tiny_model

    return write_tiny_model("distilbert", tmp_path_factory.mktemp("tiny") / "distilbert", TEXTS)


def _train(method: str, tiny_model, glue_dir, results) -> dict:
    from helpers.methods import MethodConfig
    from helpers.training import TrainConfig, train

    config = TrainConfig(
        task="sst2",
        model=str(tiny_model),
        method=MethodConfig(method=method),
        epochs=1,
        max_train_samples=32,
        max_validation_samples=8,
        batch_size=8,
        precision="fp32",
    )
    return train(
        config, glue_dir=glue_dir, results_dir=results, cache_dir=results / "cache", quiet=True, save_adapter=True
    )


def _logits(model, tokenizer) -> torch.Tensor:
    with torch.inference_mode():
        return model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits


@pytest.mark.slow
@pytest.mark.parametrize("method, changes", METHODS, ids=[m for m, _ in METHODS])
def test_an_exported_run_loads_without_peft_and_gives_the_unmerged_logits(
    method, changes, tiny_model, glue_dir, tmp_path, capsys
):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from helpers.cli import main
    from helpers.predict import load_trained_model

    record = _train(method, tiny_model, glue_dir, tmp_path / "results")
    unmerged, tokenizer, _, _ = load_trained_model(tmp_path / "results" / f"{record['run_id']}.json")
    expected = _logits(unmerged, tokenizer)

    out = tmp_path / "exported"
    assert main(["export", record["run_id"], "--out", str(out), "--results-dir", str(tmp_path / "results")]) == 0
    assert "from_pretrained" in capsys.readouterr().out
    assert not (out / "adapter_config.json").exists()
    exported, loading = AutoModelForSequenceClassification.from_pretrained(out, output_loading_info=True)
    assert not any(loading.values()), f"every weight is a plain model's: {loading}"
    assert exported.config.id2label == {0: "negative", 1: "positive"}
    torch.testing.assert_close(_logits(exported.eval(), AutoTokenizer.from_pretrained(out)), expected)

    # The merge did something: the base's weights changed exactly where the method trains (and the head).
    base = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=2).state_dict()
    head = ("pre_classifier.", "classifier.")
    changed = {name for name, value in exported.state_dict().items() if not torch.equal(value, base[name])}
    assert {name for name in changed if not name.startswith(head)} == {
        name for name in base if not name.startswith(head) and CHANGED[method](name)
    }, changes
    assert json.loads((out / "exported_from.json").read_text())["run_id"] == record["run_id"]


@pytest.mark.slow
def test_export_refuses_what_a_plain_folder_cannot_hold(tiny_model, glue_dir, tmp_path, capsys):
    from helpers.cli import main

    results = tmp_path / "results"
    record = _train("prompt", tiny_model, glue_dir, results)
    path = str(results / f"{record['run_id']}.json")
    assert main(["export", path, "--out", str(tmp_path / "out")]) == 2
    assert "virtual tokens" in capsys.readouterr().err
    assert (
        main(["export", "sst2-lora-r8-s0-0000000000", "--out", str(tmp_path / "out"), "--results-dir", str(results)])
        == 2
    )
    assert "No run record" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    assert main(["export", path, "--out", str(tmp_path / "full")]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert (tmp_path / "full" / "notes.txt").read_text() == "mine"
