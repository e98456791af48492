"""The results folder under stress: no space for checkpoints or for the record, leftovers of killed runs.

A full disk is simulated where the write happens; each case says what happened and where, exits 2
from the command line without a traceback, and leaves no checkpoints behind."""

from __future__ import annotations

import errno
import subprocess
import sys

import pytest
from safetensors import SafetensorError

from helpers.cli import main
from helpers.records import StorageError, load_record, load_records
from helpers.training import train

HEAD_RUN = [
    "train",
    "--task",
    "sst2",
    "--method",
    "head",
    "--lr",
    "1e-2",
    "--epochs",
    "1",
    "--batch-size",
    "16",
    "--max-length",
    "32",
    "--quiet",
]


@pytest.fixture
def cli(glue_dir, tmp_path, monkeypatch, capsys):
    """Run the CLI in this process on the fixture data, with the tokenization cache in tmp_path; returns
    (exit code, stderr)."""
    monkeypatch.setitem(train.__kwdefaults__, "cache_dir", tmp_path / "cache")

    def run(*extra):
        code = main([*HEAD_RUN, "--glue-dir", str(glue_dir), "--results-dir", str(tmp_path / "results"), *extra])
        return code, capsys.readouterr().err

    return run


def a_stale_temp_file(folder):
    """The temp file a writer killed mid-write leaves behind."""
    folder.mkdir(parents=True, exist_ok=True)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    path = folder / f".sst2-head-s0-0123456789.json.{child.pid}.a1b2c3.tmp"
    path.write_text('{"run_id": ')
    return path


def test_too_little_disk_space_for_checkpoints_fails_before_training(cli, tmp_path, monkeypatch):
    stale = a_stale_temp_file(tmp_path / "results")
    monkeypatch.setattr("helpers.training.shutil.disk_usage", lambda path: type("Usage", (), {"free": 10 * 2**20})())
    monkeypatch.setattr("helpers.training._make_trainer", lambda *a, **k: pytest.fail("must fail before training"))
    code, stderr = cli()
    assert code == 2 and "Traceback" not in stderr
    assert f"Only 10 MiB free on the disk of {tmp_path / 'results'}; this run's checkpoints need about" in stderr
    assert "Nothing was trained" in stderr
    assert not stale.exists(), "the next run removes what a killed writer left"
    assert list((tmp_path / "results").iterdir()) == []


def test_a_full_disk_while_saving_a_checkpoint_is_explained_and_leaves_no_checkpoints(cli, tmp_path, monkeypatch):
    def full_disk(*args, **kwargs):
        raise SafetensorError(
            'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'
        )

    monkeypatch.setattr("transformers.Trainer.save_model", full_disk)
    code, stderr = cli()
    assert code == 2 and "Traceback" not in stderr
    assert f"Could not save a checkpoint in {tmp_path / 'results' / 'checkpoints'}" in stderr
    assert (
        "No space left on device" in stderr and "Is the disk full?" in stderr and "this run was not recorded" in stderr
    )
    assert list((tmp_path / "results").iterdir()) == [], "no record, no checkpoints folder"


def test_a_full_disk_while_writing_the_record_keeps_a_copy_elsewhere(cli, tmp_path, monkeypatch):
    from helpers import training

    real_write = training.write_record
    results = tmp_path / "results"

    def full_results_disk(record, folder):
        if folder == results:
            raise OSError(errno.ENOSPC, "No space left on device", str(folder / f"{record['run_id']}.json"))
        return real_write(record, folder)

    monkeypatch.setattr(training, "write_record", full_results_disk)
    monkeypatch.setattr(training, "UNSAVED_RECORDS_DIR", tmp_path / "unsaved")
    code, stderr = cli()
    assert code == 2 and "Traceback" not in stderr
    assert f"Training finished but its record could not be written to {results}: No space left on device." in stderr
    copies = list((tmp_path / "unsaved").glob("*.json"))
    assert len(copies) == 1 and f"A copy was saved as {copies[0]}: move it into {results}" in stderr
    assert load_record(copies[0])["config"]["method"]["method"] == "head", "the copy is a valid record"
    assert list(results.iterdir()) == [], "checkpoints removed, no half-written record"

    # Moved into place, the copy counts as done: the same run is not trained again.
    copies[0].rename(results / copies[0].name)
    monkeypatch.setattr(training, "load_glue", lambda *a, **k: pytest.fail("must not train again"))
    assert cli()[0] == 0
    records, problems = load_records(results)
    assert len(records) == 1 and not problems


def test_storage_errors_are_os_errors_with_a_plain_message():
    error = StorageError("Cannot write run records to /x: Read-only file system.")
    assert isinstance(error, OSError) and str(error) == "Cannot write run records to /x: Read-only file system."
