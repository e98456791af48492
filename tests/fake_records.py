"""Hand-made run records with chosen results, to test what the analysis and the report conclude, and
a check that a record has the shape helpers.records declares."""

from __future__ import annotations

import typing

from helpers.methods import MethodConfig
from helpers.profiles import get_profile
from helpers.records import (
    BestEval,
    EvalRow,
    HistoryRow,
    RecordConfig,
    RecordData,
    RecordMemory,
    RecordParams,
    RecordTest,
    RecordTiming,
    RunRecord,
)
from helpers.tasks import get_task
from helpers.training import TrainConfig

PROFILE = get_profile("smoke")


def fake_record(
    task: str,
    method: str,
    seed: int,
    value: float,
    *,
    lr: float | None = None,
    validation: float | None = None,
    trainable: int = 1000,
    majority: float | None = None,
    settings: dict | None = None,
    **method_knobs,
) -> RunRecord:
    """A complete record of one run whose main test metric is `value` (other metrics derived from it);
    `settings`: TrainConfig fields in place of the smoke profile's."""
    config = TrainConfig(
        task=task,
        method=MethodConfig(method=method, **method_knobs),
        seed=seed,
        lr=lr,
        **{**PROFILE.data_settings(), **(settings or {})},
    )
    spec = get_task(task)
    metrics = {name: value for name in spec.metrics}
    total = 22_713_986
    record = RunRecord(
        run_id=config.run_id,
        config=RecordConfig(**config.to_dict(), precision_used="bf16"),
        data=RecordData(
            source="local:/fixture",
            select_on="train_slice",
            sizes={"train": 48, "validation": 16, **{s: 24 for s in spec.test_splits}},
        ),
        model_info={
            "model_type": "bert",
            "hidden_size": 384,
            "layers": 6,
            "heads": 12,
            "intermediate_size": 1536,
            "parameters": total,
        },
        versions={"device": "test CPU"},
        params=RecordParams(
            trainable=trainable if method != "full" else total,
            total=total,
            percent=100 * trainable / total,
            **({"lora_closed_form": trainable} if method in ("lora", "dora") else {}),
        ),
        history=[
            HistoryRow(step=1, epoch=0.5, loss=0.7, lr=config.lr, grad_norm=None),
            HistoryRow(step=2, epoch=1.0, loss=0.6, lr=0.0, grad_norm=None),
        ],
        evals=[
            EvalRow(
                step=2,
                epoch=1.0,
                split="validation",
                metrics={spec.main_metric: validation if validation is not None else value},
                loss=None,
            )
        ],
        best=BestEval(
            step=2,
            epoch=1.0,
            metric=spec.main_metric,
            value=validation if validation is not None else value,
        ),
        test=RecordTest(
            split=spec.main_test_split,
            metrics=metrics,
            splits={s: dict(metrics) for s in spec.test_splits},
        ),
        timing=RecordTiming(train_seconds=10.0, train_samples_per_second=100.0, train_tokens_per_second=2000.0),
        memory=RecordMemory(
            peak_bytes=2**27,
            kind="cpu_breakdown_total",
            breakdown={
                "parameters_bytes": 2**26,
                "gradients_bytes": 0,
                "optimizer_bytes": 0,
                "activations_bytes": 2**25,
                "total_bytes": 2**27,
                "batch_shape": [16, 64],
            },
        ),
    )
    if majority is not None:  # what always predicting the majority class scores
        record["majority_class"] = {
            split: {name: majority for name in spec.metrics} for split in ("validation", *spec.test_splits)
        }
    return record


# Parts of a record whose keys other code declares (TrainConfig's fields, MethodConfig's knobs, SplitInfo's).
DECLARED_ELSEWHERE = {"config", "config.method", "data"}


def shape_problems(value: dict, shape: type = RunRecord, path: str = "") -> list[str]:
    """Where a record differs from its declared shape (helpers.records.RunRecord): keys it lacks, keys the
    shape does not name, at every level the shape declares (list rows included)."""
    hints = typing.get_type_hints(shape)
    problems = [f"no {path}{key}" for key in hints if key in shape.__required_keys__ and key not in value]
    if path.rstrip(".") not in DECLARED_ELSEWHERE:
        problems += [f"undeclared {path}{key}" for key in value if key not in hints]
    for key, item in value.items():
        annotation = hints.get(key)
        if typing.is_typeddict(annotation) and isinstance(item, dict):
            problems += shape_problems(item, annotation, f"{path}{key}.")
        elif typing.get_origin(annotation) is list and typing.is_typeddict(typing.get_args(annotation)[0]):
            for i, row in enumerate(item):
                problems += shape_problems(row, typing.get_args(annotation)[0], f"{path}{key}[{i}].")
    return problems
