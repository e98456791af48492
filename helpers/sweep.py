"""Grids of runs: expand comma lists into configs, run what has no record yet, one progress bar.

Every run writes its record atomically when it finishes, so a sweep killed part-way and started
again trains only the runs whose records are missing.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import queue
import time
from collections.abc import Callable
from pathlib import Path

import torch

from helpers.locks import POLL_SECONDS, RunLock, filesystem_now
from helpers.methods import MethodConfig, RegistryMapping, knob_owners
from helpers.records import find_record, prepare_results_dir, record_path
from helpers.training import RESULTS_DIR, TrainConfig, check_run, reusable_record, train

log = logging.getLogger(__name__)

# Processes a sweep trains in at once. 1 until `python -m helpers bench --grid` has measured 2 workers
# x 1 thread against 1 worker x 2 threads on the 2-core CPU (see README "Parallel sweeps").
DEFAULT_WORKERS = 1

METHOD_FIELDS = {f for f in MethodConfig.__dataclass_fields__}
TRAIN_FIELDS = {f for f in TrainConfig.__dataclass_fields__} - {"method"}
# Knobs that only mean something for some methods (the registry's knob table, inverted): other
# methods ignore them in the grid.
ONLY_FOR = RegistryMapping(knob_owners)


def make_config(values: dict) -> TrainConfig:
    """A TrainConfig from one flat dict of TrainConfig and MethodConfig fields."""
    unknown = set(values) - METHOD_FIELDS - TRAIN_FIELDS
    if unknown:
        raise ValueError(f"Unknown setting(s) {sorted(unknown)}.")
    method = MethodConfig(**{k: v for k, v in values.items() if k in METHOD_FIELDS})
    return TrainConfig(method=method, **{k: v for k, v in values.items() if k in TRAIN_FIELDS})


def expand_grid(grid: dict[str, list], fixed: dict | None = None) -> list[TrainConfig]:
    """Every combination of the grid's values (a method-specific knob only varies for its methods),
    de-duplicated by run id, in a stable order."""
    fixed = dict(fixed or {})
    keys = list(grid)
    configs: dict[str, TrainConfig] = {}
    for combination in itertools.product(*(grid[k] for k in keys)):
        values = {**fixed, **dict(zip(keys, combination))}
        method = values.get("method", MethodConfig.method)
        for knob, methods in ONLY_FOR.items():
            if knob in grid and method not in methods:
                values.pop(knob, None)
        config = make_config(values)
        configs.setdefault(config.run_id, config)
    return list(configs.values())


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """`"i/n"` (0 <= i < n) as (i, n); None or "" as None."""
    if not text:
        return None
    index, _, count = str(text).partition("/")
    if not (index.strip().isdigit() and count.strip().isdigit()) or not 0 <= int(index) < int(count):
        raise ValueError(f"--shard takes i/n with 0 <= i < n (e.g. 0/4 ... 3/4), got {text!r}.")
    return int(index), int(count)


def shard_of(configs: list[TrainConfig], shard: tuple[int, int] | str | None) -> list[TrainConfig]:
    """The configs of shard i of n: every n-th run, from the i-th, of the grid sorted by run id.

    Sorting makes the split independent of the order the grid was written in, and every n-th spreads
    tasks and methods over the shards; the n shards together are the grid, each run in exactly one.
    """
    if isinstance(shard, str) or shard is None:
        shard = parse_shard(shard)
    if shard is None:
        return list(configs)
    index, count = shard
    chosen = set(sorted(c.run_id for c in configs)[index::count])
    return [c for c in configs if c.run_id in chosen]


def usable_cores() -> int:
    """CPU cores this process may use (a Slurm or container CPU set, else every core)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def run_sweep(
    configs: list[TrainConfig],
    *,
    glue_dir: str | os.PathLike | None = None,
    results_dir: str | os.PathLike = RESULTS_DIR,
    force: bool = False,
    progress: bool = True,
    workers: int = DEFAULT_WORKERS,
    threads: int | None = None,
    shard: tuple[int, int] | str | None = None,
    poll: float = POLL_SECONDS,
    **train_kwargs,
) -> list[dict]:
    """Train every config that has no record yet; returns the records of the configs (of the shard),
    in their order.

    Each run is claimed by its lock (helpers/locks.py) before it trains, so sweeps that share a
    results folder (workers, shards, other machines, notebooks) split the grid between them: a run
    another process is training is skipped and waited for at the end. `workers` > 1 trains in that
    many processes, each with `threads` torch threads (default: usable cores / workers). `shard`
    "i/n" keeps only shard i of n (`shard_of`). `force` retrains every run whose record is older than
    this sweep.
    """
    from tqdm.auto import tqdm

    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}.")
    results_dir = Path(results_dir)
    configs, fresh_since, done = _prepare_sweep(configs, results_dir, glue_dir, force, shard, train_kwargs)
    with tqdm(total=len(configs), initial=0, desc="sweep", unit="run", disable=not progress) as bar:
        if done:
            rest = "nothing to train" if done == len(configs) else "training the rest"
            bar.write(f"{done} of {len(configs)} runs already have records in {results_dir}; {rest}.")
        settings = dict(
            glue_dir=glue_dir, results_dir=results_dir, fresh_since=fresh_since, poll=poll, train_kwargs=train_kwargs
        )
        outcome = _train_grid(configs, bar, progress, workers, threads, settings)
        trained = sum(kind == "trained" for kind in outcome.values())
        if len(outcome) - trained > done:
            bar.write(
                f"{trained} runs trained here; {len(outcome) - trained - done} were trained by another process "
                "meanwhile."
            )
    return _sweep_records(results_dir, configs)


def _prepare_sweep(
    configs: list[TrainConfig], results_dir: Path, glue_dir, force: bool, shard, train_kwargs: dict
) -> tuple[list[TrainConfig], float | None, int]:
    """The shard's configs with their data fingerprints, the time records must be newer than (`force`),
    and how many runs already have records; checks every config when some are left to train."""
    # Complete each run id with the fingerprint of its data (read once per task), so the records
    # counted here are those of this data.
    cache = {"cache_dir": train_kwargs["cache_dir"]} if "cache_dir" in train_kwargs else {}
    configs = [c if c.data_fingerprint else c.with_data(glue_dir, **cache) for c in configs]
    configs = shard_of(configs, shard)
    fresh_since = filesystem_now(prepare_results_dir(results_dir)) if force else None
    done = sum(_finished(results_dir, c, glue_dir, fresh_since) for c in configs)
    if done < len(configs):  # a mistake in the last config of the grid fails now, not after hours of training
        for config in configs:
            check_run(config)
        prepare_results_dir(results_dir)
    return configs, fresh_since, done


def _train_grid(
    configs: list[TrainConfig], bar, progress: bool, workers: int, threads: int | None, settings: dict
) -> dict[str, str]:
    """Claim and train the configs in this process or in `workers` processes, advancing the bar once per
    run; returns run id -> "trained" or "found" (every worker reports the runs the others finished)."""
    # Runs are quiet (no bar per run), but each trained run's trainable / total / percent line is
    # still printed, above the sweep's bar.
    announce = bar.write if progress else None
    outcome: dict[str, str] = {}

    def on_event(kind: str, run_id: str, worker: int) -> None:
        if kind == "started":
            bar.set_postfix_str(run_id, refresh=True)
            return
        if kind == "trained":
            log.info("[%s] trained by worker %d", run_id, worker)
        elif run_id in outcome:
            return
        if run_id not in outcome:
            bar.update(1)
        outcome[run_id] = kind

    if workers == 1:
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(threads or previous_threads)
        try:
            claim_and_train(configs, on_event=on_event, announce=announce, **settings)
        finally:
            torch.set_num_threads(previous_threads)
    else:
        _run_workers(configs, workers, threads or max(1, usable_cores() // workers), on_event, announce, settings)
    return outcome


def _sweep_records(results_dir: Path, configs: list[TrainConfig]) -> list[dict]:
    """The configs' records, in their order; a run with none is an error naming it."""
    records = [find_record(results_dir, c.run_id) for c in configs]
    missing = [c.run_id for c, record in zip(configs, records) if record is None]
    if missing:
        raise RuntimeError(
            f"{len(missing)} run(s) of the sweep have no record: {', '.join(missing)}. Start the sweep again to train "
            "them."
        )
    return records


def _finished(results_dir: Path, config: TrainConfig, glue_dir, fresh_since: float | None) -> bool:
    """Whether the run has a record that counts (as `train` decides: training.reusable_record), and
    with `force`, one written after the sweep started."""
    record = find_record(results_dir, config.run_id, warn=False)
    if not reusable_record(record, config, glue_dir):
        return False
    if fresh_since is not None:
        try:
            return record_path(results_dir, config.run_id).stat().st_mtime >= fresh_since
        except FileNotFoundError:
            return False
    return True


def claim_and_train(
    configs: list[TrainConfig],
    *,
    glue_dir,
    results_dir: Path,
    fresh_since: float | None,
    poll: float,
    train_kwargs: dict,
    on_event: Callable[[str, str, int], None],
    announce: Callable[[str], None] | None = None,
    worker: int = 0,
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """What every worker does: take the first run of the grid that has no record and whose lock it
    can claim, train it, start again from the top; when every run left is being trained elsewhere,
    wait `poll` seconds and look again (a finished run then counts as found, a dead holder's run is
    taken over). `on_event("started", run_id, worker)` before training a run, and
    `on_event("trained" | "found", run_id, worker)` once per run."""
    pending = list(configs)
    while pending and not stop():
        claimed = None
        for config in list(pending):
            if _finished(results_dir, config, glue_dir, fresh_since):
                pending.remove(config)
                on_event("found", config.run_id, worker)
                continue
            lock = RunLock(results_dir, config.run_id, poll=poll)
            if lock.acquire(wait=False):
                claimed = (config, lock)
                break
        if claimed is None:
            if pending:
                time.sleep(poll)
            continue
        config, lock = claimed
        try:
            # Finished between the look and the claim? Then it is found, not trained again.
            if _finished(results_dir, config, glue_dir, fresh_since):
                on_event("found", config.run_id, worker)
            else:
                on_event("started", config.run_id, worker)
                train(
                    config,
                    glue_dir=glue_dir,
                    results_dir=results_dir,
                    force=fresh_since is not None,
                    quiet=True,
                    announce=announce,
                    lock=lock,
                    **train_kwargs,
                )
                on_event("trained", config.run_id, worker)
        finally:
            lock.release()
        pending.remove(config)


def _run_workers(configs, workers: int, threads: int, on_event, announce, settings: dict) -> None:
    """Start `workers` processes running `claim_and_train` over the same grid; relay their events to
    the progress bar; if one fails, let the others finish their current run and raise its error."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # fork after torch has started threads can hang
    events = context.Queue()
    stop = context.Event()
    processes = [
        context.Process(
            target=_worker_main, args=(configs, index, threads, settings, events, stop), name=f"sweep-worker-{index}"
        )
        for index in range(workers)
    ]
    for process in processes:
        process.start()
    failure = None
    try:
        running = workers
        while running:
            try:
                kind, *rest = events.get(timeout=1.0)
            except queue.Empty:
                if not any(p.is_alive() for p in processes):
                    break  # died without saying so (killed)
                continue
            if kind == "exit":
                running -= 1
            elif kind == "announce":
                if announce is not None:
                    announce(rest[0])
            elif kind == "error":
                failure = failure or rest
                stop.set()
            else:
                on_event(kind, *rest)
    finally:
        stop.set()
        while any(
            p.is_alive() for p in processes
        ):  # keep emptying the queue: a worker exits only once its messages are out
            with contextlib.suppress(queue.Empty):
                events.get(timeout=0.2)
        for process in processes:
            process.join()
    if failure is not None:
        run_id, worker, text = failure
        raise RuntimeError(f"Sweep worker {worker} failed on {run_id}:\n{text}")
    lost = [f"{p.name} (exit code {p.exitcode})" for p in processes if p.exitcode != 0]
    if lost:  # its run was taken over by the others (same host, dead pid), or is missing and reported by run_sweep
        log.warning("Sweep worker(s) %s stopped without finishing.", ", ".join(lost))


def _worker_main(configs, index: int, threads: int, settings: dict, events, stop) -> None:
    """One worker process: `threads` torch threads, then `claim_and_train`, reporting through `events`."""
    import traceback

    torch.set_num_threads(threads)
    current = {"run_id": None}  # the run an error belongs to

    def on_event(kind, run_id, worker):
        if kind == "started":
            current["run_id"] = run_id
        events.put((kind, run_id, worker))

    try:
        claim_and_train(
            configs,
            on_event=on_event,
            announce=lambda text: events.put(("announce", text)),
            worker=index,
            stop=stop.is_set,
            **settings,
        )
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it
        events.put(("error", current["run_id"], index, traceback.format_exc()))
    finally:
        events.put(("exit", index))
