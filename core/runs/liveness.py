"""Is a job's process alive, and if not, why did it die: pid checks, exit causes, heartbeats, termination."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core import store

HEARTBEAT_TIMEOUT_S = 90.0
HEARTBEAT_EVERY_S = 5.0
KILLED = "killed (likely out of memory, or killed by a person)"

# Processes this process started: their exit status is known the moment they end (the server's own children).
_CHILDREN: dict[int, subprocess.Popen] = {}
_EXITED: dict[int, int] = {}


def adopt(proc: subprocess.Popen) -> int:
    """Remember a child we launched, so its exit code (and so its cause of death) can be read later."""
    _CHILDREN[proc.pid] = proc
    return proc.pid


def exit_code(pid: int | None) -> int | None:
    """The exit code of a child of ours that has ended (negative: killed by that signal); None if unknown."""
    if not pid:
        return None
    proc = _CHILDREN.get(pid)
    if proc is not None and proc.poll() is not None:
        return proc.returncode
    return _EXITED.get(pid)


def pid_alive(pid: int | None) -> bool:
    """True while the process exists and is not a zombie (a dead child not yet reaped)."""
    if not pid:
        return False
    proc = _CHILDREN.get(pid)
    if proc is not None:
        return proc.poll() is None
    try:
        done, status = os.waitpid(pid, os.WNOHANG)  # reap our own dead child so it stops looking alive
        if done == pid:
            _EXITED[pid] = os.waitstatus_to_exitcode(status)
            return False
    except (ChildProcessError, OSError):
        pass
    try:
        import psutil

        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except Exception:  # noqa: BLE001 - no such process, or psutil missing
        try:
            os.kill(pid, 0)
            return True
        except OSError:
            return False


def describe_exit(code: int | None) -> str:
    """The likely cause of a process's end, in words a person can act on."""
    if code is None:
        return "its exit status is unknown (the studio may have restarted, or the machine did)"
    if code in (-signal.SIGKILL, 128 + signal.SIGKILL):
        return KILLED
    if code in (-signal.SIGTERM, 128 + signal.SIGTERM):
        return "terminated (SIGTERM: stopped by a person or the system)"
    if code in (-signal.SIGSEGV, 128 + signal.SIGSEGV):
        return "crashed (segmentation fault)"
    if code < 0:
        return f"killed by signal {signal.Signals(-code).name if -code in signal.valid_signals() else -code}"
    return f"exited with code {code}"


def age_s(stamp: str | None) -> float:
    """Seconds since an ISO timestamp written by store.now() (infinite for none)."""
    if not stamp:
        return float("inf")
    return (datetime.now(UTC) - datetime.fromisoformat(stamp)).total_seconds()


def terminate(pid: int | None, grace_s: float = 2.0) -> None:
    """Stop a job's whole process group: SIGTERM first (a chance to checkpoint), SIGKILL after the grace."""
    if not pid:
        return
    try:
        group = os.getpgid(pid)
    except (ProcessLookupError, PermissionError, OSError):
        group = pid  # the leader is gone; its group may still hold workers (start_new_session: pgid == pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(group, sig)
        except (ProcessLookupError, PermissionError, OSError):
            return
        deadline = time.time() + grace_s
        while sig == signal.SIGTERM and time.time() < deadline and pid_alive(pid):
            time.sleep(0.1)
        if not pid_alive(pid):
            return


def kill_group(pid: int | None) -> None:
    """SIGKILL what is left of a dead job's process group (orphaned workers), ignoring a group already gone."""
    if not pid:
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass


class Heartbeat:
    """Writes `table.heartbeat_at` every few seconds from a thread, so slow loading is not taken for death."""

    def __init__(self, workspace: Path, table: str, key: Any, every: float = HEARTBEAT_EVERY_S):
        if table not in ("jobs", "runs"):
            raise ValueError(f"No heartbeat for table {table!r}.")
        self.workspace, self.table, self.key, self.every = workspace, table, key, every
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        conn = store.connect(self.workspace)
        try:
            while not self.stop.is_set():
                try:
                    conn.execute(
                        f"UPDATE {self.table} SET heartbeat_at = ? WHERE id = ?", (store.now(), self.key)
                    )
                except sqlite3.Error:
                    pass
                self.stop.wait(self.every)
        finally:
            conn.close()

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join(5)
