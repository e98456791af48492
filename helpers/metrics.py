"""GLUE's official metrics, computed with scikit-learn and scipy (no `evaluate.load`, which needs the Hub)."""

from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from helpers.tasks import TaskSpec, get_task


def predictions_from_logits(task: TaskSpec | str, logits: np.ndarray) -> np.ndarray:
    """Class ids (argmax) for classification; the single output, flattened, for STS-B regression."""
    task = get_task(task)
    logits = np.asarray(logits)
    if task.is_regression:
        return logits.reshape(-1).astype(np.float64)
    if logits.ndim == 1:  # already class ids
        return logits.astype(np.int64)
    return logits.argmax(axis=-1)


def _correlation(kind: str, predictions: np.ndarray, labels: np.ndarray) -> float:
    # A correlation with a constant is undefined; report 0 (no linear/rank association) rather than NaN.
    if np.ptp(predictions) == 0 or np.ptp(labels) == 0:
        return 0.0
    if kind == "pearson":
        return float(stats.pearsonr(predictions, labels)[0])
    return float(stats.spearmanr(predictions, labels)[0])


def compute_metrics(task: TaskSpec | str, logits_or_predictions, labels) -> dict[str, float]:
    """Every official metric of the task, from logits (or class ids / scores) and gold labels."""
    task = get_task(task)
    predictions = predictions_from_logits(task, logits_or_predictions)
    labels = np.asarray(labels).reshape(-1)
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels.")
    if len(labels) == 0:
        raise ValueError("No examples to score.")
    results = {}
    for metric in task.metrics:
        if metric == "accuracy":
            results[metric] = float(accuracy_score(labels, predictions))
        elif metric == "f1":
            results[metric] = float(f1_score(labels, predictions, pos_label=1, zero_division=0.0))
        elif metric == "macro_f1":  # user datasets (helpers.datasets_spec): every class counts equally
            results[metric] = float(
                f1_score(labels, predictions, average="macro", labels=list(range(task.num_labels)), zero_division=0.0)
            )
        elif metric == "matthews_correlation":
            if len(np.unique(predictions)) < 2 or len(np.unique(labels)) < 2:
                results[metric] = 0.0  # MCC of a constant predictor is 0 by convention
            else:
                results[metric] = float(matthews_corrcoef(labels, predictions))
        elif metric in ("pearson", "spearmanr"):
            results[metric] = _correlation(metric, predictions.astype(np.float64), labels.astype(np.float64))
        else:
            raise ValueError(f"Unknown metric {metric!r} in the task table for {task.display_name}.")
    return results


def majority_class_metrics(task: TaskSpec | str, train_labels, labels) -> dict[str, float]:
    """The metrics of a model that ignores its input: it always predicts the most frequent training
    label (for regression, the mean training score). A run that does not beat this learned nothing usable."""
    task = get_task(task)
    train_labels = np.asarray(train_labels).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    if task.is_regression:
        constant = float(train_labels.mean())
    else:
        values, counts = np.unique(train_labels, return_counts=True)
        constant = values[np.argmax(counts)]
    return compute_metrics(task, np.full(len(labels), constant), labels)


def cross_check_with_evaluate(task: TaskSpec | str, predictions, labels) -> dict[str, dict] | str:
    """Our metrics next to Hugging Face `evaluate`'s GLUE metric on the same predictions, per metric
    ({"ours", "evaluate", "equal"}); where evaluate cannot load, a sentence saying why it was skipped.

    Our metrics stay scikit-learn/scipy: evaluate's GLUE metric script is fetched from the Hub at run
    time, so it needs a network connection (and the `evaluate` package) that offline runs lack.
    """
    import os

    task = get_task(task)
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_EVALUATE_OFFLINE") == "1":
        return (
            "skipped: offline (HF_HUB_OFFLINE / HF_EVALUATE_OFFLINE is set), "
            "and evaluate's GLUE metric script comes from the Hub."
        )
    try:
        import evaluate
    except ImportError:
        return "skipped: the `evaluate` package is not installed (pip install evaluate; the Colab setup installs it)."
    try:
        metric = evaluate.load("glue", task.name)
    except Exception as error:  # no network, Hub unreachable, script refused
        return (
            f"skipped: evaluate.load('glue', {task.name!r}) failed ({type(error).__name__}); its metric script comes "
            "from the Hugging Face Hub, so this check needs a network connection."
        )
    predictions = np.asarray(predictions).reshape(-1)
    theirs = metric.compute(predictions=predictions, references=np.asarray(labels).reshape(-1))
    ours = compute_metrics(task, predictions, labels)
    return {
        name: {
            "ours": value,
            "evaluate": float(theirs[name]) if name in theirs else None,
            "equal": name in theirs and abs(value - float(theirs[name])) < 1e-9,
        }
        for name, value in ours.items()
    }
