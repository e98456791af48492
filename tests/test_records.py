import json
import os
import subprocess
import sys
import time

import pytest
from fake_records import fake_record, shape_problems

from helpers import records as records_module
from helpers.records import (
    RECORD_SCHEMA,
    REQUIRED_KEYS,
    STALE_TEMP_SECONDS,
    RecordError,
    RecordVersionError,
    clean_stale_temporaries,
    find_record,
    load_record,
    load_records,
    write_json_atomic,
    write_record,
)


def a_record(run_id="run-a", **extra):
    record = fake_record("sst2", "bitfit", 0, 0.5)
    record.update(run_id=run_id, **extra)
    return record


def strict_json(path):
    """Parse as a strict JSON reader would: NaN and Infinity are not JSON."""

    def refuse(name):
        raise ValueError(f"{name} in {path}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_written_record_round_trips(tmp_path):
    path = write_record(a_record(), tmp_path)
    assert path == tmp_path / "run-a.json"
    assert load_record(path)["test"] == a_record()["test"]
    assert [p.name for p in tmp_path.iterdir()] == ["run-a.json"], "no temp files left behind"


def test_the_schema_is_made_from_the_declared_record_shape():
    """RunRecord declares the shape once: its required keys, with their types, are what readers check."""
    assert REQUIRED_KEYS == (
        "run_id",
        "config",
        "data",
        "versions",
        "params",
        "history",
        "evals",
        "best",
        "test",
        "timing",
        "memory",
    )
    assert list(RECORD_SCHEMA)[:4] == ["schema", "run_id", "config", "config.task"], "depth first, in declared order"
    assert RECORD_SCHEMA["config.epochs"] == (int, float), "a float may be written as an integer (2.0 -> 2)"
    assert RECORD_SCHEMA["config.lr"] == (int, float, type(None))
    assert RECORD_SCHEMA["config.max_length"] == (int, type(None))
    assert (RECORD_SCHEMA["config.method"], RECORD_SCHEMA["history"], RECORD_SCHEMA["params.total"]) == (
        dict,
        list,
        int,
    )
    assert "test.split" not in RECORD_SCHEMA and "timing.steps" not in RECORD_SCHEMA, "keys a record may lack"


def test_fake_records_have_the_declared_shape():
    assert shape_problems(fake_record("mnli", "lora", 0, 0.5, majority=0.3)) == []
    odd = fake_record("sst2", "bitfit", 0, 0.5)
    odd["timing"]["train_minutes"] = 1.0
    del odd["history"][0]["loss"]
    assert shape_problems(odd) == ["no history[0].loss", "undeclared timing.train_minutes"]


def test_a_half_written_record_never_appears(tmp_path, monkeypatch):
    write_record(a_record(best={"v": 1}), tmp_path)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # killed in the middle of writing

    monkeypatch.setattr(records_module.json, "dump", crash)
    with pytest.raises(KeyboardInterrupt):
        write_record(a_record(best={"v": 2}), tmp_path)
    with pytest.raises(KeyboardInterrupt):
        write_record(a_record("run-b"), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run-a.json"]
    assert load_record(tmp_path / "run-a.json")["best"] == {"v": 1}, "the old record is intact"


def test_corrupted_records_are_reported_not_fatal(tmp_path, caplog):
    write_record(a_record("good"), tmp_path)
    (tmp_path / "truncated.json").write_text('{"run_id": "trunc", "config": {')
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    records, problems = load_records(tmp_path)
    assert [r["run_id"] for r in records] == ["good"]
    assert len(problems) == 2
    assert any("truncated.json: not a readable run record" in p for p in problems)
    assert any("other.json: JSON but not a run record" in p for p in problems)
    assert not any("Delete it" in p for p in problems), "readers skip the file; nothing needs deleting"
    assert find_record(tmp_path, "truncated") is None
    assert caplog.text.count("trained again") == 1
    assert find_record(tmp_path, "truncated", warn=False) is None
    assert caplog.text.count("trained again") == 1, "a sweep's count does not warn a second time"


def test_incomplete_record_is_refused(tmp_path):
    with pytest.raises(RecordError, match="lacks"):
        write_record({"run_id": "x"}, tmp_path)
    with pytest.raises(RecordError, match="'data' is a list"):
        write_record(a_record(data=[1, 2]), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_non_finite_numbers_are_written_as_null_and_listed(tmp_path):
    record = a_record()
    record["history"] = [{"step": 1, "loss": float("nan"), "grad_norm": float("inf")}, {"step": 2, "loss": 0.5}]
    record["test"]["splits"]["test"]["accuracy"] = float("-inf")
    path = write_record(record, tmp_path)
    saved = strict_json(path)
    assert saved["history"][0] == {"step": 1, "loss": None, "grad_norm": None}
    assert saved["non_finite"] == ["history[0].loss", "history[0].grad_norm", "test.splits.test.accuracy"]
    assert load_record(path)["test"]["splits"]["test"]["accuracy"] is None
    # Any JSON the project writes is strict: numpy scalars and tuples too.
    import numpy as np

    write_json_atomic(tmp_path / "other.json", {"a": np.float32("nan"), "b": (1.5, float("inf")), "c": np.int64(3)})
    assert strict_json(tmp_path / "other.json") == {"a": None, "b": [1.5, None], "c": 3}


INVALID = [
    ("renamed test key", lambda r: r.update(results=r.pop("test")), "JSON but not a run record"),
    ("data as a list", lambda r: r.update(data=[r["data"]]), "'data' is a list"),
    ("schema 99", lambda r: r.update(schema=99), "schema version 99; this code reads version 1"),
    ("no schema", lambda r: r.pop("schema"), "no 'schema'"),
    ("test metrics renamed", lambda r: r["test"].update(scores=r["test"].pop("metrics")), "no 'test.metrics'"),
    ("metric as text", lambda r: r["test"]["metrics"].update(accuracy="0.9"), "test.metrics.accuracy is a string"),
    ("main metric missing", lambda r: r["test"].update(metrics={"f1": 0.5}), "lacks the task's main metric 'accuracy'"),
    ("unknown task", lambda r: r["config"].update(task="imdb"), "unknown task 'imdb'"),
    ("run id a number", lambda r: r.update(run_id=7), "'run_id' is an integer"),
    ("lr as text", lambda r: r["config"].update(lr="3e-3"), "'config.lr' is a string"),
    ("seed a boolean", lambda r: r["config"].update(seed=True), "'config.seed' is a bool"),
    ("history an object", lambda r: r.update(history={}), "'history' is an object"),
    ("sizes lack validation", lambda r: r["data"]["sizes"].pop("validation"), "data.sizes lacks ['validation']"),
    ("method a string", lambda r: r["config"].update(method="lora"), "'config.method' is a string"),
    ("splits of lists", lambda r: r["test"].update(splits={"test": [0.5]}), "'test.splits.test' is a list"),
]


@pytest.mark.parametrize("name, change, message", INVALID, ids=[case[0] for case in INVALID])
def test_records_of_another_shape_are_skipped_and_listed(tmp_path, name, change, message, caplog):
    write_record(a_record("good"), tmp_path)
    record = {"schema": 1, **a_record("odd")}
    change(record)
    (tmp_path / "odd.json").write_text(json.dumps(record))
    records, problems = load_records(tmp_path)
    assert [r["run_id"] for r in records] == ["good"]
    assert len(problems) == 1 and "odd.json" in problems[0] and message in problems[0], problems
    if name == "schema 99":  # somebody's valid record: never trained over
        with pytest.raises(RecordVersionError, match="Not training over it"):
            find_record(tmp_path, "odd")
    else:
        assert find_record(tmp_path, "odd") is None, "a sweep treats it as missing (and retrains) instead of crashing"


def test_a_record_of_another_schema_version_is_not_trained_over(tmp_path, monkeypatch):
    from helpers.sweep import expand_grid, run_sweep

    config = expand_grid({"task": ["sst2"], "method": ["head"]}, {"data_fingerprint": "fixture"})[0]  # no data to read
    newer = {**a_record(config.run_id), "schema": 99}
    (tmp_path / f"{config.run_id}.json").write_text(json.dumps(newer))
    before = (tmp_path / f"{config.run_id}.json").read_text()
    monkeypatch.setattr("helpers.training.load_glue", lambda *a, **k: pytest.fail("must not train"))
    with pytest.raises(RecordVersionError, match="schema version 99; this code reads version 1"):
        run_sweep([config], results_dir=tmp_path, progress=False)
    assert (tmp_path / f"{config.run_id}.json").read_text() == before


def test_nan_literals_in_a_file_make_it_invalid(tmp_path):
    text = json.dumps({"schema": 1, **a_record("nan")}).replace('"accuracy": 0.5', '"accuracy": NaN', 1)
    (tmp_path / "nan.json").write_text(text)
    records, problems = load_records(tmp_path)
    assert records == [] and "NaN is not JSON" in problems[0]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporaries_are_removed_only_when_their_writer_is_gone(tmp_path, monkeypatch):
    dead = tmp_path / f".run-a.json.{_dead_pid()}.abc123_x.tmp"
    alive = tmp_path / f".run-b.json.{os.getpid()}.k2j3h4.tmp"
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as other:
        other_alive = tmp_path / f".run-c.json.{other.pid}.zz9.tmp"
        old_unnamed = tmp_path / ".run-d.json.q8w7e6r5.tmp"  # written before temp names carried a pid
        new_unnamed = tmp_path / ".run-e.json.a1b2c3d4.tmp"
        unrelated = tmp_path / ".notes.tmp"
        for path in (dead, alive, other_alive, old_unnamed, new_unnamed, unrelated):
            path.write_text("{")
        past = time.time() - STALE_TEMP_SECONDS - 60
        os.utime(old_unnamed, (past, past))
        removed = clean_stale_temporaries(tmp_path)
        other.kill()
    assert sorted(removed) == sorted([dead, old_unnamed])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (alive, other_alive, new_unnamed, unrelated)
    )


def test_a_writer_killed_mid_write_leaves_a_temp_file_that_the_next_run_removes(tmp_path):
    script = (
        "import json, os, sys; sys.path.insert(0, os.getcwd()); from helpers import records\n"
        "def die(*a, **k): os._exit(9)\n"
        "records.json.dump = die\n"
        f"records.write_json_atomic({str(tmp_path / 'r.json')!r}, {{'a': 1}})"
    )
    subprocess.run([sys.executable, "-c", script], check=False)
    leftovers = list(tmp_path.glob(".r.json.*.tmp"))
    assert len(leftovers) == 1, "the kill left its temp file"
    assert clean_stale_temporaries(tmp_path) == leftovers
    assert list(tmp_path.iterdir()) == []


def test_a_diverged_run_and_a_foreign_file_do_not_break_the_report(tmp_path):
    from fake_records import PROFILE

    from helpers.report import write_report

    records = [
        fake_record(task, method, seed, 0.8)
        for task in ("sst2", "mrpc")
        for method in ("bitfit", "lora")
        for seed in (0, 1)
    ]
    diverged = records[0]
    diverged["history"][0]["loss"] = float("nan")
    diverged["test"]["metrics"]["accuracy"] = float("nan")
    diverged["test"]["splits"]["test"]["accuracy"] = float("nan")
    for record in records:
        write_record(record, tmp_path / "results")
    strict_json(tmp_path / "results" / f"{diverged['run_id']}.json")
    foreign = {
        **records[1],
        "schema": 1,
        "run_id": "foreign",
        "data": [records[1]["data"]],
    }  # well-formed JSON, another shape
    (tmp_path / "results" / "foreign.json").write_text(json.dumps(foreign))
    text = write_report(
        tmp_path / "results",
        tmp_path / "figures",
        tmp_path / "report.md",
        PROFILE.name,
        bench_path=tmp_path / "none.json",
    )
    assert "NaN" not in text and "Infinity" not in text
    assert "> 1 file(s) in the results folder were not valid records and were skipped." in text


def test_an_invalid_record_is_reported_once_when_a_sweep_retrains_it(tmp_path, monkeypatch, caplog):
    from helpers.sweep import expand_grid, run_sweep

    config = expand_grid({"task": ["sst2"], "method": ["head"]}, {"data_fingerprint": "fixture"})[0]  # no data to read
    (tmp_path / f"{config.run_id}.json").write_text('{"run_id": "trunc')

    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stop

    monkeypatch.setattr("helpers.training.load_glue", stop)
    with pytest.raises(Stop):
        run_sweep([config], results_dir=tmp_path, progress=False)
    assert caplog.text.count("not a readable run record") == 1
    assert "is trained again and its new record replaces the file" in caplog.text
