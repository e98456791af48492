"""The command line: `python -m helpers {data,train,sweep,icl,bench,report} --help`."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import json
import logging
import os
import sys
import typing
from pathlib import Path

from helpers.fields import default_of
from helpers.paths import BENCH_PATH, FIGURES, PROJECT_ROOT, REPORT, RESULTS
from helpers.tasks import TASKS

TASK_HELP = "GLUE task: " + ", ".join(spec.display_name for spec in TASKS.values()) + " (any case, hyphen optional)"


def cmd_data(args: argparse.Namespace) -> int:
    from helpers.data import describe, load_glue

    args.task = _task_name(args, args.task)
    splits = load_glue(
        args.task,
        glue_dir=args.glue_dir,
        select_on=args.select_on,
        validation_fraction=args.validation_fraction,
        split_seed=args.split_seed,
        max_train_samples=args.max_train_samples,
        max_validation_samples=args.max_validation_samples,
    )
    summary = describe(splits, args.task)
    if args.overlap:
        from helpers.data import split_overlap

        summary["overlap_with_train"] = split_overlap(splits, args.task, seed=args.split_seed)
        if args.save_overlap:
            from helpers.data import save_split_overlap

            path = save_split_overlap(args.save_overlap, args.task, summary["overlap_with_train"], summary["source"])
            print(f"saved to {path}", file=sys.stderr)
    print(json.dumps(summary, indent=2))
    return 0


def method_help() -> str:
    """--method's help, from the method registry: every method in display order, the default, what one needs."""
    from helpers.methods import REGISTRY, MethodConfig

    return ", ".join(
        name + (" (default)" if name == MethodConfig.method else "") + (f" (needs {spec.needs})" if spec.needs else "")
        for name, spec in REGISTRY.items()
    )


def lr_help() -> str:
    """--lr's help, with each method's default rate from the method registry."""
    from helpers.methods import REGISTRY

    rates = ", ".join(f"{name} {spec.default_lr:g}" for name, spec in REGISTRY.items())
    return f"peak learning rate (default: per method: {rates})"


# Help for the run settings whose choices or defaults come from a table rather than from the field (the
# task table, the method names, the per-method learning rates). Every other run setting's help and
# default are read from its TrainConfig / MethodConfig field.
TABLE_HELP = {
    "task": TASK_HELP,
    "method": lambda: method_help(),  # called when a parser is built: the registry imports torch
    "lr": lambda: lr_help(),
}


@dataclasses.dataclass(frozen=True)
class RunOption:
    """One setting of a run on the command line, made from its config field."""

    flag: str  # --batch-size
    dest: str  # the field: batch_size
    kind: type  # what one value parses as; bool: a switch (--compile / --no-compile), given once even in a sweep
    help: str  # the field's help and its real default
    separator: str = ","  # between a sweep's values; ";" where one value is itself a comma list


@functools.cache
def run_options() -> tuple[RunOption, ...]:
    """The settings of a run, shared by `train` (one value) and `sweep` (lists): every TrainConfig field
    with help text, in declaration order, with MethodConfig's fields in the place of `method`."""
    from helpers.methods import MethodConfig
    from helpers.training import TrainConfig

    options = []
    for field in dataclasses.fields(TrainConfig):
        if field.name == "method":
            options += [_run_option(MethodConfig, f) for f in dataclasses.fields(MethodConfig) if "help" in f.metadata]
        elif "help" in field.metadata:
            options.append(_run_option(TrainConfig, field))
    return tuple(options)


def _run_option(config_class, field: dataclasses.Field) -> RunOption:
    hint = typing.get_type_hints(config_class)[field.name]
    kind = next((k for k in typing.get_args(hint) if k is not type(None)), hint)  # `int | None` -> int
    kind = typing.get_origin(kind) or kind
    return RunOption(
        flag="--" + field.name.replace("_", "-"),
        dest=field.name,
        kind=str if kind is tuple else kind,  # a tuple of names is given as one comma list
        help=_table_help(field.name) or f"{field.metadata['help']} (default: {_default_text(config_class, field)})",
        separator=";" if kind is tuple else ",",
    )


def _table_help(name: str) -> str | None:
    text = TABLE_HELP.get(name)
    return text() if callable(text) else text


def _default_text(config_class, field: dataclasses.Field) -> str:
    """The field's default as --help shows it: what None means where the field says, else the value."""
    if "default_help" in field.metadata:
        return field.metadata["default_help"]
    value = default_of(config_class, field.name)
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


DATA_FIELDS = ("select_on", "validation_fraction", "split_seed", "max_train_samples", "max_validation_samples")


def add_run_options(parser: argparse.ArgumentParser, lists: bool) -> None:
    group = parser.add_argument_group("run settings" + (" (comma-separated lists form a grid)" if lists else ""))
    for option in run_options():
        if option.kind is bool:  # None when not given, so the field's default applies
            group.add_argument(
                option.flag, dest=option.dest, action=argparse.BooleanOptionalAction, default=None, help=option.help
            )
            continue
        group.add_argument(
            option.flag,
            dest=option.dest,
            type=str if lists else option.kind,
            default=None,  # the field's default applies
            required=option.dest == "task",
            help=option.help
            + (f"; alternatives separated by {option.separator!r}" if lists and option.separator != "," else ""),
        )
    add_dataset_options(parser)
    output = parser.add_argument_group("data and output")
    output.add_argument(
        "--glue-dir", default=None, help="local GLUE folder in the official layout; default $GLUE_DIR, else the Hub"
    )
    output.add_argument("--results-dir", default=None, help=f"where run records go (default {RESULTS}/)")
    output.add_argument("--force", action="store_true", help="train again even if a record for this config exists")
    output.add_argument(
        "--save-adapter", action="store_true", help="also save the trained weights (adapter + head) as safetensors"
    )
    output.add_argument("--quiet", action="store_true", help="no progress bars or per-run messages")
    output.add_argument(
        "--report-to",
        default=None,
        help="Trainer's live view, e.g. tensorboard (logs in <results-dir>/tensorboard/), "
        "wandb, or any other integration that is installed; default: none",
    )


def add_dataset_options(parser: argparse.ArgumentParser) -> None:
    from helpers.datasets_spec import DatasetSpec

    group = parser.add_argument_group("your own dataset (instead of a GLUE task: --task FILE|FOLDER|hub:NAME[/CONFIG])")
    group.add_argument(
        "--text-columns",
        default=None,
        help="the text column, or two comma-separated for pairs "
        f"(default: {','.join(default_of(DatasetSpec, 'text_columns'))})",
    )
    group.add_argument(
        "--label-column",
        default=None,
        help=f"the label column (default: {default_of(DatasetSpec, 'label_column')}); "
        "whole numbers or words: classes; fractions: regression",
    )
    group.add_argument(
        "--test-fraction",
        type=float,
        default=None,
        help="held out as the test split when there is no test/validation file "
        f"(default {default_of(DatasetSpec, 'test_fraction')})",
    )


def _task_name(args: argparse.Namespace, task: str) -> str:
    """A GLUE task name as given; a file, folder or hub: dataset registered in the task table, by its row's name."""
    from helpers.datasets_spec import register_dataset, spec_from_args

    spec = spec_from_args(task, args.text_columns, args.label_column, args.test_fraction)
    return task if spec is None else register_dataset(spec).name


def _run_values(args: argparse.Namespace) -> dict:
    """The run settings given on the command line (switches included), by TrainConfig/MethodConfig field."""
    dests = [option.dest for option in run_options()]
    return {dest: getattr(args, dest) for dest in dests if getattr(args, dest) is not None}


def _output_kwargs(args: argparse.Namespace) -> dict:
    from helpers.paths import RESULTS_DIR

    return {
        "glue_dir": args.glue_dir,
        "results_dir": args.results_dir or RESULTS_DIR,
        "force": args.force,
        "save_adapter": args.save_adapter,
        "report_to": args.report_to,
    }


def cmd_train(args: argparse.Namespace) -> int:
    from helpers.sweep import make_config
    from helpers.training import train

    values = _run_values(args)
    values["task"] = _task_name(args, values["task"])
    config = make_config(values)
    record = train(config, quiet=args.quiet, **_output_kwargs(args))
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, one summary
        return 0
    print(
        json.dumps(
            {
                "run_id": record["run_id"],
                "params": record["params"],
                "best": record["best"],
                "test": record["test"],
                "timing": record["timing"],
            },
            indent=2,
        )
    )
    return 0


def parse_list(flag: str, kind: type, text: str, separator: str = ",") -> list:
    """The values of one sweep option (`--seed 0,1,2`); a value that is not of the option's type, or a
    list with no values at all, is an error naming the option."""
    items = [item.strip() for item in text.split(separator) if item.strip()]
    if not items:
        raise ValueError(f"{flag} {text!r} lists no values; give one or more, separated by {separator!r}.")
    values = []
    for item in items:
        try:
            values.append(kind(item))
        except ValueError:
            expected = {int: "a whole number", float: "a number"}.get(kind, kind.__name__)
            raise ValueError(f"{flag}: {item!r} is not {expected} (in {text!r}).") from None
    return values


def cmd_sweep(args: argparse.Namespace) -> int:
    from helpers.sweep import expand_grid, parse_shard, run_sweep, shard_of

    options = {option.dest: option for option in run_options()}
    grid = {}
    for dest, value in _run_values(args).items():
        option = options[dest]
        if option.kind is bool:  # a switch: one value for the whole grid
            grid[dest] = [value]
            continue
        grid[dest] = parse_list(option.flag, option.kind, value, separator=option.separator)
    grid["task"] = [_task_name(args, task) for task in grid["task"]]
    configs = expand_grid(grid)
    shard = parse_shard(args.shard)
    print(
        f"{len(configs)} runs in the grid"
        + (f"; shard {shard[0]}/{shard[1]}: {len(shard_of(configs, shard))} of them." if shard else ".")
    )
    records = run_sweep(
        configs,
        progress=not args.quiet,
        workers=args.workers,
        threads=args.threads,
        shard=shard,
        **_output_kwargs(args),
    )
    for record in records:
        task = record["config"]["task"]
        metrics = ", ".join(
            f"{k}={v:.4f}" if v is not None else f"{k}=null" for k, v in record["test"]["metrics"].items()
        )
        print(f"{record['run_id']:<60} {task:<6} {metrics}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from helpers.bench import BENCH_DIR, markdown_table, run_bench, run_step_ablation

    if args.grid:
        return _cmd_grid_bench(args)
    if args.steps:
        run_step_ablation(
            methods=tuple(m.strip() for m in args.methods.split(",")),
            out_dir=args.out_dir or BENCH_DIR,
            model=args.model,
        )
        print((Path(args.out_dir or BENCH_DIR) / "step_ablation.md").read_text())
        return 0

    result = run_bench(
        samples=_parse_samples(args.samples),
        methods=tuple(m.strip() for m in args.methods.split(",")),
        seeds=tuple(int(s) for s in args.seeds.split(",")),
        epochs=args.epochs,
        batch_size=args.batch_size,
        max_length=args.max_length,
        validation_samples=args.validation_samples,
        project_precision=args.project_precision,
        model=args.model,
        glue_dir=args.glue_dir,
        out_dir=args.out_dir or BENCH_DIR,
        name=args.name,
        lr=args.lr,
        compile=args.project_compile,
        progress=not args.quiet,
    )
    print(markdown_table(result))
    return 0


def _parse_samples(text: str) -> dict[str, int]:
    samples = {}
    for item in text.split(","):
        task, _, count = item.partition("=")
        if not count.isdigit():
            raise ValueError(f"--samples takes task=count pairs like sst2=2000,rte=600; got {item!r}.")
        samples[task.strip()] = int(count)
    return samples


def _cmd_grid_bench(args: argparse.Namespace) -> int:
    from helpers.bench import BENCH_DIR, grid_markdown_table, parse_layouts, run_grid_bench

    result = run_grid_bench(
        samples=_parse_samples(args.grid_samples),
        methods=tuple(m.strip() for m in args.grid_methods.split(",")),
        seeds=tuple(int(s) for s in args.grid_seeds.split(",")),
        layouts=parse_layouts(args.layouts),
        repeats=args.repeats,
        epochs=args.epochs,
        batch_size=args.batch_size,
        max_length=args.max_length,
        validation_samples=args.validation_samples,
        model=args.model,
        glue_dir=args.glue_dir,
        out_dir=args.out_dir or BENCH_DIR / "grid",
        name="grid" if args.name == "bench" else args.name,
        progress=not args.quiet,
    )
    print(grid_markdown_table(result))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from helpers.paths import PROJECT_ROOT, output_paths
    from helpers.report import write_report

    results_dir, figures_dir, report_path = output_paths(
        PROJECT_ROOT, args.profile, args.results_dir, args.figures_dir, args.report
    )
    text = write_report(
        results_dir, figures_dir, report_path, args.profile, bench_path=args.bench, llm_dir=args.llm_dir
    )
    print(f"wrote {report_path} ({len(text.splitlines())} lines) and figures in {figures_dir}")
    return 0


def cmd_notebooks(args: argparse.Namespace) -> int:
    from helpers.notebooks import run_notebooks

    seconds = run_notebooks(
        args.profile,
        in_place=args.in_place,
        output_dir=args.output_dir,
        results_dir=args.results_dir,
        figures_dir=args.figures_dir,
        report_path=args.report,
        glue_dir=args.glue_dir,
        tasks=args.tasks.split(",") if args.tasks else None,
        model=args.model,
        llm=args.llm,
        only=args.only.split(",") if args.only else None,
        report_to=args.report_to,
    )
    print(
        "wall time: "
        + ", ".join(f"{name} {s / 60:.1f} min" for name, s in seconds.items())
        + f"; total {sum(seconds.values()) / 60:.1f} min"
    )
    return 0


def cmd_icl(args: argparse.Namespace) -> int:
    from helpers.icl import icl_grid, run_icl_grid
    from helpers.paths import RESULTS_DIR

    ints = lambda text: [int(item) for item in text.split(",") if item.strip()]  # noqa: E731
    configs = icl_grid(
        _task_name(args, args.task),
        args.model,
        ints(args.shots),
        [s.strip() for s in args.scoring.split(",") if s.strip()],
        ints(args.seed),
        chat_template=args.chat_template,
        max_new_tokens=args.max_new_tokens,
        max_eval_samples=args.max_eval_samples,
        split_seed=args.split_seed,
    )
    print(f"{len(configs)} ICL runs.")
    run_icl_grid(
        configs,
        glue_dir=args.glue_dir,
        results_dir=args.results_dir or RESULTS_DIR,
        force=args.force,
        batch_size=args.batch_size,
        quiet=args.quiet,
    )
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from helpers.predict import format_predictions, load_trained_model, predict_file, predict_texts

    if (args.text is None) == (args.file is None):
        raise ValueError("Give either --text (with --text-pair for pair tasks) or --file.")
    model, tokenizer, task, record = load_trained_model(args.run)
    from helpers.training import TrainConfig

    max_length = record["config"].get("max_length") or default_of(TrainConfig, "max_length")
    if args.file is not None:
        predictions = predict_file(model, tokenizer, task, args.file, max_length)
    else:
        if task.is_pair != (args.text_pair is not None):
            raise ValueError(
                f"{task.display_name} reads "
                f"{'two texts: give --text and --text-pair' if task.is_pair else 'one text: drop --text-pair'}."
            )
        predictions = predict_texts(
            model, tokenizer, task, [args.text], [args.text_pair] if args.text_pair is not None else None, max_length
        )
    print(format_predictions(predictions))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from helpers.export import export_run

    info = export_run(args.run, args.out, results_dir=args.results_dir, force=args.force)
    labels = info["labels"] if isinstance(info["labels"], str) else ", ".join(info["labels"])
    print(
        f"wrote {info['folder']}: {info['method']['method']} run {info['run_id']}"
        f"{' (adapter merged into the base)' if info['merged'] else ''}, labels: {labels}.\n"
        f"Load it with AutoModelForSequenceClassification.from_pretrained({info['folder']!r}) (no peft needed)."
    )
    return 0


def cmd_max_batch(args: argparse.Namespace) -> int:
    from helpers.max_batch import find_max_batch, format_table, limit_bytes

    limit_bytes(args.memory_limit_gib)  # a bad limit is an error before any data or model is read
    result = find_max_batch(
        _task_name(args, args.task),
        model=args.model,
        method=args.method,
        max_length=args.max_length,
        memory_limit_gib=args.memory_limit_gib,
        precision=args.precision,
        start=args.start_batch_size,
        cap=args.batch_size_cap,
    )
    print(format_table(result))
    print(json.dumps(result, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The `python -m helpers` parser: one subcommand each, built in the order `--help` lists them."""
    parser = argparse.ArgumentParser(prog="python -m helpers", description="Parameter-efficient fine-tuning on GLUE.")
    commands = parser.add_subparsers(dest="command", required=True)
    for add_command in (
        _add_data_parser,
        _add_train_parser,
        _add_sweep_parser,
        _add_bench_parser,
        _add_icl_parser,
        _add_predict_parser,
        _add_export_parser,
        _add_max_batch_parser,
        _add_report_parser,
        _add_notebooks_parser,
    ):
        add_command(commands)
    return parser


class _DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Appends each option's default to its help, unless the help text already names it."""

    def _get_help_string(self, action):
        return action.help if "default" in (action.help or "") else super()._get_help_string(action)


def _add_data_parser(commands: argparse._SubParsersAction) -> None:
    from helpers.training import TrainConfig

    data = commands.add_parser("data", help="load a task and print its splits, sizes and label distribution as JSON")
    data.add_argument("--task", required=True, help=TASK_HELP)
    data.add_argument(
        "--glue-dir",
        default=None,
        help="local GLUE folder in the official layout (<dir>/<Task>/{train,dev}.tsv); default $GLUE_DIR, else the Hub",
    )
    for option in run_options():  # what a run with these settings would train and select on
        if option.dest in DATA_FIELDS:
            data.add_argument(
                option.flag,
                dest=option.dest,
                type=option.kind,
                default=default_of(TrainConfig, option.dest),
                help=option.help,
            )
    data.add_argument(
        "--overlap",
        action="store_true",
        help="also print, per evaluation split, the share of examples whose text a training example already holds "
        "(explains SST-2's validation-test gap; seconds on SST-2), and each label's share",
    )
    data.add_argument(
        "--save-overlap",
        metavar="RESULTS_DIR",
        default=None,
        help="with --overlap: also save it in RESULTS_DIR/meta/split_overlap.json, where the report reads it "
        "(notebook 01 saves its tasks' there)",
    )
    add_dataset_options(data)
    data.set_defaults(func=cmd_data)


def _add_train_parser(commands: argparse._SubParsersAction) -> None:
    # No ArgumentDefaultsHelpFormatter here: the run options default to None (meaning "TrainConfig's
    # default"), so it would print "(default: None)" beside help texts that give the real default.
    train = commands.add_parser("train", help="train and evaluate one run; writes its record to results/")
    add_run_options(train, lists=False)
    train.set_defaults(func=cmd_train)


def _add_sweep_parser(commands: argparse._SubParsersAction) -> None:
    from helpers.sweep import DEFAULT_WORKERS

    sweep = commands.add_parser("sweep", help="train a grid of runs (comma lists), skipping runs that have records")
    add_run_options(sweep, lists=True)
    parallel = sweep.add_argument_group(
        "parallel runs (every run is claimed by a lock file beside its record, so sweeps sharing a results folder "
        "split the grid)"
    )
    parallel.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_WORKERS,
        help=f"processes training runs at once on this machine (default {DEFAULT_WORKERS})",
    )
    parallel.add_argument(
        "--threads", type=int, default=None, help="torch threads per worker (default: usable cores / workers)"
    )
    parallel.add_argument(
        "--shard",
        default=None,
        help="i/n: train only shard i (0-based) of n, every n-th run of the grid sorted by run id; "
        "for job arrays, e.g. --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT (default: the whole grid)",
    )
    sweep.set_defaults(func=cmd_sweep)


def _defaults(function) -> dict:
    """A function's keyword defaults, by parameter name."""
    return {name: p.default for name, p in inspect.signature(function).parameters.items()}


def _pairs(samples: dict[str, int]) -> str:
    """Training-subset sizes as the bench's options take them: task=count pairs."""
    return ",".join(f"{task}={count}" for task, count in samples.items())


def _add_bench_parser(commands: argparse._SubParsersAction) -> None:
    from helpers import bench as bench_module

    # The bench's defaults are its functions' (run_bench, run_grid_bench), which take the run's from TrainConfig.
    bench_defaults = _defaults(bench_module.run_bench)
    bench = commands.add_parser(
        "bench",
        help="time the usual notebook recipe against this project's, side by side",
        formatter_class=_DefaultsHelp,
    )
    bench.add_argument(
        "--samples",
        default=_pairs(bench_module.DEFAULT_SAMPLES),
        help="tasks and training-subset sizes, task=count pairs",
    )
    bench.add_argument("--methods", default=",".join(bench_defaults["methods"]), help="methods to time")
    bench.add_argument(
        "--seeds",
        default=",".join(map(str, bench_defaults["seeds"])),
        help="seeds (several give mean ± std of the dev metric)",
    )
    bench.add_argument("--epochs", type=float, default=bench_defaults["epochs"])
    bench.add_argument("--batch-size", type=int, default=bench_defaults["batch_size"])
    bench.add_argument(
        "--max-length",
        type=int,
        default=bench_defaults["max_length"],
        help="the baseline pads every example to this length",
    )
    bench.add_argument(
        "--validation-samples",
        type=int,
        default=bench_defaults["validation_samples"],
        help="validation subset evaluated once per epoch",
    )
    bench.add_argument(
        "--project-precision",
        default=bench_defaults["project_precision"],
        help="auto: bf16 where the CPU/GPU supports it, else fp32",
    )
    bench.add_argument("--lr", type=float, default=None, help="learning rate (default: per method)")
    bench.add_argument(
        "--project-compile",
        action="store_true",
        help="the project's runs use torch.compile over lengths padded to multiples of "
        f"{bench_module.COMPILE_PAD_MULTIPLE} (compile time counted)",
    )
    bench.add_argument("--model", default=bench_defaults["model"])
    bench.add_argument("--glue-dir", default=None, help="local GLUE folder; default $GLUE_DIR, else the Hub")
    bench.add_argument("--out-dir", default=None, help=f"default {bench_module.BENCH_DIR.relative_to(PROJECT_ROOT)}")
    bench.add_argument("--name", default=bench_defaults["name"], help="file name of the JSON and markdown summary")
    bench.add_argument(
        "--steps",
        action="store_true",
        help="instead: time one training step per speed-up of the fast recipe (step_ablation.json/.md)",
    )
    _add_grid_bench_options(bench)
    bench.add_argument("--quiet", action="store_true")
    bench.set_defaults(func=cmd_bench)


def _add_grid_bench_options(bench: argparse.ArgumentParser) -> None:
    """`bench --grid`'s options, defaulting to run_grid_bench's."""
    from helpers import bench as bench_module

    grid_defaults = _defaults(bench_module.run_grid_bench)
    grid = bench.add_argument_group(
        "grid throughput (--grid): one fixed grid swept in each workers x threads layout, side by side"
    )
    grid.add_argument(
        "--grid",
        action="store_true",
        help="instead: runs per hour of a sweep in each --layouts "
        f"(grid.json/.md in {grid_defaults['out_dir'].relative_to(PROJECT_ROOT)})",
    )
    grid.add_argument(
        "--layouts",
        default=",".join(f"{workers}x{threads}" for workers, threads in grid_defaults["layouts"]),
        help="workers x torch threads per worker; ratios are against the first",
    )
    grid.add_argument(
        "--grid-samples",
        default=_pairs(bench_module.GRID_SAMPLES),
        help="tasks and training-subset size (one size for all)",
    )
    grid.add_argument("--grid-methods", default=",".join(grid_defaults["methods"]))
    grid.add_argument("--grid-seeds", default=",".join(map(str, grid_defaults["seeds"])))
    grid.add_argument(
        "--repeats",
        type=int,
        default=grid_defaults["repeats"],
        help="sweeps per layout; the order alternates (A B, B A, ...)",
    )


def _add_icl_parser(commands: argparse._SubParsersAction) -> None:
    from helpers.icl import SCORINGS, IclConfig, run_icl

    icl = commands.add_parser(
        "icl",
        help="in-context learning baseline: prompt a causal LM zero-/k-shot; one run record per setting",
        formatter_class=_DefaultsHelp,
    )
    icl.add_argument("--task", required=True, help=TASK_HELP + "; not STS-B (regression)")
    icl.add_argument(
        "--model",
        default=default_of(IclConfig, "model"),
        help="smollm2: the packaged SmolLM2-135M-Instruct (GGUF); or any causal LM name/path for from_pretrained",
    )
    icl.add_argument("--shots", default="0,1,4", help="comma list of demonstration counts k")
    icl.add_argument(
        "--scoring",
        default=",".join(SCORINGS),
        help="loglik: label-word log-likelihood; "
        "generate: greedy answer parsed to a label (unparseable counts as wrong)",
    )
    icl.add_argument("--seed", default="0,1,2", help="comma list of demonstration draws (zero-shot runs once)")
    icl.add_argument(
        "--max-eval-samples",
        type=int,
        default=None,
        help="seeded, stratified subsample of each test split (default: all)",
    )
    icl.add_argument(
        "--split-seed",
        type=int,
        default=default_of(IclConfig, "split_seed"),
        help="seed of the validation slice (kept out of the demonstration pool) and subsampling",
    )
    icl.add_argument(
        "--max-new-tokens",
        type=int,
        default=default_of(IclConfig, "max_new_tokens"),
        help="generate: answer length in tokens",
    )
    icl.add_argument(
        "--chat-template",
        action=argparse.BooleanOptionalAction,
        default=default_of(IclConfig, "chat_template"),
        help="use the tokenizer's chat template when it has one",
    )
    icl.add_argument(
        "--batch-size", type=int, default=_defaults(run_icl)["batch_size"], help="prompts per forward pass"
    )
    icl.add_argument("--glue-dir", default=None, help="local GLUE folder; default $GLUE_DIR, else the Hub")
    icl.add_argument("--results-dir", default=None, help=f"where run records go (default {RESULTS}/)")
    icl.add_argument("--force", action="store_true", help="run again even if a record exists")
    icl.add_argument("--quiet", action="store_true")
    add_dataset_options(icl)
    icl.set_defaults(func=cmd_icl)


def _add_predict_parser(commands: argparse._SubParsersAction) -> None:
    predict = commands.add_parser(
        "predict", help="label a text, a pair or a file with a run trained with --save-adapter"
    )
    predict.add_argument("--run", required=True, help="the run's record, results/<run_id>.json")
    predict.add_argument("--text", default=None, help="one text (the first of a pair)")
    predict.add_argument("--text-pair", default=None, help="the second text, for pair tasks")
    predict.add_argument(
        "--file", default=None, help="CSV / TSV / JSON(L) with the task's text column(s); prints one JSON line per row"
    )
    predict.set_defaults(func=cmd_predict)


def _add_export_parser(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export",
        help="merge a run's LoRA/DoRA/IA3 adapter into its base (BitFit/head/full: apply its weights) and save a "
        "plain transformers model folder; runs trained with --save-adapter",
    )
    export.add_argument("run", help="the run's record, results/<run_id>.json, or its run id")
    export.add_argument("--out", required=True, help="the folder to write: config with label names, weights, tokenizer")
    export.add_argument(
        "--results-dir", default=None, help="where a run id is looked up, subfolders included (default results/)"
    )
    export.add_argument("--force", action="store_true", help="write into a folder that is not empty")
    export.set_defaults(func=cmd_export)


def _add_max_batch_parser(commands: argparse._SubParsersAction) -> None:
    from helpers.max_batch import BATCH_SIZE_CAP, DEFAULT_CPU_LIMIT_GIB

    max_batch = commands.add_parser(
        "max-batch",
        help="the largest training batch that fits: doubles it, one real training step each, until out of memory "
        "(CUDA) or over --memory-limit-gib (CPU), then backs off; prints a table and JSON",
    )
    max_batch.add_argument("--task", required=True, help=TASK_HELP + "; or your own dataset, as for train")
    max_batch.add_argument(
        "--method", default="lora", help="the method whose trainable parameters train (default lora)"
    )
    max_batch.add_argument(
        "--model", default=None, help="default all-MiniLM-L6-v2 (packaged); any from_pretrained name"
    )
    max_batch.add_argument("--max-length", type=int, default=128, help="tokens per example, all real (default 128)")
    max_batch.add_argument(
        "--memory-limit-gib",
        type=float,
        default=None,
        help=f"largest measured peak allowed, in GiB (default: {DEFAULT_CPU_LIMIT_GIB:g} on CPU; "
        "none on CUDA, where the batch doubles until out of memory)",
    )
    max_batch.add_argument("--precision", default="auto", help="auto (default, as training), fp32, bf16, fp16")
    max_batch.add_argument("--start-batch-size", type=int, default=1, help="the first batch size tried (default 1)")
    max_batch.add_argument(
        "--batch-size-cap", type=int, default=BATCH_SIZE_CAP, help=f"stop doubling here (default {BATCH_SIZE_CAP})"
    )
    add_dataset_options(max_batch)
    max_batch.set_defaults(func=cmd_max_batch)


def _add_report_parser(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser("report", help="write report.md and figures/ from the run records (no training)")
    from helpers.profiles import PROFILES

    report.add_argument("--profile", default="quick", help=f"one of {', '.join(PROFILES)}: reads {RESULTS}/<profile>/")
    report.add_argument("--results-dir", default=None, help=f"records to read (default {RESULTS}/<profile>/)")
    report.add_argument("--figures-dir", default=None, help=f"default {FIGURES}/")
    report.add_argument("--report", default=None, help=f"default {REPORT}")
    report.add_argument(
        "--bench", default=None, help=f"bench JSON to include (default {BENCH_PATH.relative_to(PROJECT_ROOT)})"
    )
    report.add_argument(
        "--llm-dir",
        default=None,
        help=f"records of the LLM beside MiniLM (ICL and `helpers.study --tier llm`, e.g. {RESULTS}/llm/): adds §8",
    )
    report.set_defaults(func=cmd_report)


def _add_notebooks_parser(commands: argparse._SubParsersAction) -> None:
    from helpers.models import DEFAULT_MODEL

    notebooks = commands.add_parser(
        "notebooks", help="run notebooks/NN_*.ipynb headless (papermill) in a profile: records, figures, report"
    )
    notebooks.add_argument("--profile", default="quick", help="smoke (CI), quick (about 13 min on 2 CPU cores) or full")
    notebooks.add_argument(
        "--in-place",
        action="store_true",
        help="execute the committed notebooks/ themselves and write results/<profile>/, figures/ and report.md "
        "(regenerates the committed study); default: everything goes to runs/<profile>/",
    )
    notebooks.add_argument(
        "--output-dir",
        default=None,
        help="executed notebooks; default runs/<profile>/notebooks/ (--in-place: notebooks/)",
    )
    notebooks.add_argument(
        "--results-dir", default=None, help="default runs/<profile>/results/ (--in-place: results/<profile>/)"
    )
    notebooks.add_argument("--figures-dir", default=None, help="default runs/<profile>/figures/ (--in-place: figures/)")
    notebooks.add_argument("--report", default=None, help="default runs/<profile>/report.md (--in-place: report.md)")
    notebooks.add_argument("--glue-dir", default=None, help="local GLUE folder; default $GLUE_DIR, else the Hub")
    notebooks.add_argument("--tasks", default=None, help="comma-separated GLUE tasks (default sst2,mrpc)")
    notebooks.add_argument("--model", default=None, help=f"default {DEFAULT_MODEL}")
    notebooks.add_argument("--llm", default=None, help="notebook 06's LLM (default: the packaged smollm2)")
    notebooks.add_argument("--only", default=None, help="comma-separated notebook prefixes to run, e.g. 01,06")
    notebooks.add_argument(
        "--report-to", default=None, help="live training view for the notebooks' runs, e.g. tensorboard (default: none)"
    )
    notebooks.set_defaults(func=cmd_notebooks)


def join_negative_numbers(argv: list[str]) -> list[str]:
    """`--lr -1e-3` as `--lr=-1e-3`: argparse takes a value that starts with '-' for an option (and
    says "expected one argument") unless it looks like a plain integer or decimal."""
    joined, position = [], 0
    while position < len(argv):
        arg = argv[position]
        value = argv[position + 1] if position + 1 < len(argv) else None
        if (
            arg.startswith("--")
            and "=" not in arg
            and value is not None
            and value.startswith("-")
            and _is_number_list(value)
        ):
            joined.append(f"{arg}={value}")
            position += 2
        else:
            joined.append(arg)
            position += 1
    return joined


def _is_number_list(text: str) -> bool:
    try:
        [float(item) for item in text.split(",")]
    except ValueError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(join_negative_numbers(sys.argv[1:] if argv is None else list(argv)))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    # OSError: a missing file, or a --model that from_pretrained cannot find (training names the model).
    except (ValueError, OSError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
