"""Run records: one JSON file per run, written atomically; the only input of plots and the report.

A record holds (see README "Run records"): run_id, config, data, versions, params, history, evals,
best, test, timing, memory; `RunRecord` declares its shape. Readers check every file against
`RECORD_SCHEMA` (made from that declaration) and skip (and report) files that are not valid records,
so one corrupted or foreign file never stops an analysis.

Files are strict JSON: a non-finite number (a diverged loss, a NaN correlation) is written as `null`,
and a record lists where that happened under `non_finite`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import tempfile
import time
import types
import typing
from pathlib import Path
from typing import TypedDict

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
NUMBER = (int, float)

# The shape of a run record, declared once. Each part is two classes: the first (`_Name`) holds the
# keys every record has and readers use without checking (RECORD_SCHEMA checks them, with these types,
# in every file read or written); the second adds the keys training writes that a record may lack
# (older records, in-context learning runs, hand-made test records): readers `.get` those.
# A float annotation accepts JSON integers too (2.0 epochs may be written as 2).


class RecordMethod(TypedDict):
    """`config.method`: helpers.methods.MethodConfig.to_dict (the method's knobs), or in-context learning's."""

    method: str


class _RecordConfig(TypedDict):
    task: str
    model: str
    method: RecordMethod
    lr: float | None  # None: in-context learning trains nothing
    batch_size: int
    epochs: float
    warmup_ratio: float
    weight_decay: float
    grad_accum: int
    max_length: int | None
    max_train_samples: int | None
    max_validation_samples: int | None
    recipe: str
    seed: int


class RecordConfig(_RecordConfig, total=False):
    """`config`: every field of the resolved helpers.training.TrainConfig (its `to_dict`), and what the
    run resolved on its machine (helpers.training.RESOLVED_KEYS)."""

    precision_used: str
    fast_cpu_kernels: bool
    eval_batch_size_used: int


class _RecordData(TypedDict):
    sizes: dict[str, int]  # examples per split
    select_on: str


class RecordData(_RecordData, total=False):
    """`data`: how the splits were made (helpers.data.SplitInfo.to_dict), and tokens per example."""

    source: str
    fingerprint: str | None
    token_lengths: dict[str, dict[str, float]]  # split -> mean and median tokens per example


class _RecordParams(TypedDict):
    trainable: int
    total: int
    percent: float


class RecordParams(_RecordParams, total=False):
    """`params`: parameter counts (helpers.methods.ParamCounts), and LoRA's closed form and targets."""

    lora_closed_form: int
    lora_targets: list[str]


class HistoryRow(TypedDict):
    """One logged training step in `history`."""

    step: int
    epoch: float
    loss: float | None
    lr: float | None
    grad_norm: float | None


class EvalRow(TypedDict):
    """One evaluation in `evals`: a split's metrics at a step."""

    step: int
    epoch: float
    split: str  # "validation", or "train" with eval_train
    metrics: dict[str, float | None]
    loss: float | None


class BestEval(TypedDict, total=False):
    """`best`: the evaluation that selected the model (empty for a run without evaluations)."""

    step: int
    epoch: float
    metric: str
    value: float | None


class _RecordTest(TypedDict):
    metrics: dict[str, float | None]  # the main test split's
    splits: dict[str, dict[str, float | None]]  # every test split's (MNLI has two)


class RecordTest(_RecordTest, total=False):
    """`test`: the selected model's scores on the test split(s)."""

    split: str  # the main test split


class _RecordTiming(TypedDict):
    train_seconds: float
    train_samples_per_second: float | None  # None: nothing was trained
    train_tokens_per_second: float | None


class RecordTiming(_RecordTiming, total=False):
    """`timing`: seconds, throughput and FLOPs (helpers.flops) of the run."""

    padding_fraction: float
    eval_seconds: float
    checkpoint_seconds: float
    model_flops_per_second: float  # real tokens only
    computed_flops_per_second: float  # padding included: what the hardware did
    wall_seconds: float
    steps: int
    samples_seen: int
    real_tokens_seen: int


class _RecordMemory(TypedDict):
    peak_bytes: int
    kind: str  # what peak_bytes measured: "cuda_max_allocated", "cpu_breakdown_total", ...


class RecordMemory(_RecordMemory, total=False):
    """`memory`: the peak, the breakdown of one training step (helpers.memory), the process's peak RSS."""

    breakdown: dict[str, int | list[int]]
    process_peak_rss_bytes: int


class _RunRecord(TypedDict):
    run_id: str
    config: RecordConfig
    data: RecordData
    versions: dict[str, str | int]  # helpers.device.library_versions, and the number of processes
    params: RecordParams
    history: list[HistoryRow]
    evals: list[EvalRow]
    best: BestEval
    test: RecordTest
    timing: RecordTiming
    memory: RecordMemory


class RunRecord(_RunRecord, total=False):
    """One run's record, as training returns it and `write_record` saves it."""

    schema: int  # SCHEMA_VERSION, added by write_record
    created: str  # ISO time, UTC
    model_info: dict[str, str | int]  # helpers.models.describe_architecture
    trainable_names: list[str]
    majority_class: dict[str, dict[str, float | None]]  # split -> what always predicting the majority class scores
    adapter_path: str  # where save_adapter put the trained weights
    non_finite: list[str]  # where write_record replaced a NaN or infinity with null
    icl: dict  # in-context learning's prompts and scoring (helpers.icl)


def _json_types(annotation) -> type | tuple[type, ...]:
    """The types `json.load` gives for a value of the annotated type."""
    if typing.is_typeddict(annotation):
        return dict
    if typing.get_origin(annotation) in (types.UnionType, typing.Union):
        members = [_json_types(member) for member in typing.get_args(annotation)]
        return tuple(kind for kinds in members for kind in (kinds if isinstance(kinds, tuple) else (kinds,)))
    if annotation is float:
        return NUMBER
    return typing.get_origin(annotation) or annotation  # dict[str, int] -> dict


def _required_types(shape: type, prefix: str = "") -> dict[str, type | tuple[type, ...]]:
    """Dotted path -> allowed types of every key that all records of `shape` have, depth first."""
    schema = {}
    for key, annotation in typing.get_type_hints(shape).items():
        if key in shape.__required_keys__:
            schema[prefix + key] = _json_types(annotation)
            if typing.is_typeddict(annotation):
                schema.update(_required_types(annotation, f"{prefix}{key}."))
    return schema


REQUIRED_KEYS = tuple(key for key in RunRecord.__annotations__ if key in RunRecord.__required_keys__)
# What readers (sweep, analysis, report) use without checking, as dotted path -> allowed types. A file
# that breaks any of these is skipped and listed, instead of crashing a reader half-way.
RECORD_SCHEMA = {"schema": int, **_required_types(RunRecord)}
# Temporary files of write_json_atomic: `.<name>.<writer pid>.<random>.tmp` (older ones lack the pid).
TEMP_NAME = re.compile(r"^\.(?P<name>.+?)\.(?:(?P<pid>\d+)\.)?[A-Za-z0-9_]+\.tmp$")
# A temporary file without a writer pid is stale once this old (writing a record takes milliseconds).
STALE_TEMP_SECONDS = 3600


class RecordError(ValueError):
    """A file under results/ that is not a readable run record."""


class RecordVersionError(RecordError):
    """A run record of another schema version: readers skip it, and no run overwrites it."""


class StorageError(OSError):
    """The results folder cannot take what a run writes (not a folder, read-only, disk full); says where."""


def is_storage_error(error: Exception) -> bool:
    """A failed write: an OSError, or safetensors' SafetensorError (not an OSError) on a full disk."""
    return isinstance(error, OSError) or type(error).__name__ == "SafetensorError"


def prepare_results_dir(folder: str | os.PathLike) -> Path:
    """Check, before any training, that run records can be written to `folder` (created if missing),
    and remove the temporary files that killed writers left there."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise StorageError(
            f"The results folder {folder} is a file, not a folder: "
            "pass --results-dir a folder (it is created if missing)."
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        descriptor, probe = tempfile.mkstemp(prefix=f".write-check.{os.getpid()}.", suffix=".tmp", dir=folder)
        os.close(descriptor)
        os.unlink(probe)
    except OSError as error:
        raise StorageError(
            f"Cannot write run records to {folder}: {error.strerror or error}"
            f"{f' ({error.filename})' if error.filename and str(error.filename) != str(folder) else ''}. "
            "Nothing was trained; pass --results-dir a writable folder."
        ) from error
    clean_stale_temporaries(folder)
    return folder


def config_hash(config: dict) -> str:
    """A short, stable hash of a resolved config (key order does not matter)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:10]


def record_path(results_dir: str | os.PathLike, run_id: str) -> Path:
    return Path(results_dir) / f"{run_id}.json"


def write_json_atomic(path: str | os.PathLike, payload: dict) -> Path:
    """Write strict JSON to a temp file in the same folder, then rename: readers never see half a file.

    Non-finite numbers become null (see `finite_json`). The temp file's name carries this process's
    id, so `clean_stale_temporaries` can tell a file left by a killed writer from one being written.
    """
    path = Path(path)
    payload, non_finite = finite_json(payload)
    if non_finite:
        log.warning(
            "%s: non-finite number(s) written as null at %s",
            path,
            ", ".join(non_finite[:5]) + (" ..." if len(non_finite) > 5 else ""),
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w") as handle:
            json.dump(payload, handle, indent=1, allow_nan=False)
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
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"Not JSON serialisable: {type(value).__name__}")


def finite_json(value, where: str = "") -> tuple[object, list[str]]:
    """`value` as plain JSON types with every NaN/Infinity replaced by None; also the paths replaced.

    JSON has no NaN or Infinity (Python's `json` writes them, most other readers refuse them), and a
    diverged run is still a result worth keeping, so its non-finite numbers are kept as null.
    """
    if isinstance(value, dict):
        pairs = [(key, finite_json(item, f"{where}.{key}" if where else str(key))) for key, item in value.items()]
        return {key: item for key, (item, _) in pairs}, [path for _, (_, paths) in pairs for path in paths]
    if isinstance(value, list):
        pairs = [finite_json(item, f"{where}[{i}]") for i, item in enumerate(value)]
        return [item for item, _ in pairs], [path for _, paths in pairs for path in paths]
    if value is None or isinstance(value, (str, bool, int)):
        return value, []
    if isinstance(value, float):
        return (value, []) if math.isfinite(value) else (None, [where])
    return finite_json(_jsonable(value), where)


def write_record(record: dict, results_dir: str | os.PathLike) -> Path:
    """Save one run record as `<results_dir>/<run_id>.json`, atomically; refuses what readers would skip."""
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise RecordError(f"Run record {record.get('run_id')!r} lacks {missing}.")
    record, non_finite = finite_json({"schema": SCHEMA_VERSION, **record})
    if non_finite:
        record["non_finite"] = non_finite
        log.warning(
            "[%s] non-finite number(s) (a diverged run?) written as null: %s",
            record.get("run_id"),
            ", ".join(non_finite[:5]) + (" ..." if len(non_finite) > 5 else ""),
        )
    problems = schema_problems(record)
    if problems:
        raise RecordError(f"Run record {record.get('run_id')!r} does not fit the record schema: {'; '.join(problems)}.")
    return write_json_atomic(record_path(results_dir, record["run_id"]), record)


def schema_problems(record) -> list[str]:
    """What makes `record` not a valid run record of this schema version (empty list: valid)."""
    from helpers.datasets_spec import register_recorded_task
    from helpers.tasks import get_task

    if not isinstance(record, dict):
        return [f"a JSON {type(record).__name__}, not an object"]
    if "schema" in record and record["schema"] != SCHEMA_VERSION:
        return [f"schema version {record['schema']!r}; this code reads version {SCHEMA_VERSION}"]
    problems = []
    for path, kinds in RECORD_SCHEMA.items():
        parent, _, key = path.rpartition(".")
        container = _lookup(record, parent) if parent else record
        if not isinstance(container, dict):
            continue  # the parent's own problem is reported
        if key not in container:
            problems.append(f"no {path!r}")
        elif not isinstance(container[key], kinds) or (isinstance(container[key], bool) and bool not in _tuple(kinds)):
            problems.append(
                f"{path!r} is {_describe(container[key])}, expected {' or '.join(_type_name(k) for k in _tuple(kinds))}"
            )
    if problems:
        return problems
    try:
        get_task(record["config"]["task"])
    except ValueError:  # GLUE tasks, and user datasets: registered in this process, or now from the record
        if register_recorded_task(record) is None:
            return [f"unknown task {record['config']['task']!r}"]
    for split, metrics in [
        ("test.metrics", record["test"]["metrics"]),
        *((f"test.splits.{s}", m) for s, m in record["test"]["splits"].items()),
    ]:
        if not isinstance(metrics, dict):
            problems.append(f"{split!r} is {_describe(metrics)}, expected object")
            continue
        problems += [
            f"{split}.{name} is {_describe(value)}, expected a number or null"
            for name, value in metrics.items()
            if value is not None and (isinstance(value, bool) or not isinstance(value, NUMBER))
        ]
    task = get_task(record["config"]["task"])
    if task.main_metric not in record["test"]["metrics"]:
        problems.append(f"test.metrics lacks the task's main metric {task.main_metric!r}")
    missing_sizes = [
        split for split in ("train", "validation", task.main_test_split) if split not in record["data"]["sizes"]
    ]
    if missing_sizes:
        problems.append(f"data.sizes lacks {missing_sizes}")
    return problems


def _lookup(record: dict, path: str):
    value = record
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _tuple(kinds) -> tuple:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def _type_name(kind: type) -> str:
    return {dict: "object", list: "list", str: "string", int: "integer", float: "number", type(None): "null"}.get(
        kind, kind.__name__
    )


def _describe(value) -> str:
    if value is None:
        return "null"
    name = _type_name(type(value))
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name} ({json.dumps(value)[:40]})"


def load_record(path: str | os.PathLike) -> dict:
    """Read one record; raises RecordError naming the file and the problem if it is not a valid record."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(), parse_constant=_refuse_constant)
    except (OSError, UnicodeDecodeError, ValueError) as error:  # JSONDecodeError is a ValueError
        raise RecordError(f"{path}: not a readable run record ({error})") from error
    if not isinstance(record, dict) or any(key not in record for key in REQUIRED_KEYS):
        raise RecordError(f"{path}: JSON but not a run record (needs keys {list(REQUIRED_KEYS)})")
    problems = schema_problems(record)
    if problems:
        other_version = "schema" in record and record["schema"] != SCHEMA_VERSION
        raise (RecordVersionError if other_version else RecordError)(
            f"{path}: not a valid run record: {'; '.join(problems)}"
        )
    return record


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON (non-finite numbers are written as null)")


def recorded_fingerprints(results_dir: str | os.PathLike) -> dict[str, str]:
    """Per task: the data fingerprint most of the records in `results_dir` were trained on."""
    from collections import Counter

    counts: dict[str, Counter] = {}
    for path in Path(results_dir).glob("*.json"):
        try:
            record = json.loads(path.read_text())
            task, fingerprint = record["config"]["task"], record["data"]["fingerprint"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a record (meta files, a broken file): find_record reports those
        if fingerprint:
            counts.setdefault(task, Counter())[fingerprint] += 1
    return {task: counter.most_common(1)[0][0] for task, counter in counts.items()}


def find_record(results_dir: str | os.PathLike, run_id: str, warn: bool = True) -> dict | None:
    """The finished record of this run id, or None; an invalid one counts as missing (with a warning,
    unless `warn` is False: a sweep counting its records leaves the warning to the run that replaces it).

    A record of another schema version is somebody's valid result: RecordVersionError, so that no run
    replaces it (force=True, which does not look, does).
    """
    path = record_path(results_dir, run_id)
    if not path.is_file():
        return None
    try:
        return load_record(path)
    except RecordVersionError as error:
        raise RecordVersionError(
            f"{error}. Not training over it: move it elsewhere, use the project version that wrote it, "
            "or pass --force to replace it."
        ) from None
    except RecordError as error:
        if warn:
            log.warning("%s; the run is trained again and its new record replaces the file.", error)
        return None


def clean_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that writers killed mid-write left in `folder`; returns them.

    A file whose writer process is still alive is left alone (it may be writing right now); one
    without a writer id (written before ids were added) only once it is STALE_TEMP_SECONDS old.
    """
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for path in folder.glob(".*.tmp"):
        match = TEMP_NAME.match(path.name)
        if match is None:
            continue
        try:
            stale = (
                not _process_alive(int(match["pid"]))
                if match["pid"]
                else time.time() - path.stat().st_mtime > STALE_TEMP_SECONDS
            )
            if stale:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:  # its writer renamed it, or another run removed it
            continue
    if removed:
        log.info("Removed %d temporary file(s) left by interrupted writers in %s", len(removed), folder)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    except OverflowError:
        return False
    return True


def load_records(results_dir: str | os.PathLike, pattern: str = "*.json") -> tuple[list[dict], list[str]]:
    """Every valid record under `results_dir` (not recursive) and a list of problems with the others."""
    records, problems = [], []
    for path in sorted(Path(results_dir).glob(pattern)):
        if path.name.startswith("."):  # temporary files of writers
            continue
        try:
            records.append(load_record(path))
        except RecordError as error:
            problems.append(str(error))
            log.warning("Skipping %s", error)
    return records, problems
