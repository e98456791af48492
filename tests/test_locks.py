"""One lock per run: exclusive, released, heartbeat, and taken over only when its holder is gone."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.locks import RunLock, filesystem_now, is_stale, lock_path, read_lock, this_process

ROOT = Path(__file__).resolve().parents[1]


def test_a_held_run_cannot_be_claimed_twice_and_is_free_after_release(tmp_path):
    first, second = RunLock(tmp_path, "sst2-lora-s0-abc"), RunLock(tmp_path, "sst2-lora-s0-abc")
    assert first.acquire(wait=False)
    holder = json.loads(lock_path(tmp_path, "sst2-lora-s0-abc").read_text())
    assert {"host", "pid", "pid_namespace", "started", "run_id", "token"} <= set(holder)
    assert (holder["host"], holder["pid"]) == (this_process()["host"], os.getpid())
    assert not second.acquire(wait=False), "the holder is alive: no second claim"
    first.release()
    assert not lock_path(tmp_path, "sst2-lora-s0-abc").exists()
    assert second.acquire(wait=False)
    first.release()  # not held any more: must not remove the other's lock
    assert lock_path(tmp_path, "sst2-lora-s0-abc").exists()
    second.release()
    with RunLock(tmp_path, "other") as lock:
        assert lock.held and lock_path(tmp_path, "other").exists()
    assert not lock_path(tmp_path, "other").exists()


def test_the_heartbeat_keeps_the_lock_fresh(tmp_path):
    lock = RunLock(tmp_path, "run", heartbeat=0.05, stale_after=1.0)
    lock.acquire(wait=False)
    os.utime(lock.path, (time.time() - 100, time.time() - 100))
    time.sleep(0.3)
    assert filesystem_now(tmp_path) - lock.path.stat().st_mtime < 1.0, "touched again by the heartbeat"
    lock.release()
    with pytest.raises(ValueError, match="longer than the heartbeat"):
        RunLock(tmp_path, "run", heartbeat=10, stale_after=5)


def test_a_killed_holder_on_this_host_is_taken_over(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import time; from helpers.locks import RunLock; RunLock({str(tmp_path)!r}, 'run').acquire(); "
            "print('held', flush=True); time.sleep(120)",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert not RunLock(tmp_path, "run").acquire(wait=False), "alive: not stale"
        holder.kill()  # SIGKILL: no chance to release
        holder.wait()
        assert read_lock(lock_path(tmp_path, "run"))[0]["pid"] == holder.pid
        taker = RunLock(tmp_path, "run")
        assert taker.acquire(wait=False), "the dead holder's lock is taken over"
        assert read_lock(taker.path)[0]["token"] == taker.token
        assert not taker.path.with_name("run.lock.break").exists()
        taker.release()
    finally:
        holder.kill()
        holder.stdout.close()


def test_another_hosts_lock_is_stale_only_when_its_heartbeat_stops(tmp_path):
    path = lock_path(tmp_path, "run")
    path.write_text(json.dumps({"host": "node-7", "pid": os.getpid(), "pid_namespace": "pid:[1]", "token": "t"}))
    now = filesystem_now(tmp_path)
    assert not is_stale(json.loads(path.read_text()), path.stat().st_mtime, now), (
        "a live pid number elsewhere says nothing"
    )
    assert not RunLock(tmp_path, "run").acquire(wait=False)
    os.utime(path, (now - 601, now - 601))
    holder, mtime = read_lock(path)
    assert is_stale(holder, mtime, now, stale_after=600)
    first, second = RunLock(tmp_path, "run"), RunLock(tmp_path, "run")
    assert first.acquire(wait=False), "no heartbeat for 10 minutes: taken over"
    assert not second.acquire(wait=False), "taken over once: the new lock is fresh"
    first.release()


def test_an_unreadable_lock_is_stale_by_age_only(tmp_path):
    path = lock_path(tmp_path, "run")
    path.write_text("")
    assert not RunLock(tmp_path, "run").acquire(wait=False)
    os.utime(path, (time.time() - 3600, time.time() - 3600))
    lock = RunLock(tmp_path, "run")
    assert lock.acquire(wait=False)
    lock.release()


def test_a_waiting_claim_gets_the_run_when_the_holder_releases(tmp_path):
    import threading

    holder = RunLock(tmp_path, "run")
    holder.acquire(wait=False)
    threading.Timer(0.3, holder.release).start()
    waiter = RunLock(tmp_path, "run", poll=0.05)
    start = time.perf_counter()
    assert waiter.acquire(wait=True)
    assert time.perf_counter() - start >= 0.25
    waiter.release()
