"""Keeping a run's ``--save-dir`` safe: one training at a time, and checkpoints that are
written whole or not at all.

* ``SaveDirLock``: ``SAVE_DIR/train.lock`` holds the host, pid and process start time of the
  training that owns the directory. A second training into it refuses to start; a lock left by
  a process that no longer exists on this host (a kill -9, a crash) is stale and taken over
  with a note. A lock from another host cannot be checked and is respected.
* Checkpoints themselves (names, the write-then-rename transaction, the SHA-256 manifest,
  retention) are written by ``tupe/checkpoint/run.py``.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Callable, Optional

from ..checkpoint.run import describe_os_error

LOCK_FILE = "train.lock"


class SaveDirError(RuntimeError):
    """The save directory is in use, or a checkpoint could not be written."""


def _start_time(pid: int) -> Optional[str]:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22), to tell a
    live owner from an unrelated process that reuses its pid; None where /proc is absent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, started: Optional[str]) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True                                      # exists, owned by someone else
    now = _start_time(pid)
    return started is None or now is None or now == started


class SaveDirLock:
    def __init__(self, save_dir: Path, log: Callable[[str], None] = print):
        self.path = Path(save_dir) / LOCK_FILE
        self.log = log
        self.held = False

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {"host": socket.gethostname(), "pid": os.getpid(), "started": _start_time(os.getpid()),
              "since": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv)[:20000]}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._handle_existing()
                continue
            try:
                with os.fdopen(fd, "w") as f:
                    json.dump(me, f)
            except OSError as e:          # a full disk: no half-written lock left behind
                self.path.unlink(missing_ok=True)
                raise SaveDirError(f"{self.path}: could not write the lock: {describe_os_error(e, self.path.parent)}") \
                    from None
            self.held = True
            return
        raise SaveDirError(f"{self.path}: could not take the lock (another training started at the same time?)")

    def _handle_existing(self) -> None:
        try:
            owner = json.loads(self.path.read_text())
            host, pid = owner["host"], int(owner["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            self.log(f"| warning: {self.path} is unreadable; treating it as stale and replacing it")
            self.path.unlink(missing_ok=True)
            return
        if host == socket.gethostname() and not _alive(pid, owner.get("started")):
            self.log(f"| {self.path}: stale lock of process {pid} (no longer running; killed or crashed), "
                     f"taken over")
            self.path.unlink(missing_ok=True)
            return
        where = "this machine" if host == socket.gethostname() else f"host {host}"
        raise SaveDirError(
            f"--save-dir {self.path.parent} is in use by another training (pid {pid} on {where}, since "
            f"{owner.get('since', '?')}: {elide_command(owner.get('command', ''))}). Two runs writing one directory "
            f"would overwrite each other's checkpoints: use another --save-dir, or stop that run"
            + ("" if host == socket.gethostname() else f"; if it is dead, delete {self.path}"))

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


def elide_command(command: str, limit: int = 400) -> str:
    """A command line for a message: whole when short, else its start and end at word boundaries
    with ``...`` between (never cut inside a flag or a path)."""
    if len(command) <= limit:
        return command
    words = command.split(" ")
    head, tail = [], []
    while words and len(" ".join(head + words[:1])) <= limit * 2 // 3:
        head.append(words.pop(0))
    while words and len(" ".join(words[-1:] + tail)) <= limit // 3:
        tail.insert(0, words.pop())
    return " ".join(head) + f" ... ({len(words)} more words) ... " + " ".join(tail)
