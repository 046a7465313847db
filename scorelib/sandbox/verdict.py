"""How a run ended, in words: the ``reason`` of an :class:`~scorelib.sandbox.ExecResult`.

A program passes only if its process exits with status 0 *and* the bootstrap printed
the run's random sentinel after the program's last statement. So an early
``os._exit(0)``, ``sys.exit(0)`` or ``exit()`` (which would skip the tests appended to
the program) is a failure, not a pass. The sentinel protects against early exits, not
against a program that deliberately introspects the bootstrap (code that runs
in-process with its tests can always defeat them, e.g. by returning an object equal
to everything).
"""
from __future__ import annotations

import signal


def exit_code(status: bytes, launcher_rc: int | None, namespaces: bool) -> int | None:
    """The program's exit code: from the namespace init's ``S<code>`` on the status pipe,
    or (without namespaces) the launcher's, which exec'd into the program."""
    if not namespaces:
        return launcher_rc
    s_at = status.find(b"S")
    return int(status[s_at + 1:]) if s_at >= 0 and status[s_at + 1:].lstrip(b"-").isdigit() else launcher_rc


def launcher_error(status: bytes) -> str | None:
    """The launcher's ``E<message>`` (a failure before the program started), if any."""
    return status[1:].decode("utf-8", "replace") if status.startswith(b"E") else None


def reason(stopped: str | None, error: str | None, rc: int | None, reached_end: bool,
           oom_kills: int, stderr: str) -> str:
    """`stopped`: "timeout" / "output limit" when the parent stopped the run."""
    if stopped is not None:
        return stopped
    if error is not None:
        return f"sandbox error: launcher: {error}"
    if rc is None:
        return "sandbox error: the program could not be reaped"
    if rc < 0:
        return _killed(-rc, oom_kills)
    if rc == 0:
        return "passed" if reached_end else "failed: exited before the end of the program (exit code 0)"
    return _failed(rc, stderr)


def _killed(sig: int, oom_kills: int) -> str:
    if sig == signal.SIGXCPU:
        return "cpu time limit"
    if sig == signal.SIGXFSZ:
        return "file size limit"
    if sig == signal.SIGKILL and oom_kills:
        return "memory limit"
    return f"killed by signal {sig} ({_signal_name(sig)})"


def _failed(rc: int, stderr: str) -> str:
    last = _last_line(stderr)
    if "MemoryError" in last or "Cannot allocate memory" in last:
        return "memory limit"
    if "[Errno 27] File too large" in last:  # Python ignores SIGXFSZ: the write fails with EFBIG
        return "file size limit"
    if last:
        return f"failed: {last}"
    return f"failed: exit code {rc}"


def _last_line(text: str) -> str:
    for line in reversed(text.splitlines()):
        if line.strip():
            line = line.strip()
            return line if len(line) <= 300 else line[:297] + "..."
    return ""


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"
