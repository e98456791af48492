"""One home per default: a setting's default and help live beside its TrainConfig / MethodConfig field,
and the command line, the profiles, the bench and the notebooks read them from there."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import re
from pathlib import Path

import pytest

from helpers import bench, cli
from helpers.cli import TABLE_HELP, build_parser, run_options
from helpers.fields import default_of
from helpers.methods import MethodConfig
from helpers.profiles import Profile
from helpers.sweep import make_config
from helpers.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]

# The flags `train` and `sweep` have always taken, with the type of one value: none may go or change type.
FLAGS = {
    "--task": str,
    "--method": str,
    "--model": str,
    "--pooling": str,
    "--rank": int,
    "--alpha": float,
    "--lora-dropout": float,
    "--target-modules": str,
    "--bitfit-variant": str,
    "--num-virtual-tokens": int,
    "--prefix-projection": int,
    "--encoder-hidden-size": int,
    "--lr": float,
    "--batch-size": int,
    "--grad-accum": int,
    "--epochs": float,
    "--warmup-ratio": float,
    "--warmup-steps": int,
    "--weight-decay": float,
    "--max-length": int,
    "--seed": int,
    "--eval-steps": int,
    "--logging-steps": int,
    "--early-stopping-patience": int,
    "--eval-batch-size": int,
    "--recipe": str,
    "--precision": str,
    "--length-bucket-batches": int,
    "--select-on": str,
    "--validation-fraction": float,
    "--split-seed": int,
    "--max-train-samples": int,
    "--max-validation-samples": int,
    "--compile": bool,
    "--length-grouping": bool,
}


def command_help(command: str) -> str:
    """`python -m helpers <command> --help`, whitespace collapsed."""
    subparsers = next(a for a in build_parser()._actions if isinstance(a, cli.argparse._SubParsersAction))
    return " ".join(subparsers.choices[command].format_help().split())


def test_every_flag_keeps_its_name_and_type():
    options = {option.flag: option.kind for option in run_options()}
    assert {flag: options.get(flag) for flag in FLAGS} == FLAGS
    assert next(o for o in run_options() if o.dest == "target_modules").separator == ";"


def test_the_run_options_are_the_fields_with_help_text():
    documented = [f.name for f in dataclasses.fields(MethodConfig) if "help" in f.metadata]
    documented += [f.name for f in dataclasses.fields(TrainConfig) if "help" in f.metadata]
    assert sorted(option.dest for option in run_options()) == sorted(documented)
    assert len(documented) >= len(FLAGS)
    assert not {"method", "recipe_version", "data_fingerprint"} & {
        f.name for f in dataclasses.fields(TrainConfig) if "help" in f.metadata
    }, "set by the code, or a MethodConfig of its own: not a flag of TrainConfig's"


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_help_shows_every_fields_real_default(command):
    text = command_help(command)
    for option in run_options():
        if option.dest not in TABLE_HELP:
            assert re.search(r"\(default: [^)]", option.help), option.flag
            # argparse wraps at spaces and hyphens (all-MiniLM-L6-v2), depending on the terminal's width
            assert re.sub(r"\s", "", option.help) in re.sub(r"\s", "", text), option.flag


def test_help_reads_the_default_from_the_dataclass(monkeypatch):
    """Change a default in one place, the field, and --help follows."""
    monkeypatch.setattr(TrainConfig.__dataclass_fields__["batch_size"], "default", 48)
    monkeypatch.setattr(MethodConfig.__dataclass_fields__["rank"], "default", 4)
    run_options.cache_clear()
    try:
        text = command_help("train")
        assert "training batch size per device (default: 48)" in text
        assert "more capacity (default: 4)" in text
    finally:
        run_options.cache_clear()


def test_a_run_given_no_settings_is_the_dataclass_default():
    args = build_parser().parse_args(["train", "--task", "rte"])
    assert all(getattr(args, option.dest) is None for option in run_options() if option.dest != "task")
    assert make_config(cli._run_values(args)).to_dict() == TrainConfig(task="rte").to_dict()


def test_the_data_command_splits_as_a_run_does():
    args = build_parser().parse_args(["data", "--task", "rte"])
    for name in cli.DATA_FIELDS:
        assert getattr(args, name) == default_of(TrainConfig, name)


def test_profiles_and_the_bench_take_the_run_defaults():
    for name in ("max_length", "batch_size", "eval_batch_size"):
        assert default_of(Profile, name) == default_of(TrainConfig, name)
    for function in (bench.run_bench, bench.run_grid_bench):
        parameters = inspect.signature(function).parameters
        assert parameters["batch_size"].default == default_of(TrainConfig, "batch_size")
        assert parameters["max_length"].default == default_of(TrainConfig, "max_length")
        assert parameters["model"].default == default_of(TrainConfig, "model")
    args = build_parser().parse_args(["bench"])
    assert (args.batch_size, args.max_length, args.model) == (
        default_of(TrainConfig, "batch_size"),
        default_of(TrainConfig, "max_length"),
        default_of(TrainConfig, "model"),
    )


# A notebook's parameters cell holds plain values (a student reads and edits them there); where one is
# a run default, it must be the same value.
NOTEBOOK_DEFAULTS = [
    ("01_data.ipynb", "MAX_LENGTH", TrainConfig, "max_length"),
    ("03_lora.ipynb", "RANK", MethodConfig, "rank"),
    ("03_lora.ipynb", "ALPHA", MethodConfig, "alpha"),
]


@pytest.mark.parametrize("notebook, name, config_class, field", NOTEBOOK_DEFAULTS)
def test_notebook_parameters_match_the_run_defaults(notebook, name, config_class, field):
    cells = json.loads((ROOT / "notebooks" / notebook).read_text())["cells"]
    (source,) = ["".join(c["source"]) for c in cells if "parameters" in c["metadata"].get("tags", [])]
    values = {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }
    assert values[name] == default_of(config_class, field)


def test_one_module_works_out_the_project_root_and_one_names_the_default_model():
    modules = sorted((ROOT / "helpers").glob("*.py"))
    assert len(modules) > 20
    root = [m.name for m in modules if re.search(r"__file__\)\.resolve\(\)\.parent|parents\[", m.read_text())]
    assert root == ["paths.py"]
    named = [
        m.name for m in modules if re.search(r"[\"'](sentence-transformers/)?all-MiniLM-L6-v2[\"']", m.read_text())
    ]
    assert named == ["models.py"]
