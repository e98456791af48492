"""Metrics checked against values computed independently (by hand or from first principles)."""

import math
import warnings

import numpy as np
import pytest

from helpers.metrics import compute_metrics


def test_accuracy_and_f1_from_counts():
    labels = [1, 1, 1, 0, 0, 1, 0, 1]
    predictions = [1, 0, 1, 0, 1, 1, 0, 1]
    tp, fp, fn = 4, 1, 1
    expected_f1 = 2 * tp / (2 * tp + fp + fn)
    result = compute_metrics("mrpc", predictions, labels)
    assert result == pytest.approx({"accuracy": 6 / 8, "f1": expected_f1})


def test_matthews_from_the_formula():
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 1, 0, 1])
    predictions = np.array([1, 0, 1, 1, 0, 1, 0, 1, 0, 0])
    tp = np.sum((predictions == 1) & (labels == 1))
    tn = np.sum((predictions == 0) & (labels == 0))
    fp = np.sum((predictions == 1) & (labels == 0))
    fn = np.sum((predictions == 0) & (labels == 1))
    expected = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert compute_metrics("cola", predictions, labels)["matthews_correlation"] == pytest.approx(expected)


def test_logits_are_argmaxed():
    logits = np.array([[2.0, -1.0], [0.1, 0.3], [-5.0, 5.0]])
    assert compute_metrics("sst2", logits, [0, 1, 0]) == {"accuracy": pytest.approx(2 / 3)}


def test_constant_predictions_give_mcc_zero_without_warning_or_nan():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = compute_metrics("cola", np.zeros(10, dtype=int), [0, 1] * 5)
        assert result == {"matthews_correlation": 0.0}
        stsb = compute_metrics("stsb", np.full((6, 1), 2.5), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    assert stsb == {"pearson": 0.0, "spearmanr": 0.0}


def _ranks(values):
    """Average ranks (ties share the mean rank), written out independently of scipy."""
    values = np.asarray(values, dtype=float)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def test_stsb_single_output_predictions():
    labels = np.array([0.0, 1.2, 2.5, 3.1, 4.8, 5.0, 2.5])
    outputs = np.array([[0.3], [1.0], [2.2], [3.9], [4.1], [4.0], [2.2]])  # the model's (n, 1) output
    flat = outputs[:, 0]
    expected_pearson = np.corrcoef(flat, labels)[0, 1]
    expected_spearman = np.corrcoef(_ranks(flat), _ranks(labels))[0, 1]
    result = compute_metrics("stsb", outputs, labels)
    assert result["pearson"] == pytest.approx(expected_pearson)
    assert result["spearmanr"] == pytest.approx(expected_spearman)


def test_mnli_three_classes():
    logits = np.eye(3)[[0, 1, 2, 2, 1]]
    assert compute_metrics("mnli", logits, [0, 1, 2, 0, 0]) == {"accuracy": pytest.approx(3 / 5)}


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="3 predictions for 2 labels"):
        compute_metrics("rte", [0, 1, 1], [0, 1])


def test_majority_class_baseline_matches_hand_computed_values():
    from helpers.metrics import majority_class_metrics

    # MRPC-like: 7 of 10 training pairs are paraphrases, so the constant prediction is 1.
    train = [1] * 7 + [0] * 3
    test = [1, 1, 0, 1, 0, 1, 1, 0]  # 5 of 8 positive
    metrics = majority_class_metrics("mrpc", train, test)
    assert metrics["accuracy"] == pytest.approx(5 / 8)
    assert metrics["f1"] == pytest.approx(2 * (5 / 8) / (1 + 5 / 8))  # precision 5/8, recall 1
    # CoLA: a constant predictor has MCC 0; STS-B: the mean score correlates with nothing.
    assert majority_class_metrics("cola", [1, 1, 0], [0, 1, 1, 0])["matthews_correlation"] == 0.0
    assert majority_class_metrics("stsb", [1.0, 3.0], [0.5, 4.0, 2.0]) == {"pearson": 0.0, "spearmanr": 0.0}
    # The majority of *train* is used, even when the test split's majority differs.
    assert majority_class_metrics("sst2", [0, 0, 1], [1, 1, 1, 0])["accuracy"] == pytest.approx(1 / 4)
