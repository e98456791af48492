"""The two-model comparison: one row per model and method, ICL runs by shots and scoring, one figure."""

from __future__ import annotations

from fake_records import fake_record

from helpers.analysis import runs_frame
from helpers.compare import model_comparison, plot_model_comparison


def _as_model(record: dict, model: str, samples_per_second: float) -> dict:
    record["config"]["model"] = model
    record["timing"]["train_samples_per_second"] = samples_per_second
    return record


def test_two_models_side_by_side(tmp_path):
    records = [
        _as_model(fake_record("sst2", "lora", seed, value), "all-MiniLM-L6-v2", 100.0)
        for seed, value in [(0, 0.8), (1, 0.9)]
    ]
    records += [_as_model(fake_record("sst2", "lora", 0, 0.7, trainable=5000), "smollm2", 10.0)]
    icl = _as_model(fake_record("sst2", "head", 0, 0.6), "smollm2", 0.0)
    icl["run_id"] = "sst2-icl-k4-loglik-s0-abc"
    icl["config"]["method"] = {"method": "icl", "shots": 4, "scoring": "loglik", "pooling": "model"}
    icl["config"]["lr"] = None
    icl["params"]["trainable"] = 0
    records.append(icl)
    records.append(_as_model(fake_record("mrpc", "lora", 0, 0.5), "smollm2", 1.0))  # another task: left out
    table = model_comparison(runs_frame(records), "SST-2")
    rows = {(r.model, r.variant): r for r in table.itertuples()}
    assert set(rows) == {("all-MiniLM-L6-v2", "lora"), ("smollm2", "lora"), ("smollm2", "icl k4-loglik")}
    minilm = rows[("all-MiniLM-L6-v2", "lora")]
    assert minilm.runs == 2 and abs(minilm.score - 0.85) < 1e-9 and minilm.score_std > 0
    assert rows[("smollm2", "icl k4-loglik")].trainable == 0
    plot_model_comparison(table, tmp_path, title="SST-2, LoRA")
    assert (tmp_path / "model_comparison.png").stat().st_size > 0
    assert model_comparison(runs_frame(records), "rte").empty
