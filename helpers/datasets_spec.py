"""Any labelled text dataset as a task beside GLUE's: a local CSV / TSV / JSON file or folder, or a Hub dataset.

A `DatasetSpec` names where the rows are, which column(s) hold the text (one, or two for pairs) and
which the label. `register_dataset(spec)` reads it, checks it, and adds a row to the task table
(`helpers.tasks.TASKS`) whose name carries a hash of the spec, so everything downstream (splits,
tokenization, metrics, run ids, records) treats it exactly as a GLUE task:

- labels: all whole numbers or all strings -> classes (names sorted; scored by accuracy and
  macro-F1); any fractional number -> regression (Pearson, Spearman). Mixed kinds are an error.
- splits: the `test` split is the dataset's own held-out file (`test.*`, else `validation.*` /
  `dev.*`; Hub: `test` if labelled, else `validation`); a dataset with only training rows gets a
  seeded, stratified `test_fraction` held out. Validation is then sliced off train as for GLUE.

Command line: `python -m helpers train --task reviews.csv --text-columns text --label-column label`
(or `--task hub:imdb`, `--task hub:super_glue/boolq --text-columns question,passage`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from helpers.tasks import TASKS, TaskSpec, TsvFormat

SUFFIXES = (".csv", ".tsv", ".json", ".jsonl")
TEST_FILE_STEMS = ("test", "validation", "dev")  # the first found is the reported test split


class DatasetSpecError(ValueError):
    """A dataset file or spec that cannot be used as a labelled text task."""


@dataclass(frozen=True)
class DatasetSpec:
    """Where a labelled text dataset is and which columns to read."""

    source: str  # a file, a folder with train.* (+ test.* / validation.*), or "hub:<name>[/<config>]"
    text_columns: tuple[str, ...] = ("text",)  # one column, or two for sentence pairs
    label_column: str = "label"
    test_fraction: float = 0.2  # held out as the test split when the data has no test file
    split_seed: int = 42

    def __post_init__(self):
        if isinstance(self.text_columns, str):
            object.__setattr__(
                self, "text_columns", tuple(c.strip() for c in self.text_columns.split(",") if c.strip())
            )
        if len(self.text_columns) not in (1, 2):
            raise DatasetSpecError(f"text_columns must name one or two columns, got {self.text_columns!r}.")
        if not 0 < self.test_fraction < 1:
            raise DatasetSpecError(f"test_fraction must be in (0, 1), got {self.test_fraction}.")

    @property
    def is_hub(self) -> bool:
        return self.source.startswith("hub:")

    def short_name(self) -> str:
        """A task name: the file/dataset name plus a hash of the spec (and the local files' sizes)."""
        stem = self.source[4:].replace("/", "-") if self.is_hub else Path(self.source).stem
        stem = "".join(ch if ch.isalnum() else "-" for ch in stem.lower()).strip("-") or "data"
        identity = {**asdict(self), "source": self.source if self.is_hub else str(Path(self.source).resolve())}
        if not self.is_hub:
            identity["files"] = {p.name: p.stat().st_size for p in _local_files(Path(self.source)).values()}
        return f"{stem}-{hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]}"


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def _local_files(path: Path) -> dict[str, Path]:
    """{"train": file, "test": file or missing} for a file or a folder."""
    if path.is_file():
        if path.suffix.lower() not in SUFFIXES:
            raise DatasetSpecError(f"{path}: unsupported file type {path.suffix!r}; use one of {SUFFIXES}.")
        return {"train": path}
    if not path.is_dir():
        raise DatasetSpecError(
            f"Dataset not found: {path} (a {'/'.join(SUFFIXES)} file, "
            "or a folder with train.* and test.* or validation.*)."
        )
    found = {p.stem.lower(): p for p in sorted(path.iterdir()) if p.suffix.lower() in SUFFIXES}
    if "train" not in found:
        raise DatasetSpecError(
            f"{path}: no train file (train{'|'.join(SUFFIXES)}); "
            f"found {sorted(p.name for p in found.values()) or 'nothing'}."
        )
    files = {"train": found["train"]}
    for stem in TEST_FILE_STEMS:
        if stem in found:
            files["test"] = found[stem]
            break
    return files


def read_table(path: Path):
    """A pandas DataFrame of every column as read (labels not yet parsed)."""
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
        text = path.read_text(encoding="utf-8").strip()
        if text.startswith("["):
            return pd.DataFrame(json.loads(text))
        return pd.read_json(path, lines=True, dtype=False)
    except (ValueError, pd.errors.ParserError) as error:
        raise DatasetSpecError(f"{path}: cannot be read as {suffix[1:].upper()} ({error}).") from error


def _check_columns(frame, spec: DatasetSpec, where: str) -> None:
    missing = [c for c in (*spec.text_columns, spec.label_column) if c not in frame.columns]
    if missing:
        raise DatasetSpecError(
            f"{where}: no column(s) {missing}; its columns are {list(frame.columns)}. "
            "Name them with --text-columns and --label-column."
        )
    if len(frame) == 0:
        raise DatasetSpecError(f"{where}: the split is empty (no data rows).")


def _label_kind(values: list, where: str) -> str:
    """ "int", "float" or "str" for one split's raw labels; mixed kinds and empty labels are errors."""
    kinds = set()
    for row, value in enumerate(values):
        if value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() == "":
            raise DatasetSpecError(f"{where}: row {row + 1} has an empty label.")
        text = str(value).strip()
        try:
            number = float(text)
            kinds.add("int" if number.is_integer() and "." not in text else "float")
        except ValueError:
            kinds.add("str")
    if "str" in kinds and len(kinds) > 1:
        raise DatasetSpecError(f"{where}: mixed label types (numbers and words); every label must be of one kind.")
    return "str" if "str" in kinds else "float" if "float" in kinds else "int"


def _raw_splits(spec: DatasetSpec) -> dict[str, dict[str, list]]:
    """{"train": columns, "test": columns?} with the text columns and raw labels."""
    if spec.is_hub:
        return _hub_splits(spec)
    splits = {}
    for split, path in _local_files(Path(spec.source)).items():
        frame = read_table(path)
        _check_columns(frame, spec, str(path))
        splits[split] = {c: frame[c].tolist() for c in (*spec.text_columns, spec.label_column)}
    return splits


def _hub_splits(spec: DatasetSpec) -> dict[str, dict[str, list]]:
    import datasets

    name, _, config = spec.source[4:].partition("/")
    try:
        hub = datasets.load_dataset(name, config or None)
    except Exception as error:  # network errors come in many types
        raise DatasetSpecError(
            f"Could not load the Hub dataset {name!r} (config {config or None!r}): {type(error).__name__}: {error}"
        ) from error
    splits = {}
    for ours, candidates in (("train", ("train",)), ("test", ("test", "validation"))):
        for candidate in candidates:
            if candidate in hub:
                frame = hub[candidate].to_pandas()
                _check_columns(frame, spec, f"{spec.source}[{candidate}]")
                labels = frame[spec.label_column]
                if ours == "test" and (labels.astype(str) == "-1").all():
                    continue  # hidden test labels (GLUE-style): use the next candidate
                splits[ours] = {c: frame[c].tolist() for c in (*spec.text_columns, spec.label_column)}
                break
    if "train" not in splits:
        raise DatasetSpecError(f"{spec.source}: no train split; found {list(hub)}.")
    return splits


# ---------------------------------------------------------------------------------------------
# The task row and the splits
# ---------------------------------------------------------------------------------------------


def task_row(spec: DatasetSpec, name: str, label_names: tuple[str, ...]) -> TaskSpec:
    """The task table's row of a dataset: classes scored by accuracy and macro-F1, no label names: regression."""
    regression = not label_names
    return TaskSpec(
        name=name,
        display_name=name,
        text_columns=spec.text_columns,
        label_names=label_names,
        metrics=("pearson", "spearmanr") if regression else ("accuracy", "macro_f1"),
        main_metric="pearson" if regression else "accuracy",
        tsv=TsvFormat(columns={}),
        dataset=spec,
    )


def build_task(spec: DatasetSpec):
    """(TaskSpec, raw DatasetDict with train and test, how the test split was made)."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    from helpers.data import seeded_subset

    raw = _raw_splits(spec)
    kinds = {
        split: _label_kind(columns[spec.label_column], f"{spec.source} [{split}]") for split, columns in raw.items()
    }
    if "str" in kinds.values() and len(set(kinds.values())) > 1:
        raise DatasetSpecError(f"{spec.source}: mixed label types across splits ({kinds}).")
    regression = "float" in kinds.values()
    if regression:
        label_names: tuple[str, ...] = ()
        to_label = float
    else:
        train_labels = [str(v).strip() for v in raw["train"][spec.label_column]]
        ordered = sorted(set(train_labels), key=(int if kinds["train"] == "int" else str))
        if len(ordered) < 2:
            raise DatasetSpecError(
                f"{spec.source}: the training labels hold one class only ({ordered}); classification needs two or more."
            )
        label_names = tuple(ordered)
        ids = {name: i for i, name in enumerate(label_names)}
        for split, columns in raw.items():
            unknown = sorted({str(v).strip() for v in columns[spec.label_column]} - set(ids))
            if unknown:
                raise DatasetSpecError(
                    f"{spec.source} [{split}]: label(s) {unknown[:10]} do not occur in the training split "
                    f"(known: {list(label_names)})."
                )
        to_label = lambda value: ids[str(value).strip()]  # noqa: E731
    task = task_row(spec, spec.short_name(), label_names)
    label_feature = Value("float32") if regression else ClassLabel(names=list(label_names))
    features = Features(
        {**{c: Value("string") for c in spec.text_columns}, "label": label_feature, "idx": Value("int32")}
    )

    def to_dataset(columns: dict[str, list]) -> Dataset:
        rows = {c: ["" if v is None else str(v) for v in columns[c]] for c in spec.text_columns}
        rows["label"] = [to_label(v) for v in columns[spec.label_column]]
        rows["idx"] = list(range(len(rows["label"])))
        return Dataset.from_dict(rows, features=features)

    train = to_dataset(raw["train"])
    if "test" in raw:
        test, how = to_dataset(raw["test"]), "file"
    else:
        size = max(1, round(spec.test_fraction * len(train)))
        test, train, stratified = seeded_subset(train, task, size, spec.split_seed)
        how = (
            f"{spec.test_fraction:.0%} of train held out (seed {spec.split_seed}{', stratified' if stratified else ''})"
        )
        if len(train) == 0:
            raise DatasetSpecError(
                f"{spec.source}: too few rows ({len(test)}) to hold out a test split and still train."
            )
    return task, DatasetDict({"train": train, "test": test}), how


def register_dataset(spec: DatasetSpec) -> TaskSpec:
    """Read and check the dataset, add its row to the task table, and return it (idempotent)."""
    from helpers.tasks import _normalise

    key = _normalise(spec.short_name())  # the key get_task looks up
    if key not in TASKS:
        task, _, _ = build_task(spec)
        TASKS[key] = task
    return TASKS[key]


def recorded_dataset(task: TaskSpec) -> dict:
    """What a run record keeps of a user dataset (`data.dataset`): the spec, its local source as an absolute
    path, and the label names, so another process can rebuild the task's row without reading the files."""
    spec = task.dataset
    return {
        **asdict(spec),
        "source": spec.source if spec.is_hub else str(Path(spec.source).resolve()),
        "text_columns": list(spec.text_columns),
        "label_names": list(task.label_names),
    }


def register_recorded_task(record: dict) -> TaskSpec | None:
    """Add the task row of a record's user dataset (`data.dataset`) to the task table under the record's task
    name, as the training process had it; None when the record holds no dataset (GLUE, or older records)."""
    from helpers.tasks import _normalise

    recorded = record.get("data", {}).get("dataset") if isinstance(record.get("data"), dict) else None
    if not isinstance(recorded, dict):
        return None
    name = record["config"]["task"]
    if _normalise(name) not in TASKS:
        fields = {key: value for key, value in recorded.items() if key in DatasetSpec.__dataclass_fields__}
        try:
            spec = DatasetSpec(**{**fields, "text_columns": tuple(fields.get("text_columns", ("text",)))})
            label_names = tuple(str(label) for label in recorded.get("label_names", ()))
        except (TypeError, ValueError):  # not a spec this code can read: the record's task stays unknown
            return None
        TASKS[_normalise(name)] = task_row(spec, name, label_names)
    return TASKS[_normalise(name)]


def load_dataset_task(task: TaskSpec):
    """The raw `train` and `test` splits of a registered dataset task."""
    return build_task(task.dataset)[1]


def dataset_source(spec: DatasetSpec) -> str:
    """The record's `data.source`: `hub:<name>[/<config>]` or `local:<absolute path>`."""
    return spec.source if spec.is_hub else f"local:{Path(spec.source).resolve()}"


def spec_from_args(
    task: str, text_columns: str | None, label_column: str | None, test_fraction: float | None = None
) -> DatasetSpec | None:
    """The spec the command line describes, or None when `task` is a GLUE task name."""
    from helpers.tasks import get_task

    if not (task.startswith("hub:") or text_columns or label_column or os.path.exists(task)):
        return None
    try:
        get_task(task)
        if not os.path.exists(task):
            return None
    except ValueError:
        pass
    kwargs = {"source": task}
    if text_columns:
        kwargs["text_columns"] = text_columns
    if label_column:
        kwargs["label_column"] = label_column
    if test_fraction is not None:
        kwargs["test_fraction"] = test_fraction
    return DatasetSpec(**kwargs)
