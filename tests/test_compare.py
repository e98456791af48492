"""The two-model comparison: one row per model and method, ICL runs by shots and scoring, one figure."""

from __future__ import annotations

from fake_records import fake_record

from helpers.analysis import runs_frame
from helpers.compare import model_comparison
from helpers.plots import model_comparison as plot_model_comparison


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


def _icl_record(task: str, shots: int, seed: int, value: float, majority: float) -> dict:
    """An in-context learning run's record (method icl: nothing trained, no training speed)."""
    record = _as_model(fake_record(task, "head", seed, value, majority=majority), "smollm2", 0.0)
    record["run_id"] = f"{task}-icl-k{shots}-loglik-s{seed}-{shots}{seed}"
    record["config"].update(shots=shots, scoring="loglik", lr=None)
    record["config"]["method"] = {"method": "icl", "shots": shots, "scoring": "loglik", "pooling": "model"}
    record["params"]["trainable"] = 0
    record["icl"] = {"splits": {"test": {"predicted": {"negative": 20, "positive": 4}}}}
    return record


def test_report_section_puts_the_llm_beside_minilm(tmp_path):
    from test_analysis import _write

    from helpers.report import write_report

    main = [fake_record("sst2", method, seed, 0.8 + 0.01 * seed) for method in ("lora", "bitfit") for seed in range(3)]
    llm = [_icl_record("sst2", 0, 0, 0.55, majority=0.5)]
    llm += [_icl_record("sst2", 1, seed, value, majority=0.5) for seed, value in enumerate((0.60, 0.62, 0.61))]
    for seed in range(3):
        llm.append(_as_model(fake_record("sst2", "lora", seed, 0.90 + 0.002 * seed, majority=0.5), "smollm2", 5.0))
        llm[-1]["run_id"] += "-llm"  # the model is in the real run id
        llm.append(
            _as_model(fake_record("sst2", "lora", seed, 0.85 + 0.002 * seed, majority=0.5), "all-MiniLM-L6-v2", 90.0)
        )
    _write(main, tmp_path / "results")
    _write(llm, tmp_path / "llm")
    text = write_report(
        tmp_path / "results",
        tmp_path / "figures",
        tmp_path / "report.md",
        "smoke",
        bench_path=tmp_path / "none.json",
        llm_dir=tmp_path / "llm",
    )
    section = text[text.index("## 8. A small LLM beside MiniLM") :]
    assert (
        "On SST-2, ICL beats always predicting the majority class (its 95% interval lies above it) with k=1 loglik"
        in section
    )
    assert "the most predicted label takes 83%–83% of its answers" in section
    assert "| SST-2 | 1 | loglik | 3 | 0.610 ± 0.010 |" in section
    assert "On SST-2, smollm2 + lora beats all-MiniLM-L6-v2 + lora by 0.050" in section
    assert (tmp_path / "figures" / "model_comparison_sst2.png").stat().st_size > 0
    without = write_report(
        tmp_path / "results", tmp_path / "figures", tmp_path / "report2.md", "smoke", bench_path=tmp_path / "none.json"
    )
    assert "## 8." not in without


def _on(record: dict, device: str, precision: str) -> dict:
    record["versions"]["device"] = device
    record["config"]["precision_used"] = precision
    return record


def test_hardware_labels_name_cpu_and_gpu_runs_as_tables_show_them():
    from helpers.compare import hardware_label

    assert hardware_label("AMD EPYC 7B13 (2 threads)", "fp32") == "CPU fp32"
    assert hardware_label("AMD EPYC (2 threads, AVX-512 bf16)", "fp32") == "CPU fp32"  # the vector units, named since
    assert hardware_label("NVIDIA H200", "bf16") == "H200 bf16"
    assert hardware_label("Tesla T4", "fp16") == "Tesla T4 fp16"
    assert hardware_label("Intel Xeon (2 threads)", "float32") == "CPU fp32"  # torch's name, as ICL records hold
    assert hardware_label(None, None) == "CPU"


def test_qlora_and_runs_on_other_hardware_are_rows_and_verdicts_of_their_own():
    """A GPU's LoRA run is not a fourth seed of the CPU's; QLoRA is read against LoRA, naming both sides' hardware."""
    from helpers.compare import model_verdicts, quantization_costs, quantization_verdicts

    cpu, gpu = "AMD EPYC (2 threads)", "NVIDIA H200"
    records = [
        _on(_as_model(fake_record("sst2", "lora", s, 0.80 + 0.01 * s), "smollm2", 4.0), cpu, "fp32") for s in range(3)
    ]
    records += [_on(_as_model(fake_record("sst2", "lora", 0, 0.60), "smollm2", 200.0), gpu, "bf16")]
    records += [
        _on(_as_model(fake_record("sst2", "qlora", s, 0.81 + 0.01 * s), "smollm2", 100.0), gpu, "bf16")
        for s in range(3)
    ]
    records[-1]["memory"]["peak_bytes"] = records[-2]["memory"]["peak_bytes"] = records[-3]["memory"]["peak_bytes"] = (
        2**30
    )
    records[3]["memory"]["peak_bytes"] = 2**31
    frame = runs_frame(records)
    table = model_comparison(frame, "sst2")
    rows = {(r.method, r.on): r.runs for r in table.itertuples()}
    assert rows == {("lora", "CPU fp32"): 3, ("lora", "H200 bf16"): 1, ("qlora", "H200 bf16"): 3}
    [verdict] = quantization_verdicts(frame, "sst2")
    assert "smollm2 + qlora (H200 bf16)" in verdict and "smollm2 + lora (CPU fp32)" in verdict
    assert "3/3 seeds" in verdict  # the CPU's three LoRA seeds, not the GPU's one
    [cost] = quantization_costs(table)
    assert "On the same H200 bf16, smollm2 with qlora peaks at 1,024 MiB against 2,048 MiB with lora (0.50×)" in cost
    assert "trains 100 against 200 samples/s (0.50×)" in cost
    assert model_verdicts(frame, "sst2") == []  # one model: nothing to compare between models


def test_icl_draws_on_a_dev_subset_never_average_with_the_whole_dev_sets():
    from helpers.compare import icl_display, icl_table

    records = [_icl_record("sst2", 1, seed, value, majority=0.5) for seed, value in enumerate((0.60, 0.62, 0.61))]
    subset = _icl_record("sst2", 1, 0, 0.90, majority=0.5)
    subset["data"]["sizes"]["test"] = 200
    table = icl_table([*records, subset]).set_index("examples")
    whole = records[0]["data"]["sizes"]["test"]
    assert sorted(table.index) == sorted([whole, 200])
    assert table.loc[whole, "draws"] == 3 and abs(table.loc[whole, "score"] - 0.61) < 1e-9
    assert table.loc[200, "draws"] == 1 and table.loc[200, "score"] == 0.90
    assert icl_display(icl_table(records))["majority"].tolist() == ["0.500"]  # three decimals, as the scores


def test_a_cpus_name_carries_its_vector_units_which_set_its_speed():
    from helpers.device import cpu_vector_units

    assert cpu_vector_units({"avx2", "avx512f", "avx512_bf16"}) == "AVX-512 bf16"
    assert cpu_vector_units({"avx2", "avx512f"}) == "AVX-512"
    assert cpu_vector_units({"sse4_2", "avx2"}) == "AVX2"
    assert cpu_vector_units(set()) == ""  # not x86, or no /proc/cpuinfo


def test_the_report_says_why_generate_and_loglik_rows_repeat_each_other():
    import pandas as pd

    from helpers.report.llm import _scorings_agree

    rows = [
        {"task": "SST-2", "shots": k, "scoring": scoring, "score": score, "unparseable": unparseable}
        for k, scoring, score, unparseable in [
            (0, "generate", 0.47, 0.03),
            (0, "loglik", 0.49, None),
            (1, "generate", 0.53, 0.0),
            (1, "loglik", 0.53, None),
        ]
    ]
    assert "the free answer always names a label" in _scorings_agree(pd.DataFrame(rows))
    rows[3]["score"] = 0.55  # they differ with a demonstration: nothing to explain
    assert _scorings_agree(pd.DataFrame(rows)) == ""


def test_the_report_gives_two_scorings_with_the_same_scores_one_row():
    import pandas as pd

    from helpers.report.llm import _one_row_where_equal

    same = {"score": "0.5", "95% interval": "–", "majority": "0.5", "examples": 10, "most predicted label": "60%"}
    shown = pd.DataFrame(
        [
            {"task": "SST-2", "shots": 0, "scoring": "generate", **same, "score": "0.4"},
            {"task": "SST-2", "shots": 0, "scoring": "loglik", **same},
            {"task": "SST-2", "shots": 4, "scoring": "generate", **same},
            {"task": "SST-2", "shots": 4, "scoring": "loglik", **same},
        ]
    )
    merged = _one_row_where_equal(shown)
    assert list(merged["scoring"]) == ["generate", "loglik", "generate = loglik"]  # k = 0 differs: kept apart
