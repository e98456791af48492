"""One lock per run: a run is claimed before it trains, so sweeps, notebooks and machines that share a
results folder never train the same run twice.

The lock is a small JSON file beside the run's record, `<results_dir>/<run_id>.lock`, holding the
holder's host, pid, pid namespace and start time. It is created atomically (written to a temporary
file, then hard-linked to its name, which fails if the name exists; `O_CREAT | O_EXCL` where hard
links are not supported), and removed when the run ends, whether it finished or failed.

A lock whose holder died is taken over (its holder can no longer remove it):
- same host (same hostname and pid namespace): the holder's pid no longer exists;
- any host: its heartbeat is older than `stale_after` seconds. The holder touches the lock file every
  `heartbeat` seconds (a background thread), and the age is measured against the file system's own
  clock (the modification time of a file just written there), so machines whose clocks disagree
  still agree on it. A process frozen for longer than `stale_after` (SIGSTOP, a suspended laptop,
  a network file system gone for that long) loses its run to another process; it logs a warning when
  it notices, and both then write the same record (the later one wins; the records are equivalent).

Taking over goes through a second, short-lived lock (`<run_id>.lock.break`) so that two processes
that both found the same stale lock do not both take it: one breaks it, the other moves on.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 60.0  # how often a holder touches its lock file
STALE_AFTER_SECONDS = 600.0  # a lock not touched for this long is stale, whoever holds it
BREAK_STALE_SECONDS = 60.0  # breaking a stale lock takes milliseconds; a break lock this old was left by a crash
POLL_SECONDS = 5.0  # how often a process waiting for a run looks again


class RunLocked(RuntimeError):
    """The run is being trained by another process (its lock is held and not stale)."""


def lock_path(results_dir: str | os.PathLike, run_id: str) -> Path:
    """`<results_dir>/<run_id>.lock`, beside the record `<run_id>.json`."""
    return Path(results_dir) / f"{run_id}.lock"


def this_process() -> dict:
    """Who holds a lock: host, pid, pid namespace (containers on one host share a hostname but not pids)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "pid_namespace": _pid_namespace()}


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:  # not Linux
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def filesystem_now(folder: Path) -> float:
    """The current time on the clock that stamps files in `folder` (a network file system's server
    may disagree with this machine's clock)."""
    descriptor, name = tempfile.mkstemp(prefix=".clock.", dir=folder)
    try:
        os.close(descriptor)
        return os.stat(name).st_mtime
    finally:
        os.unlink(name)


def read_lock(path: Path) -> tuple[dict, float] | None:
    """(holder, modification time) of a lock file, or None if there is none. An unreadable lock file
    (it is never half-written) reads as an unknown holder, stale by age only."""
    try:
        mtime = path.stat().st_mtime
        holder = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        holder = {}
    return (holder if isinstance(holder, dict) else {}), mtime


def is_stale(holder: dict, mtime: float, now: float, stale_after: float = STALE_AFTER_SECONDS) -> bool:
    """Whether a lock may be taken over: its holder is a dead process on this host, or it has not
    been touched for `stale_after` seconds (`now` and `mtime` on the same, file system, clock)."""
    me = this_process()
    same_host = holder.get("host") == me["host"] and holder.get("pid_namespace") == me["pid_namespace"]
    if same_host and isinstance(holder.get("pid"), int) and not _pid_alive(holder["pid"]):
        return True
    return now - mtime > stale_after


def _create_exclusive(path: Path, payload: dict) -> bool:
    """Create `path` holding `payload` only if it does not exist; True if this call created it."""
    descriptor, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w") as handle:
            json.dump(payload, handle)
        os.chmod(temp_name, 0o644)
        try:
            os.link(temp_name, path)  # atomic, also on NFS; never exposes a half-written file
            return True
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links
            pass
        try:
            exclusive = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(exclusive, "w") as handle:
            json.dump(payload, handle)
        return True
    finally:
        os.unlink(temp_name)


class RunLock:
    """The lock of one run. `acquire(wait=False)` claims it or says who holds it; use as a context
    manager to claim (waiting for another holder) and release.

    While held, a daemon thread touches the file every `heartbeat` seconds, so other machines can
    tell a live holder from a dead one.
    """

    def __init__(
        self,
        results_dir: str | os.PathLike,
        run_id: str,
        *,
        heartbeat: float = HEARTBEAT_SECONDS,
        stale_after: float = STALE_AFTER_SECONDS,
        poll: float | None = None,
    ):
        if stale_after <= heartbeat:
            raise ValueError(f"stale_after ({stale_after} s) must be longer than the heartbeat ({heartbeat} s).")
        self.results_dir = Path(results_dir)
        self.run_id = run_id
        self.path = lock_path(results_dir, run_id)
        self.heartbeat = heartbeat
        self.stale_after = stale_after
        self.poll = POLL_SECONDS if poll is None else poll
        self.token = uuid.uuid4().hex
        self.held = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def holder(self) -> dict | None:
        """Who holds the lock now (None: nobody)."""
        found = read_lock(self.path)
        return found[0] if found else None

    def acquire(self, wait: bool = True) -> bool:
        """Claim the run. wait=False: True if claimed, False if another live process holds it.
        wait=True: poll until claimed (the holder finished, failed or died)."""
        if self.held:
            raise RuntimeError(f"[{self.run_id}] the lock is already held by this RunLock.")
        self.results_dir.mkdir(parents=True, exist_ok=True)
        announced = False
        while True:
            if self._try_claim():
                self.held = True
                self._start_heartbeat()
                return True
            if not wait:
                return False
            if not announced:
                holder = self.holder() or {}
                log.warning(
                    "[%s] is being trained by %s (pid %s, since %s); waiting for it.",
                    self.run_id,
                    holder.get("host", "another process"),
                    holder.get("pid", "?"),
                    holder.get("started", "?"),
                )
                announced = True
            time.sleep(self.poll)

    def _payload(self) -> dict:
        return {
            **this_process(),
            "run_id": self.run_id,
            "token": self.token,
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

    def _try_claim(self) -> bool:
        if _create_exclusive(self.path, self._payload()):
            return True
        found = read_lock(self.path)
        if found is None:  # released between our two looks
            return _create_exclusive(self.path, self._payload())
        holder, mtime = found
        if not is_stale(holder, mtime, filesystem_now(self.results_dir), self.stale_after):
            return False
        return self._take_over(holder)

    def _take_over(self, stale_holder: dict) -> bool:
        """Replace a stale lock, under the break lock so only one process replaces it."""
        break_path = self.path.with_name(self.path.name + ".break")
        if not _create_exclusive(break_path, {**this_process(), "token": self.token}):
            left = read_lock(break_path)
            if left is not None and filesystem_now(self.results_dir) - left[1] > BREAK_STALE_SECONDS:
                break_path.unlink(missing_ok=True)  # a breaker crashed mid-way; try again next time
            return False
        try:
            found = read_lock(self.path)
            # Still the same stale lock (not one someone else took over in the meantime)?
            if found is not None and found[0].get("token") == stale_holder.get("token"):
                log.warning(
                    "[%s] taking over a stale lock of %s (pid %s, since %s).",
                    self.run_id,
                    stale_holder.get("host", "?"),
                    stale_holder.get("pid", "?"),
                    stale_holder.get("started", "?"),
                )
                self.path.unlink(missing_ok=True)
            return _create_exclusive(self.path, self._payload())
        finally:
            break_path.unlink(missing_ok=True)

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name=f"lock-heartbeat-{self.run_id}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat):
            found = read_lock(self.path)
            if found is None or found[0].get("token") != self.token:
                log.warning(
                    "[%s] this process's lock was taken over by %s (it looked stale); the record may be written twice.",
                    self.run_id,
                    (found or ({},))[0].get("host", "nobody"),
                )
                return
            try:
                os.utime(self.path)
            except OSError as error:
                log.warning("[%s] could not touch the lock file: %s", self.run_id, error)

    def release(self) -> None:
        """Stop the heartbeat and remove the lock file, if it is still this process's."""
        if not self.held:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        found = read_lock(self.path)
        if found is not None and found[0].get("token") == self.token:
            self.path.unlink(missing_ok=True)
        self.held = False

    def __enter__(self) -> RunLock:
        self.acquire(wait=True)
        return self

    def __exit__(self, *exc) -> None:
        self.release()
