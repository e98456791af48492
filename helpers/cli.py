"""The command line: `python -m helpers {data,train,sweep,bench,report} --help`."""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import os
import sys
from pathlib import Path

from helpers.tasks import TASKS

TASK_HELP = "GLUE task: " + ", ".join(spec.display_name for spec in TASKS.values()) + " (any case, hyphen optional)"


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


# (flag, field, type, help): the settings of a run, shared by `train` (one value) and `sweep` (comma lists).
RUN_OPTIONS = [
    ("--task", "task", str, TASK_HELP),
    ("--method", "method", str, "full, head, bitfit, lora (default), dora, ia3, prefix, prompt, ptuning, qlora (CUDA only)"),
    ("--model", "model", str, "all-MiniLM-L6-v2 (packaged, default) or any from_pretrained name/path, e.g. roberta-base"),
    ("--pooling", "pooling", str, "model (default): first token (+ BERT pooler), as AutoModelForSequenceClassification; mean: masked token mean"),
    ("--rank", "rank", int, "LoRA/DoRA rank r (default 8)"),
    ("--alpha", "alpha", float, "LoRA alpha; the update is scaled by alpha/r (default 16)"),
    ("--lora-dropout", "lora_dropout", float, "dropout on the LoRA input, in [0, 1) (default 0.1)"),
    ("--target-modules", "target_modules", str, "LoRA targets: default query+value; 'all-linear'; or comma-separated layer names (sweep: alternatives separated by ';')"),
    ("--bitfit-variant", "bitfit_variant", str, "all: every bias (default); sparse: query + first-MLP biases only"),
    ("--num-virtual-tokens", "num_virtual_tokens", int, "prompt/prefix length for prefix, prompt, ptuning (default 20)"),
    ("--prefix-projection", "prefix_projection", int, "prefix: 0 = free prefix (default), N = reparameterise through an MLP of width N"),
    ("--encoder-hidden-size", "encoder_hidden_size", int, "ptuning: prompt encoder width (default 128)"),
    ("--lr", "lr", float, "peak learning rate (default: per method, see helpers.training.DEFAULT_LR)"),
    ("--batch-size", "batch_size", int, "training batch size per device (default 32)"),
    ("--grad-accum", "grad_accum", int, "gradient accumulation steps (default 1)"),
    ("--epochs", "epochs", float, "training epochs (default 3)"),
    ("--warmup-ratio", "warmup_ratio", float, "fraction of steps with rising learning rate (default 0.06)"),
    ("--warmup-steps", "warmup_steps", int, "number of steps with rising learning rate; overrides --warmup-ratio (default: use the ratio)"),
    ("--weight-decay", "weight_decay", float, "AdamW weight decay (default 0.01)"),
    ("--max-length", "max_length", int, "truncate sequences to this many tokens (default 128)"),
    ("--seed", "seed", int, "training seed: head init, dropout, batch order (default 0)"),
    ("--eval-steps", "eval_steps", int, "also evaluate every N steps, besides every epoch end (default: only every epoch)"),
    ("--logging-steps", "logging_steps", int, "log the training loss every N steps (default: ~20 per epoch)"),
    ("--early-stopping-patience", "early_stopping_patience", int, "stop after N evaluations without improvement (default: off)"),
    ("--eval-batch-size", "eval_batch_size", int, "evaluation batch size (default 128)"),
    ("--recipe", "recipe", str, "fast (default): dynamic padding + length-grouped batches; baseline: pad to max_length, random batches"),
    ("--precision", "precision", str, "auto (default), fp32, bf16, fp16"),
    ("--length-bucket-batches", "length_bucket_batches", int, "fast recipe: batches per length bucket (default 50); fewer: more random batches, more padding"),
    ("--select-on", "select_on", str, "train_slice (default): select on a held-out slice of train; dev: on the GLUE dev set"),
    ("--validation-fraction", "validation_fraction", float, "fraction of train held out for validation (default 0.1)"),
    ("--split-seed", "split_seed", int, "seed of the validation slice and subsampling (default 42)"),
    ("--max-train-samples", "max_train_samples", int, "seeded, stratified subsample of the training split (default: all)"),
    ("--max-validation-samples", "max_validation_samples", int, "seeded, stratified subsample of the validation split (default: all)"),
]
# (flag, field, help): on/off settings of a run, given once (not gridded) in both `train` and `sweep`.
SWITCH_OPTIONS = [
    ("--compile", "compile", "torch.compile the model (default: off; slower on CPU, see README \"Throughput\")"),
    ("--length-grouping", "length_grouping", "fast recipe: batches of similar length, less padding (default: on); --no-length-grouping: random batches"),
]


DATA_FIELDS = ("select_on", "validation_fraction", "split_seed", "max_train_samples", "max_validation_samples")


def add_run_options(parser: argparse.ArgumentParser, lists: bool) -> None:
    group = parser.add_argument_group("run settings" + (" (comma-separated lists form a grid)" if lists else ""))
    for flag, dest, kind, help_text in RUN_OPTIONS:
        group.add_argument(flag, dest=dest, type=str if lists else kind, default=None, required=flag == "--task", help=help_text)
    for flag, dest, help_text in SWITCH_OPTIONS:  # None when not given, so TrainConfig's default applies
        group.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=help_text)
    output = parser.add_argument_group("data and output")
    output.add_argument("--glue-dir", default=None, help="local GLUE folder in the official layout; default $GLUE_DIR, else the Hub")
    output.add_argument("--results-dir", default=None, help="where run records go (default results/)")
    output.add_argument("--force", action="store_true", help="train again even if a record for this config exists")
    output.add_argument("--save-adapter", action="store_true", help="also save the trained weights (adapter + head) as safetensors")
    output.add_argument("--quiet", action="store_true", help="no progress bars or per-run messages")
    output.add_argument("--report-to", default=None, help="Trainer's live view, e.g. tensorboard (logs in <results-dir>/tensorboard/), "
                        "wandb, or any other integration that is installed; default: none")


def _run_values(args: argparse.Namespace) -> dict:
    """The run settings given on the command line (switches included), by TrainConfig/MethodConfig field."""
    fields = [dest for _, dest, _, _ in RUN_OPTIONS] + [dest for _, dest, _ in SWITCH_OPTIONS]
    return {dest: getattr(args, dest) for dest in fields if getattr(args, dest) is not None}


def _output_kwargs(args: argparse.Namespace) -> dict:
    from helpers.training import RESULTS_DIR

    return {"glue_dir": args.glue_dir, "results_dir": args.results_dir or RESULTS_DIR, "force": args.force, "save_adapter": args.save_adapter,
            "report_to": args.report_to}


def cmd_train(args: argparse.Namespace) -> int:
    from helpers.sweep import make_config
    from helpers.training import train

    config = make_config(_run_values(args))
    record = train(config, quiet=args.quiet, **_output_kwargs(args))
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, one summary
        return 0
    print(json.dumps({"run_id": record["run_id"], "params": record["params"], "best": record["best"], "test": record["test"], "timing": record["timing"]}, indent=2))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from helpers.sweep import expand_grid, run_sweep

    types = {dest: kind for _, dest, kind, _ in RUN_OPTIONS}
    grid = {}
    for dest, text in _run_values(args).items():
        if dest not in types:  # a switch: one value for the whole grid
            grid[dest] = [text]
            continue
        separator = ";" if dest == "target_modules" else ","
        grid[dest] = [types[dest](item.strip()) for item in text.split(separator) if item.strip()]
    configs = expand_grid(grid)
    print(f"{len(configs)} runs in the grid.")
    records = run_sweep(configs, progress=not args.quiet, **_output_kwargs(args))
    for record in records:
        task = record["config"]["task"]
        metrics = ", ".join(f"{k}={v:.4f}" for k, v in record["test"]["metrics"].items())
        print(f"{record['run_id']:<60} {task:<6} {metrics}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from helpers.bench import BENCH_DIR, markdown_table, run_bench, run_step_ablation

    if args.steps:
        run_step_ablation(methods=tuple(m.strip() for m in args.methods.split(",")), out_dir=args.out_dir or BENCH_DIR, model=args.model)
        print((Path(args.out_dir or BENCH_DIR) / "step_ablation.md").read_text())
        return 0

    samples = {}
    for item in args.samples.split(","):
        task, _, count = item.partition("=")
        if not count.isdigit():
            raise ValueError(f"--samples takes task=count pairs like sst2=2000,rte=600; got {item!r}.")
        samples[task.strip()] = int(count)
    result = run_bench(
        samples=samples,
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
        progress=not args.quiet,
    )
    print(markdown_table(result))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from helpers.environment import output_paths
    from helpers.report import PROJECT_ROOT, write_report

    results_dir, figures_dir, report_path = output_paths(PROJECT_ROOT, args.profile, args.results_dir, args.figures_dir, args.report)
    text = write_report(results_dir, figures_dir, report_path, args.profile, bench_path=args.bench)
    print(f"wrote {report_path} ({len(text.splitlines())} lines) and figures in {figures_dir}")
    return 0


def cmd_notebooks(args: argparse.Namespace) -> int:
    from helpers.notebooks import run_notebooks

    seconds = run_notebooks(
        args.profile, in_place=args.in_place, output_dir=args.output_dir, results_dir=args.results_dir, figures_dir=args.figures_dir,
        report_path=args.report, glue_dir=args.glue_dir, tasks=args.tasks.split(",") if args.tasks else None,
        model=args.model, only=args.only.split(",") if args.only else None, report_to=args.report_to,
    )
    print("wall time: " + ", ".join(f"{name} {s / 60:.1f} min" for name, s in seconds.items()) + f"; total {sum(seconds.values()) / 60:.1f} min")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m helpers", description="Parameter-efficient fine-tuning on GLUE.")
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="load a task and print its splits, sizes and label distribution as JSON")
    data.add_argument("--task", required=True, help=TASK_HELP)
    data.add_argument("--glue-dir", default=None, help="local GLUE folder in the official layout (<dir>/<Task>/{train,dev}.tsv); default $GLUE_DIR, else the Hub")
    from helpers.data import load_glue

    defaults = {name: p.default for name, p in inspect.signature(load_glue).parameters.items()}
    for flag, dest, kind, help_text in RUN_OPTIONS:
        if dest in DATA_FIELDS:
            data.add_argument(flag, dest=dest, type=kind, default=defaults[dest], help=help_text)
    data.set_defaults(func=cmd_data)

    # No ArgumentDefaultsHelpFormatter here: the run options default to None (meaning "TrainConfig's
    # default"), so it would print "(default: None)" beside help texts that give the real default.
    train = commands.add_parser("train", help="train and evaluate one run; writes its record to results/")
    add_run_options(train, lists=False)
    train.set_defaults(func=cmd_train)

    sweep = commands.add_parser("sweep", help="train a grid of runs (comma lists), skipping runs that have records")
    add_run_options(sweep, lists=True)
    sweep.set_defaults(func=cmd_sweep)

    bench = commands.add_parser("bench", help="time the usual notebook recipe against this project's, side by side", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    bench.add_argument("--samples", default="sst2=2000,rte=600", help="tasks and training-subset sizes, task=count pairs")
    bench.add_argument("--methods", default="bitfit,lora,full", help="methods to time")
    bench.add_argument("--seeds", default="0", help="seeds (several give mean ± std of the dev metric)")
    bench.add_argument("--epochs", type=float, default=1.0)
    bench.add_argument("--batch-size", type=int, default=32)
    bench.add_argument("--max-length", type=int, default=128, help="the baseline pads every example to this length")
    bench.add_argument("--validation-samples", type=int, default=256, help="validation subset evaluated once per epoch")
    bench.add_argument("--project-precision", default="auto", help="auto: bf16 where the CPU/GPU supports it, else fp32")
    bench.add_argument("--lr", type=float, default=None, help="learning rate (default: per method)")
    bench.add_argument("--model", default="all-MiniLM-L6-v2")
    bench.add_argument("--glue-dir", default=None, help="local GLUE folder; default $GLUE_DIR, else the Hub")
    bench.add_argument("--out-dir", default=None, help="default results/bench")
    bench.add_argument("--name", default="bench", help="file name of the JSON and markdown summary")
    bench.add_argument("--steps", action="store_true", help="instead: time one training step per speed-up of the fast recipe (step_ablation.json/.md)")
    bench.add_argument("--quiet", action="store_true")
    bench.set_defaults(func=cmd_bench)

    report = commands.add_parser("report", help="write report.md and figures/ from the run records (no training)")
    report.add_argument("--profile", default="quick", help="smoke, quick or full: reads results/<profile>/")
    report.add_argument("--results-dir", default=None, help="records to read (default results/<profile>/)")
    report.add_argument("--figures-dir", default=None, help="default figures/")
    report.add_argument("--report", default=None, help="default report.md")
    report.add_argument("--bench", default=None, help="bench JSON to include (default results/bench/bench.json)")
    report.set_defaults(func=cmd_report)

    notebooks = commands.add_parser("notebooks", help="run notebooks/NN_*.ipynb headless (papermill) in a profile: records, figures, report")
    notebooks.add_argument("--profile", default="quick", help="smoke (CI), quick (<15 min on 2 CPU cores) or full")
    notebooks.add_argument("--in-place", action="store_true",
                           help="execute the committed notebooks/ themselves and write results/<profile>/, figures/ and report.md "
                                "(regenerates the committed study); default: everything goes to runs/<profile>/")
    notebooks.add_argument("--output-dir", default=None, help="executed notebooks; default runs/<profile>/notebooks/ (--in-place: notebooks/)")
    notebooks.add_argument("--results-dir", default=None, help="default runs/<profile>/results/ (--in-place: results/<profile>/)")
    notebooks.add_argument("--figures-dir", default=None, help="default runs/<profile>/figures/ (--in-place: figures/)")
    notebooks.add_argument("--report", default=None, help="default runs/<profile>/report.md (--in-place: report.md)")
    notebooks.add_argument("--glue-dir", default=None, help="local GLUE folder; default $GLUE_DIR, else the Hub")
    notebooks.add_argument("--tasks", default=None, help="comma-separated GLUE tasks (default sst2,mrpc)")
    notebooks.add_argument("--model", default=None, help="default all-MiniLM-L6-v2")
    notebooks.add_argument("--only", default=None, help="comma-separated notebook prefixes to run, e.g. 01,06")
    notebooks.add_argument("--report-to", default=None, help="live training view for the notebooks' runs, e.g. tensorboard (default: none)")
    notebooks.set_defaults(func=cmd_notebooks)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    # OSError: a missing file, or a --model that from_pretrained cannot find (training names the model).
    except (ValueError, OSError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
