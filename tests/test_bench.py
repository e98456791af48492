"""The bench runs both recipes on a tiny model and reports everything it promises (no timing asserts)."""

import json

import pytest
from transformers import AutoModelForSequenceClassification, BertConfig

from helpers.bench import (
    STEP_VARIANTS,
    grid_markdown_table,
    markdown_table,
    parse_layouts,
    run_bench,
    run_grid_bench,
    run_step_ablation,
)
from helpers.device import cpu_has_bf16
from helpers.models import load_tokenizer


def test_bench_runs_on_a_tiny_model_and_reports_both_recipes(glue_dir, tmp_path):
    model_dir = tmp_path / "tiny-bert"
    tokenizer = load_tokenizer()
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
    )
    AutoModelForSequenceClassification.from_config(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)

    result = run_bench(
        samples={"sst2": 60, "rte": 40},
        methods=("bitfit", "lora"),
        seeds=(0,),
        epochs=1,
        batch_size=16,
        max_length=32,
        validation_samples=8,
        model=str(model_dir),
        glue_dir=glue_dir,
        out_dir=tmp_path / "bench",
        progress=False,
    )
    assert {(r["task"], r["method"], r["recipe"]) for r in result["rows"]} == {
        (t, m, r) for t in ("sst2", "rte") for m in ("bitfit", "lora") for r in ("baseline", "fast")
    }
    for row in result["rows"]:
        assert row["samples_per_second"] > 0 and row["tokens_per_second"] > 0 and row["peak_rss_bytes"] > 0
        assert 0 <= row["padding_fraction"] < 1 and row["dev_metric"] == "accuracy"
        assert row["precision"] == ("fp32" if row["recipe"] == "baseline" else result["settings"]["project_precision"])
    baseline_rows = [r for r in result["rows"] if r["recipe"] == "baseline"]
    assert all(r["padding_fraction"] > 0 for r in baseline_rows), "the baseline pads every example to max_length"
    peaks = result["matmul_gflops"]
    assert peaks["fp32"] > 0
    # bf16 is measured only where the hardware has it (emulated bf16 takes minutes and is never used),
    # and then it is the rate the project's runs are compared with.
    if peaks["bf16"] is None:
        assert "bf16 not in hardware" in (tmp_path / "bench" / "bench.md").read_text()
        assert all(r["precision"] == "fp32" for r in result["rows"])
    else:
        assert peaks["bf16"] > 0
    assert len(result["summary"]) == 4 and all(
        "speedup" in entry and "dev_difference" in entry for entry in result["summary"]
    )
    saved = json.loads((tmp_path / "bench" / "bench.json").read_text())
    assert saved["summary"] == result["summary"]
    table = (tmp_path / "bench" / "bench.md").read_text()
    assert table == markdown_table(result) and table.count("\n| sst2 |") + table.count("\n| rte |") == 4

    ablation = run_step_ablation(methods=("lora",), out_dir=tmp_path / "bench", model=str(model_dir))
    expected = [name for name, (bf16, _, _) in STEP_VARIANTS.items() if cpu_has_bf16() or not bf16]
    assert [row["variant"] for row in ablation["rows"]] == expected
    assert all(row["ms_per_step"] > 0 for row in ablation["rows"])
    assert (tmp_path / "bench" / "step_ablation.md").read_text().count("| lora |") == len(expected)


def test_grid_bench_sweeps_the_grid_in_each_layout_and_reports_the_ratio(glue_dir, tmp_path):
    model_dir = tmp_path / "tiny-bert"
    tokenizer = load_tokenizer()
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
    )
    AutoModelForSequenceClassification.from_config(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)

    result = run_grid_bench(
        samples={"sst2": 40, "mrpc": 40},
        methods=("bitfit",),
        seeds=(0,),
        layouts=((1, 1), (2, 1)),
        epochs=1,
        batch_size=16,
        max_length=32,
        validation_samples=8,
        model=str(model_dir),
        glue_dir=glue_dir,
        out_dir=tmp_path / "grid",
        progress=False,
    )
    assert [(r["workers"], r["threads"]) for r in result["rows"]] == [(1, 1), (2, 1)]
    for row in result["rows"]:
        assert (
            row["runs"] == 2
            and row["wall_seconds"] > 0
            and row["runs_per_hour"] == pytest.approx(2 * 3600 / row["wall_seconds"], rel=0.01)
        )
        assert len(list((tmp_path / "grid" / "runs" / f"{row['workers']}x{row['threads']}-0").glob("*.json"))) == 2
    first, second = result["summary"]
    assert first["ratio"] == 1.0 and second["ratio"] == pytest.approx(second["runs_per_hour"] / first["runs_per_hour"])
    table = (tmp_path / "grid" / "grid.md").read_text()
    assert table == grid_markdown_table(result) and "| 2 × 1 |" in table
    assert json.loads((tmp_path / "grid" / "grid.json").read_text())["summary"] == result["summary"]
    assert parse_layouts("1x2, 2x1") == ((1, 2), (2, 1))
    with pytest.raises(ValueError, match="workers x threads"):
        parse_layouts("2")
