import pytest

from helpers.tasks import TASKS, get_task


def test_the_table_has_all_nine_glue_tasks():
    glue = sorted(
        name for name, spec in TASKS.items() if spec.dataset is None
    )  # users' datasets register rows of their own
    assert glue == sorted(["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"])


@pytest.mark.parametrize("spec", TASKS.values(), ids=lambda spec: spec.name)
def test_every_row_is_consistent(spec):
    assert spec.main_metric in spec.metrics
    assert set(spec.baselines) == set(spec.test_splits)
    for thresholds in spec.baselines.values():
        assert set(thresholds) <= set(spec.metrics)
    assert spec.num_labels == (1 if spec.name == "stsb" else len(spec.label_names))
    assert set(spec.tsv.columns) == {*spec.text_columns, "label"}


@pytest.mark.parametrize("alias", ["sst2", "SST-2", "Sst-2", "sst_2", " SST2 "])
def test_task_names_accept_any_case_and_hyphen(alias):
    assert get_task(alias).name == "sst2"


def test_official_metrics_and_baselines():
    assert get_task("cola").metrics == ("matthews_correlation",)
    assert get_task("mrpc").metrics == ("accuracy", "f1")
    assert get_task("qqp").baselines["test"] == {"f1": 0.8, "accuracy": 0.8}
    assert get_task("stsb").metrics == ("pearson", "spearmanr") and get_task("stsb").is_regression
    assert set(get_task("mnli").test_splits) == {"test_matched", "test_mismatched"}
    assert get_task("qnli").baselines["test"]["accuracy"] == 0.85
    assert get_task("mnli").label_names == ("entailment", "neutral", "contradiction")


def test_unknown_task_lists_the_valid_names():
    with pytest.raises(ValueError, match="Valid tasks: CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI, RTE, WNLI"):
        get_task("sst-5")
