"""Loading GLUE from the Hub or from a local folder in the official GLUE download layout.

Whatever the source, `load_glue` returns a `datasets.DatasetDict` with the Hub's column names and
label ids and these splits:

- `train`: what the model trains on (optionally a seeded subsample),
- `validation`: a seeded, stratified slice of the GLUE train set, used for evaluation during
  training and model selection (or, with `select_on="dev"`, the GLUE dev set, as papers do),
- `test` (MNLI: `test_matched` and `test_mismatched`): the GLUE dev set, labelled, used for
  reporting. GLUE's own test labels are hidden, so they are never used.

How the splits were made (source, exact sizes, seeds, skipped rows) is attached as `.glue_info`,
with the data's fingerprint: a hash of every row (text and label) of the raw train and dev files,
in file order. Run ids include it, so runs on different data never share a record: subsets are
drawn by position, so even the same rows in another order (the Hub's SST-2 train against the TSV)
make another training set.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from helpers.paths import DATA_CACHE
from helpers.tasks import TaskSpec, get_task

log = logging.getLogger(__name__)

HUB_DATASET = "nyu-mll/glue"
MAX_BAD_ROW_FRACTION = 0.01
SELECT_ON_CHOICES = ("train_slice", "dev")
# How the splits are made unless a config says otherwise. TrainConfig's and IclConfig's fields take
# their defaults from here (this module sits below them), so a run and an ICL run of the same task
# hold out the same validation slice.
DEFAULT_SELECT_ON = "train_slice"
DEFAULT_VALIDATION_FRACTION = 0.1
DEFAULT_SPLIT_SEED = 42


class GlueDataError(ValueError):
    """A GLUE folder or file that cannot be read as the official layout."""


@dataclass
class SplitInfo:
    """How a `load_glue` result was made; saved in every run record."""

    task: str
    source: str  # "hub:nyu-mll/glue" or "local:<folder name>" (no machine paths in records)
    select_on: str  # "train_slice" or "dev"
    validation_fraction: float
    split_seed: int
    max_train_samples: int | None
    max_validation_samples: int | None
    stratified: bool
    sizes: dict[str, int] = field(default_factory=dict)
    skipped_rows: dict[str, int] = field(default_factory=dict)
    fingerprint: str | None = None  # data_fingerprint of the raw files
    # A user's dataset: its spec and label names (helpers.datasets_spec.recorded_dataset); None for GLUE.
    dataset: dict | None = None

    def to_dict(self) -> dict:
        values = asdict(self)
        if values["dataset"] is None:  # GLUE records keep their keys
            del values["dataset"]
        return values


def source_name(glue_dir: str | os.PathLike | None, task: TaskSpec | str | None = None) -> str:
    """Where `load_glue` would read from: `local:<folder name>` or `hub:nyu-mll/glue` (a user dataset: its own source).

    Only the folder's name, so records carry no machine paths; the fingerprint identifies the data.
    """
    if task is not None and get_task(task).dataset is not None:
        from helpers.datasets_spec import dataset_source

        return dataset_source(get_task(task).dataset)
    local_dir = resolve_glue_dir(glue_dir)
    return f"local:{local_dir.resolve().name}" if local_dir is not None else f"hub:{HUB_DATASET}"


def same_source(recorded: str, glue_dir: str | os.PathLike | None) -> bool:
    """Whether a record's `source` (older records: `local:<absolute folder>`) names where `glue_dir` reads."""
    if recorded.startswith("local:"):
        recorded = "local:" + Path(recorded[len("local:") :]).name
    return recorded == source_name(glue_dir)


def fingerprint_rows(raw: DatasetDict, task: TaskSpec) -> str:
    """A short hash of every split's rows (text columns and label) in order; `idx` is left out."""
    digest = hashlib.sha256()
    for split in sorted(raw):
        digest.update(f"[{split}]".encode())
        table = raw[split].data.table.select([*task.text_columns, "label"]).to_pydict()  # Arrow: fast
        for row in zip(*table.values()):
            digest.update(json.dumps(row, ensure_ascii=False).encode() + b"\n")
    return digest.hexdigest()[:12]


# Task name → the fingerprint data_fingerprint answers instead of reading the data, inside `pinned_fingerprints`.
_PINNED_FINGERPRINTS: dict[str, str] = {}


def data_fingerprint(
    task: TaskSpec | str, glue_dir: str | os.PathLike | None = None, cache_dir: str | os.PathLike = DATA_CACHE
) -> str:
    """The fingerprint of the raw data `load_glue` would read (read once per process and file version)."""
    spec = get_task(task)
    if spec.name in _PINNED_FINGERPRINTS:
        return _PINNED_FINGERPRINTS[spec.name]
    return _raw(spec, glue_dir, cache_dir)[2]


@contextlib.contextmanager
def pinned_fingerprints(fingerprints: dict[str, str]):
    """Within it, run ids name the data by these fingerprints (task name → fingerprint), not by the data
    on this machine: how a notebook that only reads a study's records finds them when its own copy of a
    task holds the same rows in another order (the Hub's SST-2 against the official files). Never around
    training: a record must name the data it was trained on."""
    saved = dict(_PINNED_FINGERPRINTS)
    _PINNED_FINGERPRINTS.update(fingerprints)
    try:
        yield
    finally:
        _PINNED_FINGERPRINTS.clear()
        _PINNED_FINGERPRINTS.update(saved)


def _raw(task: TaskSpec, glue_dir, cache_dir) -> tuple[DatasetDict, dict[str, int], str]:
    """(raw splits, skipped rows, fingerprint) of a GLUE task or a user's dataset."""
    if task.dataset is not None:  # a user's dataset (helpers.datasets_spec), not GLUE
        from helpers.datasets_spec import load_dataset_task

        raw = load_dataset_task(task)
        return raw, {}, fingerprint_rows(raw, task)
    return _raw_task(task.name, *_source_key(task, glue_dir), str(cache_dir))


def _source_key(task: TaskSpec, glue_dir) -> tuple[str, tuple]:
    """Where the raw data comes from, with each local file's size and modification time (a changed file is
    read again)."""
    local_dir = resolve_glue_dir(glue_dir)
    if local_dir is None:
        return "", ()
    task_dir = local_dir / task.display_name
    files = ("train.tsv", *(split.tsv_file for split in task.test_splits.values()))
    stats = tuple(
        (name, (task_dir / name).stat().st_size, (task_dir / name).stat().st_mtime_ns)
        for name in files
        if (task_dir / name).is_file()
    )
    return str(local_dir.resolve()), stats


@functools.lru_cache(maxsize=4)
def _raw_task(
    task_name: str, local_dir: str, _file_stats: tuple, cache_dir: str
) -> tuple[DatasetDict, dict[str, int], str]:
    task = get_task(task_name)
    if local_dir:
        raw, skipped = load_local_task(task, local_dir)
    else:
        raw, skipped = load_hub_task(task, cache_dir), {}
    return raw, skipped, fingerprint_rows(raw, task)


def features_for(task: TaskSpec) -> Features:
    """The Hub's features for this task: text columns, label (ClassLabel or float) and idx."""
    columns = {column: Value("string") for column in task.text_columns}
    columns["label"] = Value("float32") if task.is_regression else ClassLabel(names=list(task.label_names))
    columns["idx"] = Value("int32")
    return Features(columns)


def resolve_glue_dir(glue_dir: str | os.PathLike | None) -> Path | None:
    """The local GLUE folder: the argument if given, else `$GLUE_DIR`, else None (use the Hub)."""
    chosen = glue_dir if glue_dir not in (None, "") else os.environ.get("GLUE_DIR") or None
    return Path(chosen).expanduser() if chosen is not None else None


# ---------------------------------------------------------------------------------------------
# Local files in the official GLUE layout
# ---------------------------------------------------------------------------------------------


def _layout_hint(task: TaskSpec) -> str:
    files = ["train.tsv"] + [split.tsv_file for split in task.test_splits.values()]
    return f"<glue_dir>/{task.display_name}/{{{','.join(files)}}}"


def _parse_label(raw: str, task: TaskSpec) -> float | int:
    raw = raw.strip()
    if task.tsv.float_label:
        value = float(raw)
        if not np.isfinite(value):
            raise ValueError(f"score {raw!r} is not a finite number")
        return value
    if task.tsv.label_ids is not None:
        if raw not in task.tsv.label_ids:
            raise ValueError(f"label {raw!r} is not one of {sorted(task.tsv.label_ids)}")
        return task.tsv.label_ids[raw]
    try:
        label = int(raw)
    except ValueError:
        raise ValueError(f"label {raw!r} is not an integer class id") from None
    if not 0 <= label < task.num_labels:
        raise ValueError(f"label {label} is outside 0..{task.num_labels - 1}")
    return label


# (leading bytes, what the file is, how to fix it): files that are not the UTF-8 text GLUE ships.
NOT_TEXT_SIGNATURES = [
    (b"\x1f\x8b", "gzip-compressed", "decompress it: gunzip -c {path} > plain.tsv, then put plain.tsv in its place"),
    (b"PK\x03\x04", "a zip archive", "unzip it and put the .tsv file it holds in its place"),
    (
        b"\xff\xfe",
        "UTF-16 text",
        "convert it to UTF-8: iconv -f UTF-16 -t UTF-8 {path} > utf8.tsv, then put utf8.tsv in its place",
    ),
    (
        b"\xfe\xff",
        "UTF-16 text",
        "convert it to UTF-8: iconv -f UTF-16 -t UTF-8 {path} > utf8.tsv, then put utf8.tsv in its place",
    ),
]


def check_text_file(path: Path) -> None:
    """Refuse, naming the file and the fix, a compressed, UTF-16 or binary file before parsing it as TSV."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
    for signature, kind, fix in NOT_TEXT_SIGNATURES:
        if head.startswith(signature):
            raise GlueDataError(
                f"{path} is {kind}, not the UTF-8 text of the official GLUE files; {fix.format(path=path)}."
            )
    if b"\x00" in head:
        if head.count(b"\x00") * 3 > len(head):  # every other byte zero: ASCII text in UTF-16
            encoding = "UTF-16LE" if head[1:2] == b"\x00" else "UTF-16BE"
            raise GlueDataError(
                f"{path} looks like {encoding} text without a byte-order mark, not the UTF-8 text of the official GLUE "
                f"files; convert it to UTF-8: iconv -f {encoding} -t UTF-8 {path} > utf8.tsv, "
                "then put utf8.tsv in its place."
            )
        raise GlueDataError(
            f"{path} looks like a binary file (it holds NUL bytes), not the UTF-8 text of the official GLUE "
            f"files; download the task again ({_layout_hint_for_file(path)})."
        )


def _layout_hint_for_file(path: Path) -> str:
    return f"expected a tab-separated text file such as {path.parent.name}/{path.name} from the GLUE download"


def read_glue_tsv(path: Path, task: TaskSpec) -> tuple[dict[str, list], int]:
    """Parse one official GLUE TSV file into Hub-style columns; returns (columns, skipped rows).

    Files are tab-separated with no quoting (quotes are ordinary characters). A row that cannot
    be parsed is reported with file and line number; more than 1% such rows is an error.
    """
    if not path.is_file():
        raise GlueDataError(f"GLUE file not found: {path}. Expected the official GLUE layout {_layout_hint(task)}.")
    check_text_file(path)
    try:
        return _parse_glue_tsv(path, task)
    except UnicodeDecodeError:
        line_number, byte = _first_undecodable_line(path)
        raise GlueDataError(
            f"{path} is not UTF-8 text: line {line_number} holds the byte {byte!r}, which UTF-8 cannot decode "
            "(a Latin-1 or "
            "Windows-1252 file?). The official GLUE files are UTF-8: download the task again, or convert the file: "
            f"iconv -f LATIN1 -t UTF-8 {path} > utf8.tsv, then put utf8.tsv in its place."
        ) from None


def _first_undecodable_line(path: Path) -> tuple[int, bytes]:
    with open(path, "rb") as handle:
        for line_number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as error:
                return line_number, line[error.start : error.start + 1]
    return 0, b""


def _parse_glue_tsv(path: Path, task: TaskSpec) -> tuple[dict[str, list], int]:
    fmt = task.tsv
    columns: dict[str, list] = {name: [] for name in (*task.text_columns, "label", "idx")}
    bad_rows: list[str] = []
    total_rows = 0
    # utf-8-sig drops MRPC's byte-order mark. Lines end at \n, \r\n or a bare \r (as when the Hub
    # built its copy), so a stray \r inside a text field splits that row into two unparseable ones.
    with open(path, encoding="utf-8-sig", newline="") as handle:
        lines = iter(enumerate(handle, start=1))
        if fmt.has_header:
            try:
                _, header_line = next(lines)
            except StopIteration:
                raise GlueDataError(f"{path} is empty; expected a header line.") from None
            header = header_line.rstrip("\r\n").split("\t")
            missing = [name for name in fmt.columns.values() if name not in header]
            if missing:
                raise GlueDataError(
                    f"{path}: header {header} lacks column(s) {missing} for {task.display_name}; "
                    f"is this the official GLUE download ({_layout_hint(task)})?"
                )
            positions = {column: header.index(name) for column, name in fmt.columns.items()}
            expected_fields = len(header)
        else:
            positions = dict(fmt.columns)
            expected_fields = max(positions.values()) + 1
        for line_number, line in lines:
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            total_rows += 1
            fields = line.split("\t")
            if len(fields) != expected_fields:
                bad_rows.append(
                    f"{path}:{line_number}: expected {expected_fields} tab-separated fields, found {len(fields)}"
                )
                continue
            try:
                label = _parse_label(fields[positions["label"]], task)
            except ValueError as error:
                bad_rows.append(f"{path}:{line_number}: {error}")
                continue
            for column in task.text_columns:
                columns[column].append(fields[positions[column]])
            columns["label"].append(label)
            columns["idx"].append(len(columns["idx"]))
    if total_rows == 0:
        raise GlueDataError(f"{path} holds no data rows.")
    if bad_rows:
        fraction = len(bad_rows) / total_rows
        examples = "\n  ".join(bad_rows[:5])
        if fraction > MAX_BAD_ROW_FRACTION:
            raise GlueDataError(
                f"{path}: {len(bad_rows)} of {total_rows} rows ({fraction:.1%}) cannot be parsed, "
                f"more than the {MAX_BAD_ROW_FRACTION:.0%} tolerated; is the file corrupted or not "
                f"the official GLUE format? First problems:\n  {examples}"
            )
        log.warning("Skipped %d unparseable row(s) of %d in %s:\n  %s", len(bad_rows), total_rows, path, examples)
    return columns, len(bad_rows)


def load_local_task(task: TaskSpec | str, glue_dir: str | os.PathLike) -> tuple[DatasetDict, dict[str, int]]:
    """Read `train` and the labelled dev file(s) of one task from a local GLUE folder.

    Returns the raw splits (`train` and the task's test splits) and the skipped rows per split.
    """
    task = get_task(task)
    root = Path(glue_dir).expanduser()
    if not root.is_dir():
        raise GlueDataError(
            f"GLUE folder not found: {root}. Pass --glue-dir or set GLUE_DIR to a folder in the "
            f"official GLUE layout, e.g. {_layout_hint(task)}."
        )
    task_dir = root / task.display_name
    if not task_dir.is_dir():
        present = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise GlueDataError(
            f"No {task.display_name} folder in {root} (found: {present or 'nothing'}). "
            f"Expected the official GLUE layout {_layout_hint(task)}."
        )
    features = features_for(task)
    splits, skipped = {}, {}
    files = {"train": "train.tsv", **{name: split.tsv_file for name, split in task.test_splits.items()}}
    for split, file_name in files.items():
        columns, skipped[split] = read_glue_tsv(task_dir / file_name, task)
        splits[split] = Dataset.from_dict(columns, features=features)
    return DatasetDict(splits), skipped


# ---------------------------------------------------------------------------------------------
# The Hugging Face Hub
# ---------------------------------------------------------------------------------------------


def from_hub_splits(task: TaskSpec | str, hub: DatasetDict) -> DatasetDict:
    """Map the Hub's splits to ours: `train` stays, each labelled dev split becomes a test split.

    The Hub's own `test` splits carry label -1 (hidden) and are dropped.
    """
    task = get_task(task)
    missing = [s for s in ["train", *(t.hub_split for t in task.test_splits.values())] if s not in hub]
    if missing:
        raise GlueDataError(f"Hub dataset for {task.display_name} lacks split(s) {missing}; found {list(hub)}.")
    features = features_for(task)
    splits = {"train": hub["train"]}
    splits.update({name: hub[split.hub_split] for name, split in task.test_splits.items()})
    return DatasetDict({name: ds.select_columns(list(features)).cast(features) for name, ds in splits.items()})


def load_hub_task(task: TaskSpec | str, cache_dir: str | os.PathLike = DATA_CACHE) -> DatasetDict:
    """Download (or reuse the cached copy of) one task from the Hub's `nyu-mll/glue`."""
    import datasets

    task = get_task(task)
    try:
        hub = datasets.load_dataset(HUB_DATASET, task.name, cache_dir=str(Path(cache_dir) / "hub"))
    except Exception as error:  # network errors come in many types; all mean the same here
        raise GlueDataError(
            f"Could not load {HUB_DATASET}/{task.name} from the Hugging Face Hub ({type(error).__name__}: "
            f"{error}). Offline? Point --glue-dir or GLUE_DIR at a local copy in the official GLUE "
            f"layout ({_layout_hint(task)})."
        ) from error
    return from_hub_splits(task, hub)


# ---------------------------------------------------------------------------------------------
# Splitting
# ---------------------------------------------------------------------------------------------


def _strata(dataset: Dataset, task: TaskSpec) -> np.ndarray:
    labels = np.asarray(dataset["label"])
    # STS-B scores run from 0 to 5: stratify on whole-point bins.
    return np.clip(np.floor(labels), 0, 4).astype(int) if task.is_regression else labels


def seeded_subset(dataset: Dataset, task: TaskSpec, size: int, seed: int) -> tuple[Dataset, Dataset, bool]:
    """Split off a stratified, seeded subset of `size` rows; returns (subset, rest, stratified)."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(dataset))
    if size >= len(dataset):
        return dataset, dataset.select([]), True
    strata = _strata(dataset, task)
    stratified = True
    try:
        rest_idx, subset_idx = train_test_split(indices, test_size=size, stratify=strata, random_state=seed)
    except ValueError:
        # Too few examples of some class to stratify (tiny fixtures): fall back to a plain shuffle.
        stratified = False
        rest_idx, subset_idx = train_test_split(indices, test_size=size, random_state=seed)
    return dataset.select(np.sort(subset_idx)), dataset.select(np.sort(rest_idx)), stratified


def make_splits(
    raw: DatasetDict,
    task: TaskSpec | str,
    *,
    select_on: str = DEFAULT_SELECT_ON,
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
    split_seed: int = DEFAULT_SPLIT_SEED,
    max_train_samples: int | None = None,
    max_validation_samples: int | None = None,
) -> tuple[DatasetDict, dict]:
    """Turn raw `train` + test splits into train / validation / test; returns (splits, how)."""
    task = get_task(task)
    if select_on not in SELECT_ON_CHOICES:
        raise ValueError(f"select_on must be one of {SELECT_ON_CHOICES}, got {select_on!r}.")
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}.")
    for name, value in [("max_train_samples", max_train_samples), ("max_validation_samples", max_validation_samples)]:
        if value is not None and value <= 0:
            raise ValueError(f"{name} must be a positive number of examples, got {value}.")
    train = raw["train"]
    stratified = True
    if select_on == "train_slice":
        n_validation = max(1, round(validation_fraction * len(train)))
        validation, train, stratified = seeded_subset(train, task, n_validation, split_seed)
    else:
        validation = raw[task.main_test_split]
    if max_validation_samples is not None:
        validation, _, ok = seeded_subset(validation, task, max_validation_samples, split_seed)
        stratified &= ok
    if max_train_samples is not None:
        train, _, ok = seeded_subset(train, task, max_train_samples, split_seed)
        stratified &= ok
    splits = DatasetDict({"train": train, "validation": validation, **{name: raw[name] for name in task.test_splits}})
    return splits, {"stratified": stratified}


def load_glue(
    task: TaskSpec | str,
    *,
    glue_dir: str | os.PathLike | None = None,
    select_on: str = DEFAULT_SELECT_ON,
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
    split_seed: int = DEFAULT_SPLIT_SEED,
    max_train_samples: int | None = None,
    max_validation_samples: int | None = None,
    cache_dir: str | os.PathLike = DATA_CACHE,
) -> DatasetDict:
    """Load one GLUE task as train / validation / test splits with the Hub's columns and label ids.

    The source is the local folder `glue_dir` (or `$GLUE_DIR`) in the official GLUE layout when one
    is given, else the Hub's `nyu-mll/glue`. See the module docstring for what each split is.
    """
    from helpers.datasets_spec import recorded_dataset

    task = get_task(task)
    source = source_name(glue_dir, task)
    raw, skipped, fingerprint = _raw(task, glue_dir, cache_dir)
    splits, how = make_splits(
        raw,
        task,
        select_on=select_on,
        validation_fraction=validation_fraction,
        split_seed=split_seed,
        max_train_samples=max_train_samples,
        max_validation_samples=max_validation_samples,
    )
    splits.glue_info = SplitInfo(
        task=task.name,
        source=source,
        select_on=select_on,
        validation_fraction=validation_fraction,
        split_seed=split_seed,
        max_train_samples=max_train_samples,
        max_validation_samples=max_validation_samples,
        stratified=how["stratified"],
        sizes={name: len(ds) for name, ds in splits.items()},
        skipped_rows=dict(skipped),
        fingerprint=fingerprint,
        dataset=recorded_dataset(task) if task.dataset is not None else None,
    )
    return splits


def describe(splits: DatasetDict, task: TaskSpec | str) -> dict:
    """Sizes and label distribution of each split (mean and std for STS-B), as plain JSON."""
    task = get_task(task)
    info = getattr(splits, "glue_info", None)
    summary = {"task": task.display_name, "source": info.source if info else None, "splits": {}}
    for name, dataset in splits.items():
        labels = np.asarray(dataset["label"])
        if task.is_regression:
            labels_summary = {"mean": round(float(labels.mean()), 4), "std": round(float(labels.std()), 4)}
        else:
            counts = np.bincount(labels.astype(int), minlength=task.num_labels)
            labels_summary = {name_: int(count) for name_, count in zip(task.label_names, counts)}
        summary["splits"][name] = {"size": len(dataset), "labels": labels_summary}
    if info is not None:
        summary["skipped_rows"] = info.skipped_rows
        summary["select_on"] = info.select_on
        summary["split_seed"] = info.split_seed
    return summary


def label_balance(splits: dict[str, DatasetDict]):
    """Per task and split ({task: splits}): the size and each label's share (the score's mean and
    std for a regression task), as a table."""
    import pandas as pd

    rows = []
    for task, data in splits.items():
        spec = get_task(task)
        for name, dataset in data.items():
            labels = pd.Series(dataset["label"])
            row = {"task": spec.display_name, "split": name, "size": len(dataset)}
            if spec.is_regression:
                row.update({"mean score": labels.mean(), "std": labels.std()})
            else:
                shares = labels.value_counts(normalize=True).reindex(range(spec.num_labels), fill_value=0.0)
                row.update({label: f"{share:.1%}" for label, share in zip(spec.label_names, shares)})
            rows.append(row)
    return pd.DataFrame(rows).fillna("")


OVERLAP_MAX_EXAMPLES = 2_000  # examples per split checked by split_overlap (bounds its time on QQP or MNLI)
OVERLAP_FILE = "split_overlap.json"  # in a results folder's meta/: split_overlap's numbers, which the report reads


def _normalised(text: str) -> str:
    return " ".join(text.lower().split())


def split_overlap(splits: DatasetDict, task: TaskSpec | str, seed: int = DEFAULT_SPLIT_SEED) -> dict[str, dict]:
    """Per evaluation split: how short its examples are, and how much of its text the training split
    already holds, verbatim (lower-cased, whole words) inside one of its examples, every text column.

    SST-2's train holds the parse-tree phrases of its sentences as examples of their own, so a slice
    of it shares text with the rest, while its dev set holds whole, unseen sentences. At most
    OVERLAP_MAX_EXAMPLES examples per split are checked (a seeded, stratified sample).
    """
    task = get_task(task)
    haystacks = {
        column: " " + " \n ".join(map(_normalised, splits["train"][column])) + " " for column in task.text_columns
    }
    training_rows = set(zip(*(map(_normalised, splits["train"][column]) for column in task.text_columns)))
    result = {}
    for name, dataset in splits.items():
        if name == "train" or len(dataset) == 0:
            continue
        sample, _, _ = seeded_subset(dataset, task, OVERLAP_MAX_EXAMPLES, seed)
        rows = list(zip(*(map(_normalised, sample[column]) for column in task.text_columns)))
        words = np.array([sum(len(text.split()) for text in row) for row in rows])
        inside = [all(f" {text} " in haystacks[column] for column, text in zip(task.text_columns, row)) for row in rows]
        labels = np.asarray(dataset["label"])
        shares = (
            {}
            if task.is_regression
            else {label: round(float(np.mean(labels == index)), 4) for index, label in enumerate(task.label_names)}
        )
        result[name] = {
            "examples": len(rows),
            "of": len(dataset),
            "label_shares": shares,  # of the whole split: what always answering one label scores
            "mean_words": round(float(words.mean()), 2),
            "one_word": round(float(np.mean(words == 1)), 4),
            "inside_training": round(float(np.mean(inside)), 4),
            "identical_to_training": round(float(np.mean([row in training_rows for row in rows])), 4),
        }
    return result


def save_split_overlap(results_dir: str | os.PathLike, task: TaskSpec | str, overlap: dict, source: str) -> Path:
    """Write (or update) one task's split_overlap numbers, with their data source, in results_dir/meta/."""
    path = Path(results_dir) / "meta" / OVERLAP_FILE
    saved = json.loads(path.read_text()) if path.is_file() else {}
    saved[get_task(task).name] = {"source": source, "splits": overlap}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(saved, indent=1, sort_keys=True) + "\n")
    return path


def load_split_overlap(results_dir: str | os.PathLike) -> dict:
    """The saved split_overlap numbers per task ({} when none were saved)."""
    path = Path(results_dir) / "meta" / OVERLAP_FILE
    return json.loads(path.read_text()) if path.is_file() else {}
