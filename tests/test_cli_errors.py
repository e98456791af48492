"""A user's mistakes on the command line: exit code 2, a message naming the problem, no traceback, and
the results folder exactly as it was. Every case fails before any model is trained."""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import shutil

import pytest
from fake_records import fake_record

from helpers import records as records_module
from helpers.cli import join_negative_numbers, main
from helpers.records import write_record

TRAIN = ["train", "--task", "sst2", "--glue-dir", "{glue}", "--results-dir", "{results}", "--quiet"]
SWEEP = ["sweep", "--task", "sst2", "--glue-dir", "{glue}", "--results-dir", "{results}", "--quiet"]
SST2_TEXT = "sentence\tlabel\nthe café was good .\t1\nthe film was bad .\t0\n"


def _read_only(monkeypatch, paths):
    """A read-only results folder (root ignores permissions, so the write itself fails as on a read-only mount)."""
    real = records_module.tempfile.mkstemp

    def refuse(*args, dir=None, **kwargs):
        if dir is not None and os.path.realpath(dir) == os.path.realpath(paths["results"]):
            raise OSError(errno.EROFS, "Read-only file system", str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(records_module.tempfile, "mkstemp", refuse)


def _model_folder(paths):
    """A folder that is not a model: a few files, no config.json."""
    folder = paths["tmp"] / "not-a-model"
    folder.mkdir(exist_ok=True)
    (folder / "notes.txt").write_text("weights are elsewhere")
    return str(folder)


# (id, command line, what the message must say)
CASES = [
    # non-finite and out-of-range numbers
    ("lr inf", TRAIN + ["--lr", "inf"], "lr must be positive and finite, got inf"),
    ("lr nan", TRAIN + ["--lr", "nan"], "lr must be positive and finite, got nan"),
    ("lr negative", TRAIN + ["--lr", "-1e-3"], "lr must be positive and finite, got -0.001"),
    ("lr zero", TRAIN + ["--lr", "0"], "lr must be positive and finite, got 0"),
    ("lr text", TRAIN + ["--lr", "fast"], "argument --lr: invalid float value: 'fast'"),
    ("epochs inf", TRAIN + ["--epochs", "inf"], "epochs must be positive and finite, got inf"),
    ("epochs nan", TRAIN + ["--epochs", "nan"], "epochs must be positive and finite, got nan"),
    ("epochs zero", TRAIN + ["--epochs", "0"], "epochs must be positive and finite, got 0"),
    ("warmup ratio", TRAIN + ["--warmup-ratio", "1.5"], "warmup_ratio must be in [0, 1), got 1.5"),
    ("warmup ratio nan", TRAIN + ["--warmup-ratio", "nan"], "warmup_ratio must be in [0, 1), got nan"),
    ("warmup steps", TRAIN + ["--warmup-steps", "-1"], "warmup_steps must be a whole number of steps >= 0"),
    ("weight decay", TRAIN + ["--weight-decay", "-0.1"], "weight_decay must be >= 0 and finite, got -0.1"),
    ("weight decay inf", TRAIN + ["--weight-decay", "inf"], "weight_decay must be >= 0 and finite, got inf"),
    ("alpha inf", TRAIN + ["--method", "lora", "--alpha", "inf"], "LoRA alpha must be > 0 and finite, got inf"),
    ("lora dropout", TRAIN + ["--lora-dropout", "1"], "LoRA dropout must be in [0, 1), got 1.0"),
    ("lora dropout nan", TRAIN + ["--lora-dropout", "nan"], "LoRA dropout must be in [0, 1), got nan"),
    ("rank zero", TRAIN + ["--rank", "0"], "LoRA rank must be a positive integer, got 0"),
    ("rank negative", TRAIN + ["--rank", "-4"], "LoRA rank must be a positive integer, got -4"),
    ("rank fraction", TRAIN + ["--rank", "2.5"], "argument --rank: invalid int value: '2.5'"),
    ("batch size", TRAIN + ["--batch-size", "0"], "batch_size must be positive, got 0"),
    ("grad accum", TRAIN + ["--grad-accum", "0"], "grad_accum must be >= 1, got 0"),
    ("eval batch size", TRAIN + ["--eval-batch-size", "0"], "eval_batch_size must be positive, got 0"),
    ("eval steps", TRAIN + ["--eval-steps", "0"], "eval_steps must be positive, got 0"),
    ("logging steps", TRAIN + ["--logging-steps", "-5"], "logging_steps must be positive, got -5"),
    ("patience", TRAIN + ["--early-stopping-patience", "-1"], "early_stopping_patience must be >= 0"),
    ("seed negative", TRAIN + ["--seed", "-1"], "seed must be in [0, 2**32), got -1"),
    ("split seed huge", TRAIN + ["--split-seed", str(2**40)], "split_seed must be in [0, 2**32)"),
    ("validation fraction", TRAIN + ["--validation-fraction", "1.5"], "validation_fraction must be in (0, 1), got 1.5"),
    (
        "validation fraction nan",
        TRAIN + ["--validation-fraction", "nan"],
        "validation_fraction must be in (0, 1), got nan",
    ),
    (
        "max train samples",
        TRAIN + ["--max-train-samples", "0"],
        "max_train_samples must be a positive number of examples, got 0",
    ),
    (
        "max validation samples",
        TRAIN + ["--max-validation-samples", "-5"],
        "max_validation_samples must be a positive number",
    ),
    ("length buckets", TRAIN + ["--length-bucket-batches", "0"], "length_bucket_batches must be >= 1, got 0"),
    (
        "virtual tokens",
        TRAIN + ["--method", "prompt", "--num-virtual-tokens", "0"],
        "num_virtual_tokens must be a positive integer, got 0",
    ),
    (
        "prefix projection",
        TRAIN + ["--method", "prefix", "--prefix-projection", "-1"],
        "prefix_projection must be 0 (off) or a positive width",
    ),
    (
        "encoder width",
        TRAIN + ["--method", "ptuning", "--encoder-hidden-size", "0"],
        "encoder_hidden_size must be positive, got 0",
    ),
    # names and choices
    ("task", TRAIN[:2] + ["imdb"] + TRAIN[3:], "imdb"),
    ("method", TRAIN + ["--method", "adapters"], "Unknown method 'adapters'. Valid methods: head, bitfit, lora"),
    (
        "bitfit variant",
        TRAIN + ["--method", "bitfit", "--bitfit-variant", "none"],
        "bitfit_variant must be one of ('all', 'sparse'), got 'none'",
    ),
    ("pooling", TRAIN + ["--pooling", "max"], "pooling must be one of ('model', 'mean'), got 'max'"),
    ("recipe", TRAIN + ["--recipe", "turbo"], "recipe must be one of ('fast', 'baseline'), got 'turbo'"),
    (
        "precision",
        TRAIN + ["--precision", "fp8"],
        "precision must be one of ('auto', 'fp32', 'bf16', 'fp16'), got 'fp8'",
    ),
    ("select on", TRAIN + ["--select-on", "test"], "select_on must be one of ('train_slice', 'dev'), got 'test'"),
    ("target modules empty", TRAIN + ["--target-modules", ","], "target_modules ',' names no layers"),
    ("unknown option", TRAIN + ["--learning-rate", "1e-3"], "unrecognized arguments: --learning-rate"),
    # the model
    (
        "max length over the model",
        TRAIN + ["--max-length", "1024"],
        "max_length 1024 is more than the model 'all-MiniLM-L6-v2' takes: it has 512 positions",
    ),
    (
        "max length with virtual tokens",
        TRAIN + ["--method", "prompt", "--max-length", "500"],
        "(20 of them taken by prompt's virtual tokens). Use a max_length of at most 492",
    ),
    ("max length zero", TRAIN + ["--max-length", "0"], "max_length must be positive, got 0"),
    (
        "model folder without config",
        TRAIN + ["--model", "{not_a_model}"],
        "holds no config.json, so it is not a saved model",
    ),
    (
        "model missing",
        TRAIN + ["--model", "{tmp}/no-such-model"],
        "Could not load the model '{tmp}/no-such-model': there is no folder",
    ),
    # the data
    (
        "glue dir missing",
        ["train", "--task", "sst2", "--glue-dir", "{tmp}/nowhere", "--results-dir", "{results}"],
        "GLUE folder not found",
    ),
    (
        "glue file utf-16",
        TRAIN[:4] + ["{glue_utf16}"] + TRAIN[5:],
        "is UTF-16 text, not the UTF-8 text of the official GLUE files; convert it",
    ),
    (
        "glue file latin-1",
        TRAIN[:4] + ["{glue_latin1}"] + TRAIN[5:],
        "is not UTF-8 text: line 2 holds the byte b'\\xe9'",
    ),
    (
        "glue file gzipped",
        TRAIN[:4] + ["{glue_gzip}"] + TRAIN[5:],
        "is gzip-compressed, not the UTF-8 text of the official GLUE files; decompress it",
    ),
    ("glue file binary", TRAIN[:4] + ["{glue_binary}"] + TRAIN[5:], "looks like a binary file"),
    ("data command utf-16", ["data", "--task", "sst2", "--glue-dir", "{glue_utf16}"], "train.tsv is UTF-16 text"),
    (
        "data command fraction",
        ["data", "--task", "sst2", "--glue-dir", "{glue}", "--validation-fraction", "nan"],
        "validation_fraction must be in (0, 1), got nan",
    ),
    # the results folder
    ("results dir is a file", TRAIN[:6] + ["{results}/existing.json"] + TRAIN[7:], "is a file, not a folder"),
    (
        "results dir under a file",
        TRAIN[:6] + ["{results}/existing.json/sub"] + TRAIN[7:],
        "Cannot write run records to",
    ),
    (
        "results dir read-only",
        TRAIN,
        "Cannot write run records to {results}: Read-only file system. Nothing was trained",
    ),
    # sweeps: every config is checked before the first run trains
    ("sweep seed not a number", SWEEP + ["--seed", "0,a"], "--seed: 'a' is not a whole number (in '0,a')"),
    ("sweep seed empty", SWEEP + ["--seed", ","], "--seed ',' lists no values"),
    ("sweep lr inf", SWEEP + ["--lr", "1e-3,inf"], "lr must be positive and finite, got inf"),
    ("sweep lr negative", SWEEP + ["--lr", "-1e-3,1e-3"], "lr must be positive and finite, got -0.001"),
    ("sweep rank", SWEEP + ["--method", "lora", "--rank", "4,x"], "--rank: 'x' is not a whole number"),
    ("sweep max length", SWEEP + ["--max-length", "128,1024"], "max_length 1024 is more than the model"),
    ("sweep target modules", SWEEP + ["--target-modules", ";"], "--target-modules ';' lists no values"),
    ("sweep task", SWEEP[:2] + ["sst2,imdb"] + SWEEP[3:], "imdb"),
    (
        "sweep results dir read-only",
        SWEEP + ["--seed", "0,1"],
        "Cannot write run records to {results}: Read-only file system",
    ),
    # reading records
    (
        "report of an empty folder",
        ["report", "--results-dir", "{tmp}/empty", "--figures-dir", "{tmp}/figures", "--report", "{tmp}/report.md"],
        "No run records in",
    ),
]
SETUP = {"results dir read-only": _read_only, "sweep results dir read-only": _read_only}


@pytest.fixture(scope="module")
def paths(glue_dir, tmp_path_factory):
    """The data and results folders the cases use (built once)."""
    tmp = tmp_path_factory.mktemp("cli-errors")
    bad = {
        "glue_utf16": SST2_TEXT.encode("utf-16"),
        "glue_latin1": SST2_TEXT.encode("latin-1"),
        "glue_gzip": gzip.compress(SST2_TEXT.encode()),
        "glue_binary": bytes(range(256)) * 8,
    }
    found = {"glue": str(glue_dir), "tmp": tmp}
    for name, content in bad.items():
        folder = tmp / name / "SST-2"
        folder.mkdir(parents=True)
        (folder / "train.tsv").write_bytes(content)
        shutil.copy(glue_dir / "SST-2" / "dev.tsv", folder / "dev.tsv")
        found[name] = str(tmp / name)
    (tmp / "empty").mkdir()
    return found


def snapshot(folder) -> dict[str, str]:
    """Every file and folder under `folder` (hidden ones too), with the hash of each file's content."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        for path in sorted(folder.rglob("*"))
    }


def run_cli(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exit_:  # argparse's own errors
        return exit_.code


def test_there_are_at_least_forty_cases():
    assert len(CASES) >= 40 and len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize("name, argv, message", CASES, ids=[case[0] for case in CASES])
def test_a_mistake_exits_2_with_a_message_and_changes_nothing(
    name, argv, message, paths, tmp_path, monkeypatch, capsys, caplog
):
    results = tmp_path / "results"
    write_record(fake_record("sst2", "lora", 0, 0.8), results)
    (results / "existing.json").write_text("{}")
    values = {**paths, "results": str(results), "tmp": str(paths["tmp"])}
    if "{not_a_model}" in " ".join(argv):
        values["not_a_model"] = _model_folder(paths)
    argv = [arg.format(**values) for arg in argv]
    if name in SETUP:
        SETUP[name](monkeypatch, values)
    monkeypatch.setattr("helpers.training._make_trainer", lambda *a, **k: pytest.fail("must fail before training"))
    before = snapshot(results)

    code = run_cli(argv)

    captured = capsys.readouterr()
    output = captured.out + captured.err + caplog.text
    assert code == 2, output[-2000:]
    assert message.format(**values) in captured.err, captured.err[-2000:]
    assert "Traceback" not in output
    assert snapshot(results) == before, "the results folder is unchanged"


def test_negative_numbers_reach_the_option():
    assert join_negative_numbers(["train", "--lr", "-1e-3", "--seed", "-1,2", "--task", "-x"]) == [
        "train",
        "--lr=-1e-3",
        "--seed=-1,2",
        "--task",
        "-x",
    ]
