"""Worker management (parent side): the persistent symbolic worker subprocess and ``_heavy_equiv``.

The worker (``python -I scorelib/grading/__main__.py``, see ``symbolic._serve``) is started on first use,
shared by threads under a lock, killed and recreated when it misses its deadline (its own soft timeout plus
``_GRACE_S``) or dies, dropped in forked children and killed at interpreter exit. ``_heavy_equiv`` caches
answers (lru_cache of 65,536 entries); timeouts and crashes raise ``_WorkerError`` and are never cached.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
import time
import warnings
from functools import lru_cache

_WORKER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "__main__.py")
_STARTUP_TIMEOUT_S = 60.0
_GRACE_S = 0.25  # hard kill this long after the worker's own soft timeout should have fired


class _WorkerError(Exception):
    """The worker timed out, died or could not start; the check counts as not equivalent."""


class _Worker:
    """A persistent `python -I scorelib/grading/__main__.py` subprocess answering symbolic-equivalence queries."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-I", _WORKER_SCRIPT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            bufsize=0,
            start_new_session=True,  # Ctrl-C in the terminal must not hit the worker
        )
        try:
            ready = self._read_line(time.monotonic() + _STARTUP_TIMEOUT_S) == b"ready"
        except _WorkerError:
            ready = False
        if not ready:
            self.kill()
            warnings.warn("scorelib.grading: symbolic worker failed to start; symbolic checks return False")
            raise _WorkerError("grading worker failed to start")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def ask(self, pred: str, gold: str, timeout_s: float) -> bool:
        request = json.dumps([pred, gold, timeout_s]).encode() + b"\n"
        try:
            self.proc.stdin.write(request)
        except OSError as e:
            raise _WorkerError("grading worker died") from e
        return self._read_line(time.monotonic() + timeout_s + _GRACE_S) == b"1"

    def _read_line(self, deadline: float) -> bytes:
        fd = self.proc.stdout.fileno()
        buf = b""
        while not buf.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise _WorkerError("grading worker timed out")
            chunk = os.read(fd, 4096)
            if not chunk:
                raise _WorkerError("grading worker died")
            buf += chunk
        return buf.strip()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


_worker: _Worker | None = None
_worker_lock = threading.Lock()


def _reset_after_fork() -> None:
    """A forked child must not share the parent's worker pipes or a possibly-held lock."""
    global _worker, _worker_lock
    _worker = None
    _worker_lock = threading.Lock()


def _shutdown_worker() -> None:
    """Kill the worker at interpreter exit."""
    if _worker is not None:
        _worker.kill()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
atexit.register(_shutdown_worker)


@lru_cache(maxsize=65536)
def _heavy_equiv(pred: str, gold: str, timeout_s: float) -> bool:
    """Symbolic equivalence via the worker; raises _WorkerError (never cached) on timeout/crash."""
    global _worker
    with _worker_lock:
        try:
            if _worker is None or not _worker.alive():
                _worker = None
                _worker = _Worker()
            return _worker.ask(pred, gold, timeout_s)
        except (_WorkerError, OSError) as e:
            if _worker is not None:
                _worker.kill()
                _worker = None
            raise _WorkerError(str(e)) from e
