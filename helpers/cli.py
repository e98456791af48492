"""The command line: `python -m helpers {data,train,sweep,bench,report} --help`."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from helpers.tasks import TASKS

TASK_HELP = "GLUE task: " + ", ".join(spec.display_name for spec in TASKS.values()) + " (any case, hyphen optional)"


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """Options that choose the data and how it is split (shared by data, train and sweep)."""
    group = parser.add_argument_group("data")
    group.add_argument("--glue-dir", default=None, help="local GLUE folder in the official layout (<dir>/<Task>/{train,dev}.tsv); default $GLUE_DIR, else the Hub")
    group.add_argument("--select-on", choices=["train_slice", "dev"], default="train_slice", help="model selection on a held-out slice of train (default, honest) or on the GLUE dev set (as papers do)")
    group.add_argument("--validation-fraction", type=float, default=0.1, help="fraction of GLUE train held out as the validation split (default 0.1)")
    group.add_argument("--split-seed", type=int, default=42, help="seed of the validation slice and of subsampling (default 42)")
    group.add_argument("--max-train-samples", type=int, default=None, help="seeded, stratified subsample of the training split")
    group.add_argument("--max-validation-samples", type=int, default=None, help="seeded, stratified subsample of the validation split")


def cmd_data(args: argparse.Namespace) -> int:
    from helpers.data import describe, load_glue

    splits = load_glue(
        args.task,
        glue_dir=args.glue_dir,
        select_on=args.select_on,
        validation_fraction=args.validation_fraction,
        split_seed=args.split_seed,
        max_train_samples=args.max_train_samples,
        max_validation_samples=args.max_validation_samples,
    )
    print(json.dumps(describe(splits, args.task), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m helpers", description="Parameter-efficient fine-tuning on GLUE.")
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="load a task and print its splits, sizes and label distribution as JSON")
    data.add_argument("--task", required=True, help=TASK_HELP)
    add_data_options(data)
    data.set_defaults(func=cmd_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
