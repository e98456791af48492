"""Notebook parameters in every form papermill and people pass them; the setup's floors; plot labels."""

import pytest

from helpers.parameters import as_grid, as_list


@pytest.mark.parametrize(
    "value", [["sst2", "mrpc"], ("sst2", "mrpc"), "sst2,mrpc", " sst2 , mrpc ", '["sst2", "mrpc"]']
)
def test_lists_comma_separated_and_json_strings_give_the_same_list(value):
    assert as_list(value, "TASKS") == ["sst2", "mrpc"]


def test_items_are_converted_and_none_and_single_numbers_pass():
    assert as_list("1,8,64", "RANKS", int) == [1, 8, 64]
    assert as_list("[0.0, 0.06]", "WARMUP_RATIOS", float) == [0.0, 0.06]
    assert as_list(8, "RANKS", int) == [8]
    assert as_list(None, "RANKS", int) is None


@pytest.mark.parametrize(
    "value, message",
    [({"a": 1}, "TASKS must be a list"), ('["sst2"', "looks like a JSON list"), ("1,x", "must be a int")],
)
def test_anything_else_fails_with_a_message_naming_the_parameter(value, message):
    with pytest.raises(ValueError, match=message):
        as_list(value, "TASKS", int if message == "must be a int" else str)


def test_grids_from_dicts_and_json_objects():
    expected = {"lora": (1e-4, 1e-3), "full": (2e-5,)}
    assert as_grid({"lora": [1e-4, 1e-3], "full": [2e-5]}, "LR_GRID") == expected
    assert as_grid('{"lora": [1e-4, 1e-3], "full": [2e-5]}', "LR_GRID") == expected
    assert as_grid({"lora": "1e-4,1e-3", "full": 2e-5}, "LR_GRID") == expected
    assert as_grid(None, "LR_GRID") is None
    with pytest.raises(ValueError, match="LR_GRID must be a dict"):
        as_grid("[1e-4]", "LR_GRID")


def test_setup_reads_the_floors_from_pyproject_and_peft_works_with_transformers_5():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    from pathlib import Path

    from helpers.environment import PYPROJECT, declared_dependencies, declared_extras, required

    project = tomllib.loads(Path(PYPROJECT).read_text())["project"]
    assert declared_dependencies() == project["dependencies"]
    assert declared_extras() == project["optional-dependencies"]["extras"]
    specs = dict(required())
    assert "torch" not in " ".join(specs), "torch stays as the hosted image has it"
    assert "peft>=0.18" in specs and "transformers>=5.0" in specs, (
        "peft 0.17 imports HybridCache, which transformers 5 removed"
    )
    assert specs["scikit-learn"] == "sklearn"


def test_percent_labels_are_readable():
    from helpers.plots import percent_label

    assert [percent_label(p) for p in (100.0, 45.2, 4.51, 0.334, 0.0034)] == [
        "100%",
        "45%",
        "4.5%",
        "0.33%",
        "0.0034%",
    ]
