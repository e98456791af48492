"""The largest batch that fits: the doubling search backs off at out-of-memory errors and memory limits,
the answer obeys the limit, and bad limits are clear errors."""

from __future__ import annotations

import json

import pytest
import torch

from helpers import max_batch
from helpers.cli import main
from helpers.max_batch import GIB, Trial, find_max_batch, limit_bytes, search

STATIC, PER_EXAMPLE = 1000, 100  # a fake model: bytes held whatever the batch, and per example


def fake_measure(out_of_memory_at: int | None = None, limit: int | None = None):
    tried = []

    def measure(size: int) -> Trial:
        tried.append(size)
        if out_of_memory_at is not None and size >= out_of_memory_at:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        peak = STATIC + PER_EXAMPLE * size
        return Trial(size, limit is None or peak <= limit, peak, STATIC, 0.1)

    return measure, tried


def test_doubling_stops_at_out_of_memory_and_backs_off():
    measure, tried = fake_measure(out_of_memory_at=32)
    trials = search(measure, limit=None)
    assert tried == [1, 2, 4, 8, 16, 32]
    assert [t.fits for t in trials] == [True] * 5 + [False] and trials[-1].note == "out of memory"
    assert max(t.batch_size for t in trials if t.fits) == 16


def test_a_size_predicted_over_the_limit_is_not_run():
    limit = STATIC + PER_EXAMPLE * 12  # 8 fits; 16 would need STATIC + 1600
    measure, tried = fake_measure(limit=limit)
    trials = search(measure, limit)
    assert tried == [1, 2, 4, 8], "16 is predicted from 8 and never run"
    assert (trials[-1].batch_size, trials[-1].fits, trials[-1].peak_bytes) == (16, False, STATIC + PER_EXAMPLE * 16)
    assert all(t.peak_bytes <= limit for t in trials if t.fits)
    assert search(fake_measure()[0], None, start=4, cap=16)[-1].batch_size == 16, "the cap ends the search"


def test_other_errors_are_not_taken_for_out_of_memory():
    def broken(size):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(RuntimeError, match="shapes"):
        search(broken, None)


@pytest.mark.parametrize("gib", ["0", "-2", "nan", "inf"])
def test_a_bad_limit_exits_2_with_a_message_before_loading_anything(gib, monkeypatch, capsys):
    monkeypatch.setattr("helpers.models.load_model", lambda *a, **k: pytest.fail("must fail before loading"))
    assert main(["max-batch", "--task", "sst2", "--memory-limit-gib", gib]) == 2
    captured = capsys.readouterr()
    assert f"--memory-limit-gib must be a positive number of GiB, got {float(gib)}" in captured.err
    assert "Traceback" not in captured.out + captured.err
    with pytest.raises(ValueError):
        limit_bytes(float(gib))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from tiny_models import write_tiny_model

    return str(write_tiny_model("distilbert", tmp_path_factory.mktemp("tiny") / "distilbert", ["a b c"]))


@pytest.mark.slow
def test_on_a_tiny_model_the_answer_obeys_the_limit(tiny_model, monkeypatch, capsys):
    common = dict(model=tiny_model, method="lora", max_length=32, precision="fp32")
    free = find_max_batch("sst2", memory_limit_gib=4, cap=8, **common)
    peaks = {t["batch_size"]: t["peak_bytes"] for t in free["trials"]}
    assert list(peaks) == [1, 2, 4, 8] and free["batch_size"] == 8 and free["stopped_by"] == "reached the cap (8)"
    assert peaks[1] < peaks[2] < peaks[4] < peaks[8], "more examples, more activations"

    # A limit between what 4 and 8 need: 8 is refused (predicted or measured), 4 is the answer.
    limit = (peaks[4] + peaks[8]) / 2 / GIB
    assert main(["max-batch", "--task", "sst2", "--model", tiny_model, "--max-length", "32", "--precision", "fp32",
                 "--memory-limit-gib", repr(limit)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    result = json.loads(out[out.index("\n{") :])
    assert "Largest batch that fits: 4" in out
    assert result["batch_size"] == 4 and result["peak_bytes"] <= limit * GIB
    assert result["trials"][-1]["batch_size"] == 8 and not result["trials"][-1]["fits"]
    assert (
        result["step_seconds"] > 0 and result["step_cpu_seconds"] > 0 and result["memory_kind"] == "cpu_breakdown_total"
    )
    assert result["process_peak_rss_bytes"] > result["peak_bytes"], "the process holds more than the step's accounting"

    with pytest.raises(ValueError, match="Even batch size 1 does not fit"):
        find_max_batch("sst2", memory_limit_gib=peaks[1] / 2 / GIB, **common)

    # Out of memory on a real step (as CUDA reports it): back off to the size before.
    real_step = max_batch.training_step

    def step_out_of_memory_from_4(setup, batch):
        if batch["input_ids"].shape[0] >= 4:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return real_step(setup, batch)

    monkeypatch.setattr("helpers.max_batch.training_step", step_out_of_memory_from_4)
    crashed = find_max_batch("sst2", memory_limit_gib=4, **common)
    assert crashed["batch_size"] == 2 and crashed["stopped_by"] == "out of memory"
