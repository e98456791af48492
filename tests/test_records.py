import json

import pytest

from helpers import records as records_module
from helpers.records import REQUIRED_KEYS, RecordError, find_record, load_record, load_records, write_record


def a_record(run_id="run-a", **extra):
    record = {key: {} for key in REQUIRED_KEYS}
    record.update(run_id=run_id, history=[], evals=[], **extra)
    return record


def test_written_record_round_trips(tmp_path):
    path = write_record(a_record(test={"metrics": {"accuracy": 0.5}}), tmp_path)
    assert path == tmp_path / "run-a.json"
    assert load_record(path)["test"] == {"metrics": {"accuracy": 0.5}}
    assert [p.name for p in tmp_path.iterdir()] == ["run-a.json"], "no temp files left behind"


def test_a_half_written_record_never_appears(tmp_path, monkeypatch):
    write_record(a_record(test={"v": 1}), tmp_path)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # killed in the middle of writing

    monkeypatch.setattr(records_module.json, "dump", crash)
    with pytest.raises(KeyboardInterrupt):
        write_record(a_record(test={"v": 2}), tmp_path)
    with pytest.raises(KeyboardInterrupt):
        write_record(a_record("run-b"), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run-a.json"]
    assert load_record(tmp_path / "run-a.json")["test"] == {"v": 1}, "the old record is intact"


def test_corrupted_records_are_reported_not_fatal(tmp_path, caplog):
    write_record(a_record("good"), tmp_path)
    (tmp_path / "truncated.json").write_text('{"run_id": "trunc", "config": {')
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    records, problems = load_records(tmp_path)
    assert [r["run_id"] for r in records] == ["good"]
    assert len(problems) == 2
    assert any("truncated.json: not a readable run record" in p for p in problems)
    assert any("other.json: JSON but not a run record" in p for p in problems)
    assert find_record(tmp_path, "truncated") is None
    assert "will be trained again" in caplog.text


def test_incomplete_record_is_refused(tmp_path):
    with pytest.raises(RecordError, match="lacks"):
        write_record({"run_id": "x"}, tmp_path)
