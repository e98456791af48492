"""The GLUE task table: one row per task, read by loading, tokenization, metrics and the report.

Column names and label ids follow the Hugging Face Hub dataset `nyu-mll/glue`, so a dataset loaded
from the Hub and one parsed from the official GLUE download look the same to everything downstream.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Sources of the published scores in the task table (context for the report, not our runs).
LORA_PAPER = "LoRA paper (Hu et al. 2021, Table 2), RoBERTa-base"
MINILM_PAPER = "MiniLM paper (Wang et al. 2020), MiniLM-L6-H384 (the base all-MiniLM-L6-v2 was trained from)"


@dataclass(frozen=True)
class TsvFormat:
    """How one task's files in the official GLUE download are laid out.

    `columns` maps each Hub column (text columns and `label`) to the header name in the TSV, or to a
    column index when the file has no header (CoLA). `label_ids` maps the label strings found in the
    file to the Hub's label ids; None means the label is already the integer id, and `float` labels
    (STS-B) are parsed as numbers.
    """

    columns: dict[str, str | int]
    has_header: bool = True
    label_ids: dict[str, int] | None = None
    float_label: bool = False


@dataclass(frozen=True)
class TestSplit:
    """A labelled split used for reporting: the GLUE dev file and the Hub split it corresponds to."""

    tsv_file: str
    hub_split: str


@dataclass(frozen=True)
class TaskSpec:
    """Everything the pipeline needs to know about one GLUE task."""

    name: str  # canonical short name, also the Hub config name
    display_name: str  # as written in the GLUE paper and as the folder of the official download
    text_columns: tuple[str, ...]
    label_names: tuple[str, ...]  # index = Hub label id; empty for regression
    metrics: tuple[str, ...]
    main_metric: str  # used to select the best checkpoint
    tsv: TsvFormat
    test_splits: dict[str, TestSplit] = field(default_factory=lambda: {"test": TestSplit("dev.tsv", "validation")})
    # The course's pass/fail baselines, per test split and metric.
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    # Published dev-set scores (x100) for context only, never compared as if they were our runs:
    # {"what was measured (source)": score}.
    published: dict[str, float] = field(default_factory=dict)
    # A user's dataset (helpers.datasets_spec.DatasetSpec) instead of GLUE files; None for GLUE tasks.
    dataset: object | None = None

    @property
    def is_regression(self) -> bool:
        return not self.label_names

    @property
    def num_labels(self) -> int:
        return 1 if self.is_regression else len(self.label_names)

    @property
    def is_pair(self) -> bool:
        return len(self.text_columns) == 2

    @property
    def main_test_split(self) -> str:
        """The test split the report leads with (MNLI: matched)."""
        return next(iter(self.test_splits))


_ENTAILMENT = {"entailment": 0, "not_entailment": 1}

TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in [
        TaskSpec(
            name="cola",
            display_name="CoLA",
            text_columns=("sentence",),
            label_names=("unacceptable", "acceptable"),
            metrics=("matthews_correlation",),
            main_metric="matthews_correlation",
            # No header: source code, label, original author mark, sentence.
            tsv=TsvFormat(columns={"sentence": 3, "label": 1}, has_header=False),
            baselines={"test": {"matthews_correlation": 0.6}},
            published={
                f"BitFit, {LORA_PAPER}": 62.0,
                f"full fine-tuning, {LORA_PAPER}": 63.6,
                f"LoRA, {LORA_PAPER}": 63.4,
                f"full fine-tuning, {MINILM_PAPER}": 47.5,
            },
        ),
        TaskSpec(
            name="sst2",
            display_name="SST-2",
            text_columns=("sentence",),
            label_names=("negative", "positive"),
            metrics=("accuracy",),
            main_metric="accuracy",
            tsv=TsvFormat(columns={"sentence": "sentence", "label": "label"}),
            baselines={"test": {"accuracy": 0.88}},
            published={
                f"BitFit, {LORA_PAPER}": 93.7,
                f"full fine-tuning, {LORA_PAPER}": 94.8,
                f"LoRA, {LORA_PAPER}": 95.1,
                f"full fine-tuning, {MINILM_PAPER}": 91.5,
            },
        ),
        TaskSpec(
            name="mrpc",
            display_name="MRPC",
            text_columns=("sentence1", "sentence2"),
            label_names=("not_equivalent", "equivalent"),
            metrics=("accuracy", "f1"),
            # Accuracy, not F1, selects and passes: always answering "equivalent" already scores
            # F1 0.81 on the dev set (68% positive), which would pass a 0.8 F1 bar by doing nothing.
            main_metric="accuracy",
            tsv=TsvFormat(columns={"sentence1": "#1 String", "sentence2": "#2 String", "label": "Quality"}),
            baselines={"test": {"accuracy": 0.8}},
            published={
                f"BitFit, {LORA_PAPER}": 92.7,
                f"full fine-tuning, {LORA_PAPER}": 90.2,
                f"LoRA, {LORA_PAPER}": 89.7,
            },
        ),
        TaskSpec(
            name="stsb",
            display_name="STS-B",
            text_columns=("sentence1", "sentence2"),
            label_names=(),
            metrics=("pearson", "spearmanr"),
            main_metric="pearson",
            tsv=TsvFormat(
                columns={"sentence1": "sentence1", "sentence2": "sentence2", "label": "score"},
                float_label=True,
            ),
            baselines={"test": {"pearson": 0.8}},
        ),
        TaskSpec(
            name="qqp",
            display_name="QQP",
            text_columns=("question1", "question2"),
            label_names=("not_duplicate", "duplicate"),
            metrics=("accuracy", "f1"),
            main_metric="accuracy",
            tsv=TsvFormat(
                columns={
                    "question1": "question1",
                    "question2": "question2",
                    "label": "is_duplicate",
                }
            ),
            baselines={"test": {"f1": 0.8, "accuracy": 0.8}},
        ),
        TaskSpec(
            name="mnli",
            display_name="MNLI",
            text_columns=("premise", "hypothesis"),
            label_names=("entailment", "neutral", "contradiction"),
            metrics=("accuracy",),
            main_metric="accuracy",
            tsv=TsvFormat(
                columns={"premise": "sentence1", "hypothesis": "sentence2", "label": "gold_label"},
                label_ids={"entailment": 0, "neutral": 1, "contradiction": 2},
            ),
            test_splits={
                "test_matched": TestSplit("dev_matched.tsv", "validation_matched"),
                "test_mismatched": TestSplit("dev_mismatched.tsv", "validation_mismatched"),
            },
            baselines={"test_matched": {"accuracy": 0.8}, "test_mismatched": {"accuracy": 0.8}},
        ),
        TaskSpec(
            name="qnli",
            display_name="QNLI",
            text_columns=("question", "sentence"),
            label_names=("entailment", "not_entailment"),
            metrics=("accuracy",),
            main_metric="accuracy",
            tsv=TsvFormat(
                columns={"question": "question", "sentence": "sentence", "label": "label"},
                label_ids=_ENTAILMENT,
            ),
            baselines={"test": {"accuracy": 0.85}},
        ),
        TaskSpec(
            name="rte",
            display_name="RTE",
            text_columns=("sentence1", "sentence2"),
            label_names=("entailment", "not_entailment"),
            metrics=("accuracy",),
            main_metric="accuracy",
            tsv=TsvFormat(
                columns={"sentence1": "sentence1", "sentence2": "sentence2", "label": "label"},
                label_ids=_ENTAILMENT,
            ),
            baselines={"test": {"accuracy": 0.7}},
            published={
                f"BitFit, {LORA_PAPER}": 81.5,
                f"full fine-tuning, {LORA_PAPER}": 78.7,
                f"LoRA, {LORA_PAPER}": 86.6,
                f"full fine-tuning, {MINILM_PAPER}": 68.8,
            },
        ),
        TaskSpec(
            name="wnli",
            display_name="WNLI",
            text_columns=("sentence1", "sentence2"),
            # WNLI's files already hold the Hub ids: 1 = entailment.
            label_names=("not_entailment", "entailment"),
            metrics=("accuracy",),
            main_metric="accuracy",
            tsv=TsvFormat(columns={"sentence1": "sentence1", "sentence2": "sentence2", "label": "label"}),
            baselines={"test": {"accuracy": 0.8}},
        ),
    ]
}


def _normalise(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "").strip()


def get_task(name: str | TaskSpec) -> TaskSpec:
    """Return the task's row; accepts any case, with or without hyphen (`sst2`, `SST-2`)."""
    if isinstance(name, TaskSpec):
        return name
    key = _normalise(str(name))
    if key not in TASKS:
        valid = ", ".join(spec.display_name for spec in TASKS.values())
        raise ValueError(f"Unknown GLUE task {name!r}. Valid tasks: {valid} (any case, hyphen optional).")
    return TASKS[key]
