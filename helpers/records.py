"""Run records: one JSON file per run, written atomically; the only input of plots and the report.

A record holds (see README "Run records"): run_id, config, data, versions, params, history, evals,
best, test, timing, memory. Readers skip (and report) files that are not valid records, so one
corrupted file never stops an analysis.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
REQUIRED_KEYS = ("run_id", "config", "data", "versions", "params", "history", "evals", "best", "test", "timing", "memory")


class RecordError(ValueError):
    """A file under results/ that is not a readable run record."""


def config_hash(config: dict) -> str:
    """A short, stable hash of a resolved config (key order does not matter)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:10]


def record_path(results_dir: str | os.PathLike, run_id: str) -> Path:
    return Path(results_dir) / f"{run_id}.json"


def write_json_atomic(path: str | os.PathLike, payload: dict) -> Path:
    """Write JSON to a temp file in the same folder, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w") as handle:
            json.dump(payload, handle, indent=1, default=_jsonable)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, 0o644)  # mkstemp creates 0600; records are meant to be shared
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return path


def _jsonable(value):
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"Not JSON serialisable: {type(value).__name__}")


def write_record(record: dict, results_dir: str | os.PathLike) -> Path:
    """Save one run record as `<results_dir>/<run_id>.json`, atomically."""
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise RecordError(f"Run record {record.get('run_id')!r} lacks {missing}.")
    return write_json_atomic(record_path(results_dir, record["run_id"]), {"schema": SCHEMA_VERSION, **record})


def load_record(path: str | os.PathLike) -> dict:
    """Read one record; raises RecordError naming the file if it is not a valid record."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise RecordError(f"{path}: not a readable run record ({error}). Delete it to re-run that config.") from error
    if not isinstance(record, dict) or any(key not in record for key in REQUIRED_KEYS):
        raise RecordError(f"{path}: JSON but not a run record (needs keys {list(REQUIRED_KEYS)}).")
    return record


def find_record(results_dir: str | os.PathLike, run_id: str) -> dict | None:
    """The finished record of this run id, or None (a corrupted one is reported and treated as missing)."""
    path = record_path(results_dir, run_id)
    if not path.is_file():
        return None
    try:
        return load_record(path)
    except RecordError as error:
        log.warning("%s; the run will be trained again.", error)
        return None


def load_records(results_dir: str | os.PathLike, pattern: str = "*.json") -> tuple[list[dict], list[str]]:
    """Every valid record under `results_dir` (not recursive) and a list of problems with the others."""
    records, problems = [], []
    for path in sorted(Path(results_dir).glob(pattern)):
        try:
            records.append(load_record(path))
        except RecordError as error:
            problems.append(str(error))
            log.warning("Skipping %s", error)
    return records, problems
